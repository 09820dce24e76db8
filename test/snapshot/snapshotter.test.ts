import { execFileSync } from 'node:child_process';
import { chmod, chown, link, mkdir, rename, rm, symlink, unlink, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { diffTrees } from '../../src/snapshot/diff.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { scanTree } from '../../src/snapshot/tree-index.js';
import { listTar, tempDir, type ListedEntry } from '../rootfs/fixtures.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let root: string;
let work: string;
let snap: Snapshotter;
let n = 0;

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.path, 'root');
  work = join(tmp.path, 'work');
  await mkdir(join(root, 'etc/conf.d'), { recursive: true });
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(root, 'proc'));
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0');
  await writeFile(join(root, 'etc/conf.d/a'), 'a');
  await writeFile(join(root, 'etc/conf.d/b'), 'b');
  await writeFile(join(root, 'usr/bin/tool'), 'tool', { mode: 0o755 });
  await symlink('tool', join(root, 'usr/bin/alias'));
  await mkdir(work);
  snap = new Snapshotter({ root, ignore: IgnoreList.of(['/proc']), workDir: work });
  await snap.init();
});
afterEach(async () => {
  await tmp.cleanup();
});

async function layerEntries(): Promise<ListedEntry[]> {
  const layer = await snap.snapshot(`layer-${++n}.tar.gz`);
  if (layer === null) return [];
  return listTar(await layer.uncompressed());
}
const names = (es: readonly ListedEntry[]) => es.map((e) => e.name);

describe('Snapshotter', () => {
  it('returns null and writes nothing when nothing changed', async () => {
    expect(await snap.snapshot('l.tgz')).toBeNull();
    execFileSync('ls', [work]);
    expect(execFileSync('ls', [work]).toString()).toBe('');
  });

  it('records an added file with its parent directories', async () => {
    await writeFile(join(root, 'etc/conf.d/new'), 'new', { mode: 0o600 });
    const es = await layerEntries();
    expect(names(es)).toEqual(['etc/', 'etc/conf.d/', 'etc/conf.d/new']);
    const f = es[2];
    expect([f?.type, f?.mode, f?.content]).toEqual(['file', 0o600, 'new']);
    expect(es[0]?.type).toBe('directory');
  });

  it('records a content change, a chmod and a chown', async () => {
    await appendFile(join(root, 'etc/passwd'), '\nuser:x:1000:1000');
    await chmod(join(root, 'usr/bin/tool'), 0o4750);
    await chown(join(root, 'etc/conf.d/a'), 1000, 2000);
    const es = await layerEntries();
    expect(names(es)).toEqual(['etc/', 'etc/conf.d/', 'etc/conf.d/a', 'etc/passwd', 'usr/', 'usr/bin/', 'usr/bin/tool']);
    const by = new Map(es.map((e) => [e.name, e]));
    expect(by.get('etc/passwd')?.content).toBe('root:x:0:0\nuser:x:1000:1000');
    expect(by.get('usr/bin/tool')?.mode).toBe(0o4750);
    expect([by.get('etc/conf.d/a')?.uid, by.get('etc/conf.d/a')?.gid]).toEqual([1000, 2000]);
  });

  it('streams files larger than the small-file buffer, byte for byte', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'k');
    big.write('start', 0);
    big.write('end', big.length - 3);
    await writeFile(join(root, 'big.bin'), big);
    const layer = await snap.snapshot('big.tgz');
    const out = execFileSync('tar', ['-xzOf', join(work, 'big.tgz'), 'big.bin'], { maxBuffer: 16 * 1024 * 1024 });
    expect(out.equals(big)).toBe(true);
    expect(await layer?.diffId()).toBe(`sha256:${execFileSync('sh', ['-c', `gunzip -c ${join(work, 'big.tgz')} | sha256sum`]).toString().split(' ')[0]}`);
  });

  it('keeps mode 0000 (tar-stream would default a falsy mode)', async () => {
    await writeFile(join(root, 'etc/shadow'), 's', { mode: 0o000 });
    await chmod(join(root, 'etc/shadow'), 0o000);
    const es = await layerEntries();
    expect(es.find((e) => e.name === 'etc/shadow')?.mode).toBe(0);
  });

  it('a deleted file gives one whiteout', async () => {
    await unlink(join(root, 'etc/passwd'));
    expect(names(await layerEntries())).toEqual(['etc/', 'etc/.wh.passwd']);
  });

  it('a deleted directory gives one whiteout and nothing for its children', async () => {
    await rm(join(root, 'etc/conf.d'), { recursive: true });
    expect(names(await layerEntries())).toEqual(['etc/', 'etc/.wh.conf.d']);
  });

  it('a directory replaced by a new one gives an opaque whiteout and all its current contents', async () => {
    await rename(join(root, 'etc/conf.d'), join(root, 'old'));
    await mkdir(join(root, 'etc/conf.d'));
    await rename(join(root, 'old/a'), join(root, 'etc/conf.d/a'));
    await writeFile(join(root, 'etc/conf.d/c'), 'c');
    await rm(join(root, 'old'), { recursive: true });
    expect(names(await layerEntries())).toEqual(['etc/', 'etc/conf.d/', 'etc/conf.d/.wh..wh..opq', 'etc/conf.d/a', 'etc/conf.d/c']);
  });

  it('a directory replaced by a file, and a file replaced by a directory', async () => {
    await rm(join(root, 'etc/conf.d'), { recursive: true });
    await writeFile(join(root, 'etc/conf.d'), 'flat');
    await unlink(join(root, 'etc/passwd'));
    await mkdir(join(root, 'etc/passwd'));
    await writeFile(join(root, 'etc/passwd/x'), 'x');
    const es = await layerEntries();
    expect(names(es)).toEqual(['etc/', 'etc/conf.d', 'etc/passwd/', 'etc/passwd/x']);
    expect(es[1]?.type).toBe('file');
  });

  it('a retargeted symlink is recorded verbatim', async () => {
    await unlink(join(root, 'usr/bin/alias'));
    await symlink('/opt/other', join(root, 'usr/bin/alias'));
    const es = await layerEntries();
    expect(names(es)).toEqual(['usr/', 'usr/bin/', 'usr/bin/alias']);
    expect([es[2]?.type, es[2]?.linkname]).toEqual(['symlink', '/opt/other']);
  });

  it('a hardlink pair: the second path is a link entry to the first path in the layer', async () => {
    await link(join(root, 'usr/bin/tool'), join(root, 'usr/bin/a-tool'));
    const es = await layerEntries();
    expect(names(es)).toEqual(['usr/', 'usr/bin/', 'usr/bin/a-tool', 'usr/bin/tool']);
    expect([es[2]?.type, es[2]?.content]).toEqual(['file', 'tool']);
    expect([es[3]?.type, es[3]?.linkname]).toEqual(['link', 'usr/bin/a-tool']);
  });

  it('skips ignored paths and sockets; a work dir inside the root is ignored', async () => {
    await writeFile(join(root, 'proc/x'), 'x');
    const inner = new Snapshotter({ root, ignore: IgnoreList.empty(), workDir: join(root, 'kiln') });
    await inner.init();
    await mkdir(join(root, 'kiln'));
    const layer = await inner.snapshot('l.tgz');
    expect(layer).toBeNull();
  });

  it('moves the baseline forward: a second snapshot holds only the newer change', async () => {
    await writeFile(join(root, 'one'), '1');
    expect(names(await layerEntries())).toEqual(['one']);
    await writeFile(join(root, 'two'), '2');
    expect(names(await layerEntries())).toEqual(['two']);
    expect(await snap.snapshot('none.tgz')).toBeNull();
  });

  it('writes PAX headers for long names and large ids, and GNU tar reads the layer', async () => {
    const long = `${'d'.repeat(90)}/${'e'.repeat(120)}`;
    await mkdir(join(root, 'd'.repeat(90)));
    await writeFile(join(root, long), 'deep');
    await chown(join(root, long), 1_000_000, 1_000_001);
    const layer = await snap.snapshot('l.tgz');
    expect(layer).not.toBeNull();
    const listing = execFileSync('tar', ['-tvzf', join(work, 'l.tgz'), '--numeric-owner']).toString();
    expect(listing).toContain(`1000000/1000001`);
    expect(listing).toContain(long);
    const es = await listTar(await layer!.uncompressed());
    expect(es.find((e) => e.name === long)?.pax).toMatchObject({ uid: '1000000', gid: '1000001' });
  });
});

