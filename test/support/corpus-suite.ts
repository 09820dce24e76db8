// Declares the vitest tests for one shard of the conformance corpus (test/dockerfiles/), so the two
// runner files can split the builds across vitest's workers.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  baseLayerDigests,
  buildCase,
  cleanup,
  configText,
  errorLines,
  inspectConfig,
  loadCorpus,
  newLayerPaths,
  normalisedWant,
  observePath,
  projectObserved,
  unpackLayout,
  type LoadedCase,
} from './dockerfile-corpus.js';

const cases = await loadCorpus();

export function defineCorpusShard(shard: number, shards: number): void {
  describe(`Dockerfile conformance corpus (shard ${shard + 1}/${shards})`, () => {
    const registry = inject('registry');
    const images = inject('images');
    let base: Set<string>;
    const works: string[] = [];
    beforeAll(async () => {
      base = await baseLayerDigests(images);
    });
    afterAll(async () => {
      for (const w of works) await cleanup(w);
    });

    const mine = cases.filter((_, i) => i % shards === shard);
    for (const c of mine) {
      const title = `${c.name}: ${c.spec.rule}`;
      if (c.spec.pending !== undefined) {
        it.todo(`${title} (pending: ${c.spec.pending})`);
        continue;
      }
      it(title, async () => {
        await checkCase(c, registry, images, base, works);
      });
    }
  });
}

async function checkCase(c: LoadedCase, registry: string, images: Parameters<typeof buildCase>[1], base: Set<string>, works: string[]): Promise<void> {
  const { spec } = c;
  const built = await buildCase(c, images, registry);
  works.push(built.work);
  const { result } = built;
  const output = `${result.stdout}${result.stderr}`;
  if (spec.expectError !== undefined) {
    expect(result.code, output).toBe(spec.expectError.exitCode);
    const lines = errorLines(result.stderr);
    expect(lines, output).toHaveLength(1);
    const [line = ''] = lines;
    const m = spec.expectError.message;
    if (typeof m === 'string') expect(line).toContain(m);
    else expect(line).toMatch(new RegExp(m.regex));
    return;
  }
  expect(result.code, output).toBe(0);
  for (const s of spec.logContains) expect(output).toContain(s);

  const cfg = await inspectConfig(built.layout);
  if (spec.config !== undefined) {
    const actual = (cfg['config'] ?? {}) as Record<string, unknown>;
    const got: Record<string, unknown> = {};
    for (const k of Object.keys(spec.config)) got[k] = actual[k] ?? null;
    expect(got).toEqual(spec.config);
  }
  if (spec.image !== undefined) {
    const got: Record<string, unknown> = {};
    for (const k of Object.keys(spec.image)) got[k] = cfg[k] ?? null;
    expect(got).toEqual(spec.image);
  }
  if (spec.configExcludes.length > 0) {
    const text = await configText(built.layout);
    for (const s of spec.configExcludes) expect(text, `config must not contain ${s}`).not.toContain(s);
  }
  if (Object.keys(spec.files).length > 0 || spec.absent.length > 0) {
    const rootfs = await unpackLayout(built.work, built.layout);
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [p, w] of Object.entries(spec.files)) {
      const obs = await observePath(rootfs, p, w);
      got[p] = obs === undefined ? 'missing' : projectObserved(obs, w);
      want[p] = normalisedWant(w);
    }
    for (const p of spec.absent) {
      got[p] = (await observePath(rootfs, p, { type: 'file' })) === undefined ? 'absent' : 'present';
      want[p] = 'absent';
    }
    expect(got).toEqual(want);
  }
  if (spec.newLayerPaths !== undefined) {
    expect(await newLayerPaths(built.layout, base)).toEqual([...spec.newLayerPaths].sort());
  }
}
