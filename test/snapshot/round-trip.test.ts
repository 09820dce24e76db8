// The property that ties snapshot and unpack together: for any base tree and any mutations of it,
// applying the snapshot layer to a copy of the base (made with `cp -a`, an independent tool) gives a
// tree identical to the mutated one: paths, types, modes, owners, contents, link targets, hardlinks.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsConstants, lstatSync } from 'node:fs';
import { chmod, lchown, link, mkdir, open, readFile, rename, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { scanTree, type TreeIndex } from '../../src/snapshot/tree-index.js';
import { tempDir } from '../rootfs/fixtures.js';

type Op =
  | { op: 'write'; path: string; content: string; mode: number }
  | { op: 'append'; path: string; content: string }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'symlink'; path: string; target: string }
  | { op: 'link'; path: string; existing: string }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'remove'; path: string }
  | { op: 'replaceDir'; path: string; keepChild: string };

const name = fc.constantFrom('a', 'b', 'c');
// Shallow paths over few names, so that ops often meet what earlier ops made.
const path = fc.oneof({ arbitrary: fc.array(name, { minLength: 1, maxLength: 2 }), weight: 3 }, { arbitrary: fc.array(name, { minLength: 3, maxLength: 3 }), weight: 1 }).map((p) => p.join('/'));
const fileMode = fc.constantFrom(0o644, 0o600, 0o755, 0o000, 0o4755, 0o2711);
const dirMode = fc.constantFrom(0o755, 0o700, 0o1777, 0o2775);
const content = fc.constantFrom('', 'x', 'hello', 'hello world\n'.repeat(50));
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('write' as const), path, content, mode: fileMode }), weight: 3 },
  fc.record({ op: fc.constant('append' as const), path, content }),
  { arbitrary: fc.record({ op: fc.constant('mkdir' as const), path, mode: dirMode }), weight: 3 },
  fc.record({ op: fc.constant('symlink' as const), path, target: fc.constantFrom('a', '../b', '/a/b', 'missing', '/') }),
  fc.record({ op: fc.constant('link' as const), path, existing: path }),
  fc.record({ op: fc.constant('chmod' as const), path, mode: fc.oneof(fileMode, dirMode) }),
  fc.record({ op: fc.constant('chown' as const), path, uid: fc.constantFrom(0, 1000, 65534), gid: fc.constantFrom(0, 50, 1000) }),
  fc.record({ op: fc.constant('remove' as const), path }),
  { arbitrary: fc.record({ op: fc.constant('replaceDir' as const), path, keepChild: name }), weight: 2 },
);

/** Whether every parent of `rel` under `root` is a real directory (so an op cannot follow a symlink out). */
function parentsAreDirs(root: string, rel: string): boolean {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    try {
      if (!lstatSync(join(root, ...parts.slice(0, i))).isDirectory()) return false;
    } catch {
      return false;
    }
  }
  return true;
}

function kindAt(host: string): 'file' | 'dir' | 'symlink' | 'none' {
  try {
    const st = lstatSync(host);
    return st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : 'file';
  } catch {
    return 'none';
  }
}

/** Applies an op if it makes sense on the tree as it is; otherwise it is a no-op. Never follows symlinks. */
async function apply(root: string, trash: string, o: Op): Promise<void> {
  if (!parentsAreDirs(root, o.path)) return;
  const host = join(root, o.path);
  const kind = kindAt(host);
  switch (o.op) {
    case 'write':
    case 'append': {
      if (kind === 'dir' || kind === 'symlink') return;
      const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_NOFOLLOW | (o.op === 'write' ? fsConstants.O_TRUNC : fsConstants.O_APPEND);
      const fh = await open(host, flags, 0o644);
      await fh.write(o.content);
      if (o.op === 'write') await fh.chmod(o.mode);
      await fh.close();
      return;
    }
    case 'mkdir':
      if (kind !== 'none') return;
      await mkdir(host);
      await chmod(host, o.mode);
      return;
    case 'symlink':
      if (kind !== 'none') return;
      await symlink(o.target, host);
      return;
    case 'link':
      if (kind !== 'none' || kindAt(join(root, o.existing)) !== 'file' || !parentsAreDirs(root, o.existing)) return;
      await link(join(root, o.existing), host);
      return;
    case 'chmod':
      if (kind === 'none' || kind === 'symlink') return;
      await chmod(host, o.mode);
      return;
    case 'chown':
      if (kind === 'none') return;
      await lchown(host, o.uid, o.gid);
      return;
    case 'remove':
      await rm(host, { recursive: true, force: true });
      return;
    case 'replaceDir': {
      if (kind !== 'dir') return;
      const away = join(trash, `t${Math.random().toString(36).slice(2)}`);
      await rename(host, away);
      await mkdir(host);
      if (kindAt(join(away, o.keepChild)) !== 'none') await rename(join(away, o.keepChild), join(host, o.keepChild));
      return;
    }
  }
}