describe('diffTrees (pure)', () => {
  it('is empty for identical indexes and symmetric in what it reports', async () => {
    const a = await scanTree(root, IgnoreList.empty());
    expect(diffTrees(a, a)).toEqual([]);
    const empty = new Map();
    expect(diffTrees(empty, a).every((c) => c.kind === 'added')).toBe(true);
    // Deleting everything: one whiteout per top-level entry.
    expect(diffTrees(a, empty).map((c) => `${c.kind} ${c.path}`)).toEqual(['deleted etc', 'deleted proc', 'deleted usr']);
  });
});

describe('rebasePaths (a cached layer applied outside the instructions)', () => {
  it('takes the named paths, what lies under them and their parents into the baseline, and nothing else', async () => {
    // What a cached layer would do: a new file in a new dir, a changed file, a deletion.
    await mkdir(join(root, 'opt/app'), { recursive: true });
    await writeFile(join(root, 'opt/app/run'), 'run');
    await writeFile(join(root, 'etc/conf.d/a'), 'changed');
    await rm(join(root, 'etc/conf.d/b'));
    // And a change the layer did not make: it must still show up in the next snapshot.
    await writeFile(join(root, 'usr/bin/tool'), 'tool v2');
    await snap.rebasePaths(['opt/app/run', 'etc/conf.d/a', 'etc/conf.d/b']);
    snap.markAll();
    const entries = (await layerEntries()).map((e) => e.name);
    // The untouched change with its parents (as every layer carries them); nothing of opt/ or etc/.
    expect(entries).toEqual(['usr/', 'usr/bin/', 'usr/bin/tool']);
  });

  it('after a rebase of everything a layer touched, a full walk finds no change', async () => {
    await mkdir(join(root, 'srv'));
    await writeFile(join(root, 'srv/x'), 'x');
    await rm(join(root, 'usr/bin/alias'));
    await snap.rebasePaths(['srv', 'srv/x', 'usr/bin/alias']);
    snap.markAll();
    expect(await snap.snapshot('none.tar.gz')).toBeNull();
  });
});
