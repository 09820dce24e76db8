// Golden files: test/dockerfile/golden/NAME.Dockerfile is parsed and planned, and the result must equal
// NAME.json. Optional NAME.options.json gives plan options ({ target, buildArgs, targetPlatform, buildPlatform }).
// Regenerate with KILN_UPDATE_GOLDEN=1 npx vitest run test/dockerfile/golden.test.ts, then REVIEW the diff.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import { planBuild, printablePlan, type PlanOptions } from '../../src/dockerfile/plan.js';

const dir = join(import.meta.dirname, 'golden');
const update = process.env['KILN_UPDATE_GOLDEN'] === '1';

interface OptionsFile {
  target?: string;
  buildArgs?: Record<string, string | null>;
  targetPlatform?: PlanOptions['targetPlatform'];
  buildPlatform?: PlanOptions['buildPlatform'];
}

function planOptions(name: string): PlanOptions {
  const path = join(dir, `${name}.options.json`);
  const o: OptionsFile = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as OptionsFile) : {};
  const opts: PlanOptions = {
    buildArgs: new Map(Object.entries(o.buildArgs ?? {}).map(([k, v]) => [k, v ?? undefined])),
    targetPlatform: o.targetPlatform ?? { os: 'linux', architecture: 'amd64' },
    buildPlatform: o.buildPlatform ?? { os: 'linux', architecture: 'amd64' },
    ...(o.target === undefined ? {} : { target: o.target }),
  };
  return opts;
}

describe('golden Dockerfiles', () => {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.Dockerfile'))
    .map((f) => f.slice(0, -'.Dockerfile'.length))
    .sort();
  test('there are golden files', () => {
    expect(names.length).toBeGreaterThan(5);
  });
  for (const name of names) {
    test(`${name} parses and plans as recorded`, () => {
      const text = readFileSync(join(dir, `${name}.Dockerfile`), 'utf8');
      const df = parseDockerfile(text, `${name}.Dockerfile`);
      const plan = planBuild(df, planOptions(name));
      const actual = JSON.parse(JSON.stringify({ dockerfile: df, plan, printable: printablePlan(df, plan) })) as unknown;
      const jsonPath = join(dir, `${name}.json`);
      if (update) writeFileSync(jsonPath, `${JSON.stringify(actual, null, 2)}\n`);
      const expected = JSON.parse(readFileSync(jsonPath, 'utf8')) as unknown;
      expect(actual).toEqual(expected);
    });
  }
});
