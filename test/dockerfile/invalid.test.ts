// Every test/dockerfile/invalid/NAME.Dockerfile must fail, in parsing or planning, with a DockerfileError
// whose one-line message equals NAME.error (file, 1-based line and instruction included).
// NAME.options.json (optional) gives plan options. KILN_UPDATE_GOLDEN=1 rewrites the .error files: review them.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { DockerfileError } from '../../src/errors.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import { planBuild } from '../../src/dockerfile/plan.js';

const dir = join(import.meta.dirname, 'invalid');
const update = process.env['KILN_UPDATE_GOLDEN'] === '1';

function run(name: string): unknown {
  const text = readFileSync(join(dir, `${name}.Dockerfile`), 'utf8');
  const optionsPath = join(dir, `${name}.options.json`);
  const o = existsSync(optionsPath) ? (JSON.parse(readFileSync(optionsPath, 'utf8')) as { target?: string }) : {};
  try {
    const df = parseDockerfile(text, 'Dockerfile');
    planBuild(df, {
      buildArgs: new Map(),
      targetPlatform: { os: 'linux', architecture: 'amd64' },
      buildPlatform: { os: 'linux', architecture: 'amd64' },
      ...(o.target === undefined ? {} : { target: o.target }),
    });
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('invalid Dockerfiles', () => {
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.Dockerfile'))
    .map((f) => f.slice(0, -'.Dockerfile'.length))
    .sort();
  for (const name of names) {
    test(`${name} is rejected with its recorded message`, () => {
      const err = run(name);
      expect(err).toBeInstanceOf(DockerfileError);
      const message = (err as DockerfileError).message;
      expect(message).not.toContain('\n');
      const errorPath = join(dir, `${name}.error`);
      if (update) writeFileSync(errorPath, `${message}\n`);
      expect(message).toBe(readFileSync(errorPath, 'utf8').trimEnd());
    });
  }
});
