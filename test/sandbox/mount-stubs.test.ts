// Mount stubs made and removed under a directory that was there before (the container's /run under a
// secret's /run/secrets/ID): the directory is never recorded for kiln's stub alone, while what a RUN
// really does there still is. Snapshots as both strategies take them: a whole walk and a scoped rescan.
import { lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { createMountStubs } from '../../src/sandbox/mount-stubs.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { listTar, tempDir } from '../rootfs/fixtures.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let root: string;
let snap: Snapshotter;
let n = 0;

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.path, 'root');
  await mkdir(join(root, 'run/lock'), { recursive: true });
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0');
  await mkdir(join(tmp.path, 'work'));
  snap = new Snapshotter({ root, ignore: IgnoreList.of([]), workDir: join(tmp.path, 'work') });
  await snap.init();
});
afterEach(async () => tmp.cleanup());

/** The layer's entry names after marking the change as `how` says. */
async function layerNames(how: 'walk' | 'scoped', scoped: readonly string[]): Promise<string[]> {
  if (how === 'walk') snap.markAll();
  else snap.markEntries(scoped);
  const layer = await snap.snapshot(`layer-${++n}.tar.gz`);
  if (layer === null) return [];
  return (await listTar(await layer.uncompressed())).map((e) => e.name);
}

describe.each(['walk', 'scoped'] as const)('mount stubs, %s snapshot', (how) => {
  it('leaves no trace of a stub under an existing directory', async () => {
    const before = await lstat(join(root, 'run'), { bigint: true });
    const stubs = await createMountStubs(root, [{ target: '/run/secrets/token', dir: false }]);
    expect(stubs.targets).toEqual(['/run/secrets/token']);
    expect(await readdir(join(root, 'run/secrets'))).toEqual(['token']);
    const alone = await stubs.remove();
    expect([...alone].sort()).toEqual(['run', 'run/secrets']);
    expect(await readdir(join(root, 'run'))).toEqual(['lock']);
    const after = await lstat(join(root, 'run'), { bigint: true });
    // Put back to about a microsecond (Node sets times from a double); ctime moved and cannot be.
    const off = after.mtimeNs - before.mtimeNs;
    expect(off < 2000n && off > -2000n).toBe(true);
    expect(after.ctimeNs).not.toBe(before.ctimeNs);
    snap.markStubParents(alone);
    expect(await layerNames(how, ['/run/secrets/token'])).toEqual([]);
  });

  it('still records what the RUN wrote beside the stub', async () => {
    const stubs = await createMountStubs(root, [{ target: '/run/secrets/token', dir: false }]);
    await writeFile(join(root, 'run/foo'), 'foo');
    const alone = await stubs.remove();
    // /run/secrets was kiln's alone; /run is the RUN's too.
    expect(alone).toEqual(['run/secrets']);
    snap.markStubParents(alone);
    expect(await layerNames(how, ['/run/secrets/token', '/run/foo'])).toEqual(['run/', 'run/foo']);
  });

  it('records a directory the RUN emptied and refilled (its mtime moved)', async () => {
    const stubs = await createMountStubs(root, [{ target: '/run/secrets/token', dir: false }]);
    // Past the coarse clock tick of the stub's own stamp, as any real RUN is.
    await new Promise((r) => setTimeout(r, 25));
    await writeFile(join(root, 'run/tmp'), '');
    await rm(join(root, 'run/tmp'));
    const alone = await stubs.remove();
    expect(alone).toEqual(['run/secrets']);
    snap.markStubParents(alone);
    expect(await layerNames(how, ['/run/secrets/token', '/run/tmp'])).toEqual(['run/']);
  });

  it('records a stub the RUN filled, with its parent', async () => {
    const stubs = await createMountStubs(root, [{ target: '/run/secrets/token', dir: false }]);
    await writeFile(join(root, 'run/secrets/other'), 'x');
    const alone = await stubs.remove();
    expect(alone).toEqual([]);
    snap.markStubParents(alone);
    expect(await layerNames(how, ['/run/secrets/token', '/run/secrets/other'])).toEqual(['run/', 'run/secrets/', 'run/secrets/other']);
  });

  it('records a chmod of the stub parent, whatever kiln did there', async () => {
    const { chmod } = await import('node:fs/promises');
    const stubs = await createMountStubs(root, [{ target: '/run/secrets/token', dir: false }]);
    await chmod(join(root, 'run'), 0o700);
    const alone = await stubs.remove();
    snap.markStubParents(alone);
    expect(await layerNames(how, ['/run/secrets/token', '/run'])).toEqual(['run/']);
  });
});
