// Property: whatever the input, the parser (and the planner on what parses) throws nothing but
// DockerfileError: no TypeError, no RangeError, no stray Error from a helper.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { DockerfileError } from '../../src/errors.js';
import { expandWords } from '../../src/dockerfile/expand.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import { planBuild } from '../../src/dockerfile/plan.js';

const goldenDir = join(import.meta.dirname, 'golden');
const corpus = readdirSync(goldenDir)
  .filter((f) => f.endsWith('.Dockerfile'))
  .map((f) => readFileSync(join(goldenDir, f), 'utf8'));

function parseAndPlan(text: string): void {
  try {
    const df = parseDockerfile(text);
    planBuild(df, {
      buildArgs: new Map([['A', '1']]),
      targetPlatform: { os: 'linux', architecture: 'amd64' },
      buildPlatform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    });
  } catch (err) {
    if (!(err instanceof DockerfileError)) throw err;
    expect(err.message).not.toContain('\n');
  }
}

const KEYWORDS = ['FROM', 'RUN', 'CMD', 'ENTRYPOINT', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL', 'MAINTAINER', 'from', 'AS'];
const PIECES = [
  ...KEYWORDS, ' ', ' ', '\t', '\n', '\n', '\\\n', '`\n', '\\', '`', '#', '# escape=`\n', '# syntax=x\n', '"', "'", '$', '${', '}', ':-', ':+',
  '[', ']', '","', '<<', '<<-', 'EOF', '\tEOF', '--', '--from=', '--mount=', 'type=cache,target=/x', ',', '=', '0', '1', 'a', 'alpine', '/',
  'scratch', 'NONE', '--interval=', '1s', 'stage', '\r\n', '\u00a0', 'é', '\uFEFF',
];

test('random token soup never throws anything but DockerfileError', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...PIECES), { maxLength: 60 }), (parts) => {
      parseAndPlan(parts.join(''));
    }),
    { numRuns: 3000 },
  );
});

test('arbitrary unicode strings never throw anything but DockerfileError', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
      parseAndPlan(s);
      parseAndPlan(`FROM alpine\n${s}`);
    }),
    { numRuns: 2000 },
  );
});

test('mutated golden Dockerfiles never throw anything but DockerfileError', () => {
  const mutation = fc.record({
    doc: fc.constantFrom(...corpus),
    edits: fc.array(
      fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.constantFrom(...PIECES, '', '', '') }),
      { minLength: 1, maxLength: 6 },
    ),
  });
  fc.assert(
    fc.property(mutation, ({ doc, edits }) => {
      let s = doc;
      for (const e of edits) {
        const at = s.length === 0 ? 0 : e.at % s.length;
        s = s.slice(0, at) + e.ins + s.slice(at + e.del);
      }
      parseAndPlan(s);
    }),
    { numRuns: 3000 },
  );
});

test('word expansion throws nothing but DockerfileError', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '"', "'", '\\', 'a', 'v', ' ', '*'), { maxLength: 30 }), (parts) => {
      try {
        expandWords(parts.join(''), (n) => (n === 'v' ? 'x y' : undefined));
      } catch (err) {
        if (!(err instanceof DockerfileError)) throw err;
      }
    }),
    { numRuns: 3000 },
  );
});
