// The packed diff (diffWalk over the native walk) must find exactly what diffTrees finds over plain
// indexes, for every kind of change, in both snapshot modes.
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, unlink, writeFile, link, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { diffTrees, diffWalk } from '../../src/snapshot/diff.js';
import { Baseline, PackedTree, scanWhole } from '../../src/snapshot/packed-tree.js';
import { scanTree } from '../../src/snapshot/tree-index.js';

const ignore = IgnoreList.of(['/proc']);

const CHANGES: ReadonlyArray<readonly [string, (root: string) => Promise<void>]> = [
  ['no change', async () => {}],
  ['a new file', async (r) => writeFile(join(r, 'd/new.txt'), 'new')],
  ['chmod', async (r) => chmod(join(r, 'd/a.txt'), 0o600)],
  ['content rewritten in place', async (r) => writeFile(join(r, 'd/a.txt'), 'other bytes')],
  ['a deleted directory', async (r) => rm(join(r, 'gone'), { recursive: true })],
  ['a replaced directory', async (r) => {
    await rm(join(r, 'd'), { recursive: true });
    await mkdir(join(r, 'd'));
    await writeFile(join(r, 'd/fresh'), 'f');
  }],
  ['a retargeted symlink', async (r) => {
    await unlink(join(r, 'link'));
    await symlink('elsewhere', join(r, 'link'));
  }],
  ['a new hardlink', async (r) => link(join(r, 'd/a.txt'), join(r, 'hard'))],
  ['a file turned into a directory', async (r) => {
    await unlink(join(r, 'file'));
    await mkdir(join(r, 'file'));
  }],
  ['a renamed file', async (r) => rename(join(r, 'd/b.txt'), join(r, 'd/c.txt'))],
  ['a fifo', async (r) => {
    execFileSync('mkfifo', [join(r, 'pipe')]);
  }],
];

describe('diffWalk agrees with diffTrees', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'kiln-diffwalk-'));
    await mkdir(join(root, 'd'));
    await mkdir(join(root, 'gone/sub'), { recursive: true });
    await mkdir(join(root, 'proc'));
    await writeFile(join(root, 'd/a.txt'), 'a');
    await writeFile(join(root, 'd/b.txt'), 'b');
    await writeFile(join(root, 'gone/sub/x'), 'x');
    await writeFile(join(root, 'file'), 'f');
    await symlink('d/a.txt', join(root, 'link'));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  for (const [name, change] of CHANGES) {
    for (const mtimeOnly of [false, true]) {
      it(`${name}${mtimeOnly ? ' (--snapshot-mode=time)' : ''}`, async () => {
        const beforeWhole = await scanWhole(root, ignore);
        expect(beforeWhole).toBeInstanceOf(PackedTree);
        const beforePlain = await scanTree(root, ignore, { reader: 'js' });
        await sleep(20);
        await change(root);
        const afterWhole = await scanWhole(root, ignore);
        const afterPlain = await scanTree(root, ignore, { reader: 'js' });
        const packed = diffWalk(Baseline.of(beforeWhole), afterWhole as PackedTree, { mtimeOnly });
        const plain = diffTrees(beforePlain, afterPlain, { mtimeOnly });
        expect(packed).toEqual(plain);
        if (name !== 'no change' && !(mtimeOnly && name === 'chmod')) expect(plain.length).toBeGreaterThan(0);
      });
    }
  }
});
