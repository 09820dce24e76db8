import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import { planBuild, stageArgValue, stagesInOutput, type PlanOptions } from '../../src/dockerfile/plan.js';

const amd64 = { os: 'linux', architecture: 'amd64' } as const;
function plan(text: string, opts: Partial<PlanOptions> = {}) {
  const df = parseDockerfile(text);
  return planBuild(df, { buildArgs: new Map(), targetPlatform: amd64, buildPlatform: amd64, ...opts });
}

describe('stage references follow BuildKit', () => {
  test('COPY --from may name a stage defined later', () => {
    const p = plan('FROM alpine AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n', { target: 'a' });
    expect(p.stages[0]?.dependsOn).toEqual([1]);
    expect(p.order).toEqual([1, 0]);
  });

  test('FROM naming a later stage, or its own stage, is an image', () => {
    const p = plan('FROM later AS first\nFROM first AS later\nFROM me AS me\n');
    expect(p.stages[0]?.base).toEqual({ kind: 'image', ref: 'later' });
    expect(p.stages[1]?.base).toEqual({ kind: 'stage', index: 0 });
    expect(p.stages[2]?.base).toEqual({ kind: 'image', ref: 'me' });
  });

  test('stage names match case-insensitively, in FROM, --from and --target', () => {
    const p = plan('FROM alpine AS Build\nFROM BUILD AS out\nCOPY --from=bUiLd /a /a\n', { target: 'OUT' });
    expect(p.target).toBe(1);
    expect(p.stages[1]?.base).toEqual({ kind: 'stage', index: 0 });
    expect(p.stages[1]?.references[0]?.source).toEqual({ kind: 'stage', index: 0 });
  });

  test('an unknown --from is an image reference, and a numeric one a stage index', () => {
    const p = plan('FROM alpine\nFROM alpine\nCOPY --from=nginx:1.25 /etc/nginx /etc/nginx\nCOPY --from=0 /a /a\n');
    expect(p.stages[1]?.references.map((r) => r.source)).toEqual([
      { kind: 'image', ref: 'nginx:1.25' },
      { kind: 'stage', index: 0 },
    ]);
  });

  test('--from is expanded against the global ARG scope', () => {
    const p = plan('ARG SRC=builder\nFROM alpine AS builder\nFROM alpine\nCOPY --from=${SRC} /a /a\n');
    expect(p.stages[1]?.dependsOn).toEqual([0]);
  });

  test('RUN --mount=from= is a dependency', () => {
    const p = plan('FROM alpine AS assets\nFROM alpine\nRUN --mount=type=bind,from=assets,target=/a true\n');
    expect(p.stages[1]?.dependsOn).toEqual([0]);
    expect(p.order).toEqual([0, 1]);
  });
});

describe('targets and pruning', () => {
  test('the default target is the last stage and unreachable stages are not needed', () => {
    const p = plan('FROM alpine AS a\nFROM alpine AS b\nFROM a AS c\n');
    expect(p.target).toBe(2);
    expect(p.stages.map((s) => s.needed)).toEqual([true, false, true]);
    expect(p.order).toEqual([0, 2]);
  });

  test('an invalid base is only an error when the stage is needed', () => {
    expect(() => plan('FROM NotValid AS a\nFROM alpine AS b\n')).not.toThrow();
    expect(() => plan('FROM NotValid AS a\nFROM alpine AS b\n', { target: 'a' })).toThrow(/invalid reference/);
  });
});

describe('ARGs', () => {
  test('build args override global defaults, and platform args are in scope for FROM', () => {
    const p = plan('ARG TAG=3.18\nFROM --platform=$BUILDPLATFORM alpine:$TAG-$TARGETARCH\n', {
      buildArgs: new Map([['TAG', '3.19']]),
      buildPlatform: { os: 'linux', architecture: 'arm64' },
    });
    expect(p.stages[0]?.base).toEqual({ kind: 'image', ref: 'alpine:3.19-amd64' });
    expect(p.stages[0]?.platform).toBe('linux/arm64');
    expect(p.globalArgs).toEqual([{ name: 'TAG', value: '3.19' }]);
  });

  test('a global ARG default may use earlier global ARGs', () => {
    const p = plan('ARG A=x\nARG B=${A}y\nFROM alpine:$B\n');
    expect(p.stages[0]?.base).toEqual({ kind: 'image', ref: 'alpine:xy' });
  });

  test('build args declared only in stages that are not built are reported unused', () => {
    const p = plan('ARG G\nFROM alpine AS a\nARG IN_A\nFROM alpine AS b\nARG IN_B\n', {
      target: 'b',
      buildArgs: new Map([
        ['G', '1'],
        ['IN_A', '1'],
        ['IN_B', '1'],
        ['NOPE', '1'],
        ['http_proxy', 'x'],
      ]),
    });
    expect(p.unusedBuildArgs).toEqual(['IN_A', 'NOPE']);
  });

  test('stageArgValue: build arg, then default, then the global value', () => {
    const p = plan('ARG V=global\nFROM alpine\n', { buildArgs: new Map([['B', 'from-cli']]) });
    expect(stageArgValue(p, 'B', 'default')).toBe('from-cli');
    expect(stageArgValue(p, 'V', 'default')).toBe('default');
    expect(stageArgValue(p, 'V', undefined)).toBe('global');
    expect(stageArgValue(p, 'TARGETARCH', undefined)).toBe('amd64');
    expect(stageArgValue(p, 'NONE', undefined)).toBeUndefined();
  });
});

describe('stagesInOutput: the stages whose layers the built image holds', () => {
  test('the target and its FROM chain, not stages it only copies from', () => {
    const p = plan('FROM alpine AS tools\nFROM tools AS build\nRUN make\nFROM busybox AS other\nFROM build AS final\nCOPY --from=other /x /x\nFROM busybox\n', { target: 'final' });
    expect([...stagesInOutput(p)].sort()).toEqual([0, 1, 3]);
  });

  test('a last stage FROM scratch holds only itself', () => {
    const p = plan('FROM alpine AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n');
    expect([...stagesInOutput(p)]).toEqual([1]);
  });
});
