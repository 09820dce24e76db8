// The import direction of docs/architecture.md, checked on the sources:
// cli -> builder -> {instructions, snapshot, sources, sinks, context, sandbox} -> {rootfs, registry, blob, git} -> {oci, dockerfile, cloud}
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const RANK: Record<string, number> = {
  errors: 0, log: 0,
  oci: 1, dockerfile: 1, cloud: 1, // cloud/: the vendors' SDKs, bundled apart, so they import nothing of kiln's but each other
  rootfs: 2, registry: 2, blob: 2, git: 2,
  instructions: 3, snapshot: 3, sources: 3, sinks: 3, context: 3, sandbox: 3,
  builder: 4,
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

  it('no source file is part of an import cycle (type imports included)', () => {
    const edges = new Map<string, string[]>();
    for (const file of files(SRC)) {
      const text = readFileSync(file, 'utf8');
      edges.set(file, [...text.matchAll(/from '(\.\.?\/[^']+)'/g)].map((m) => resolve(dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts'))));
    }
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const g of edges.get(f) ?? []) {
        if (!edges.has(g)) continue;
        if (state.get(g) === 'open') cycles.push(stack.slice(stack.indexOf(g)).concat(g).map((x) => relative(SRC, x)).join(' -> '));
        else if (state.get(g) === undefined) visit(g);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of edges.keys()) if (state.get(f) === undefined) visit(f);
    expect(cycles).toEqual([]);
  });

  it('the handler contract and the small handlers do not reach into RUN, COPY or ADD machinery', () => {
    // src/instructions/: one file per command; RUN, COPY and ADD keep their helpers in a folder each.
    // Only the table of handlers (handlers.ts) and each folder's own files may import a folder's files.
    const dir = join(SRC, 'instructions');
    const violations: string[] = [];
    for (const file of files(dir)) {
      const own = relative(dir, file).split('/');
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from '(\.\.?\/[^']+)'/g)) {
        const target = relative(dir, resolve(dirname(file), m[1] ?? '')).split('/');
        if (target.length < 2 || target[0] === '..') continue;
        const folder = target[0];
        if (own.length === 2 && own[0] === folder) continue;
        if (own.length === 1 && own[0] === 'handlers.ts') continue;
        // ADD is COPY plus archives, URLs and git: it builds on COPY's engine and RUN's --secret reader.
        if (own[0] === 'add' && (folder === 'copy' || target.join('/') === 'run/secret-source.js')) continue;
        // The contract carries the build's RUN --mount resources: types only, importing no RUN machinery.
        if (own.join('/') === 'handler.ts' && target.join('/') === 'run/mount-support.js') continue;
        // RUN --mount=type=bind,rw copies its source with COPY's engine.
        if (own[0] === 'run' && target.join('/') === 'copy/copy-files.js') continue;
        violations.push(`instructions/${own.join('/')} imports instructions/${target.join('/')}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('one name per concept: no two source files share a file name', () => {
    const seen = new Map<string, string[]>();
    for (const file of files(SRC)) seen.set(basename(file), [...(seen.get(basename(file)) ?? []), relative(SRC, file)]);
    expect([...seen.values()].filter((paths) => paths.length > 1)).toEqual([]);
  });
});
