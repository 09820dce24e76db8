// The import direction of docs/architecture.md, checked on the sources:
// cli -> build -> {instructions, snapshot, sources, sinks, context, sandbox} -> {rootfs, registry, blob, git} -> {oci, dockerfile, cloud}
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const RANK: Record<string, number> = {
  errors: 0, log: 0,
  oci: 1, dockerfile: 1, cloud: 1, // cloud/: the vendors' SDKs, bundled apart, so they import nothing of kiln's but each other
  rootfs: 2, registry: 2, blob: 2, git: 2,
  instructions: 3, snapshot: 3, sources: 3, sinks: 3, context: 3, sandbox: 3,
  build: 4,
  cli: 5,
};
/** Same-rank modules that may use each other, and why. */
const ALLOWED_SIDEWAYS = new Set([
  'oci->oci', 'dockerfile->oci', // the planner parses references and platforms with the pure OCI model
  'instructions->sandbox', // RUN executes through the sandbox interface
  'instructions->context', 'snapshot->blob', 'sources->blob', 'sinks->blob',
  'registry->blob', 'rootfs->blob', // digest verification streams
]);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []));
}

function moduleOf(file: string): string {
  const rel = relative(SRC, file).split('/');
  return rel.length === 1 ? (rel[0] ?? '').replace(/\.(ts|js)$/, '') : (rel[0] ?? '');
}

describe('module layering', () => {
  it('imports point one way, and oci/ and dockerfile/ stay pure leaves', () => {
    const violations: string[] = [];
    for (const file of files(SRC)) {
      const from = moduleOf(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from '(\.\.?\/[^']+)'/g)) {
        const target = moduleOf(resolve(dirname(file), m[1] ?? ''));
        if (target === from) continue;
        const a = RANK[from];
        const b = RANK[target];
        if (a === undefined || b === undefined) {
          violations.push(`${relative(SRC, file)}: unknown module ${target}`);
          continue;
        }
        if (b < a || ALLOWED_SIDEWAYS.has(`${from}->${target}`)) continue;
        violations.push(`${relative(SRC, file)} imports ${target}`);
      }
      if (from === 'oci' || from === 'dockerfile') {
        for (const m of text.matchAll(/from 'node:([a-z/]+)'/g)) {
          if (!['crypto'].includes(m[1] ?? '') && !/^import type/m.test(text.split('\n').find((l) => l.includes(`'node:${m[1]}'`)) ?? '')) {
            violations.push(`${relative(SRC, file)} (pure) imports node:${m[1]}`);
          }
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