/** Everything the round trip must preserve, per path; hardlinks as the group of paths sharing an inode. */
async function describeTree(root: string, index: TreeIndex): Promise<Record<string, string>> {
  const groups = new Map<bigint, string[]>();
  for (const [p, m] of index) if (m.kind === 'file') groups.set(m.ino, [...(groups.get(m.ino) ?? []), p]);
  const out: Record<string, string> = {};
  for (const [p, m] of index) {
    let detail = '';
    if (m.kind === 'symlink') detail = `-> ${m.linkTarget}`;
    if (m.kind === 'file') {
      const sum = createHash('sha256').update(await readFile(join(root, p))).digest('hex').slice(0, 12);
      detail = `${m.size} ${sum} links=[${(groups.get(m.ino) ?? []).sort().join(',')}]`;
    }
    // Symlink permission bits are meaningless on Linux (always 0777) and not stored in layers.
    const mode = m.kind === 'symlink' ? '' : m.mode.toString(8);
    out[p] = `${m.kind} ${mode} ${m.uid}:${m.gid} ${detail}`;
  }
  return out;
}

/** A populated start, so that random ops meet directories, files and links to change. */
const SKELETON: readonly Op[] = [
  ...['a', 'b', 'c', 'a/b', 'b/c', 'c/a'].map((p): Op => ({ op: 'mkdir', path: p, mode: 0o755 })),
  ...['a/a', 'a/c', 'b/a', 'b/c/a', 'b/c/b', 'c/b', 'a/b/c', 'c/a/a'].map((p): Op => ({ op: 'write', path: p, content: `content of ${p}`, mode: 0o644 })),
  { op: 'link', path: 'b/b', existing: 'a/a' },
  { op: 'symlink', path: 'c/c', target: '../a' },
];

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('snapshot -> unpack round trip', () => {
  it('a layer of any mutations, applied to a copy of the base, reproduces the mutated tree', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 0, maxLength: 15 }), fc.array(opArb, { minLength: 1, maxLength: 20 }), async (baseOps, mutations) => {
        const dir = join(tmp.path, `run${run++}`);
        const base = join(dir, 'base');
        const copy = join(dir, 'copy');
        const trash = join(dir, 'trash');
        const work = join(dir, 'work');
        await mkdir(base, { recursive: true });
        await mkdir(trash);
        await mkdir(work);
        for (const o of [...SKELETON, ...baseOps]) await apply(base, trash, o);
        execFileSync('cp', ['-a', base, copy]);

        const ignore = IgnoreList.empty();
        const snap = new Snapshotter({ root: base, ignore, workDir: work });
        await snap.init();
        for (const o of mutations) await apply(base, trash, o);
        const layer = await snap.snapshot('layer.tar.gz');
        if (layer !== null) await unpackLayer(copy, await layer.uncompressed(), { ignore, expectedDiffId: await layer.diffId() });

        const want = await describeTree(base, await scanTree(base, ignore));
        const got = await describeTree(copy, await scanTree(copy, ignore));
        expect(got).toEqual(want);
        await rm(dir, { recursive: true, force: true });
      }),
      { numRuns: 150 },
    );
  });
});
