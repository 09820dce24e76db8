// File capabilities (`setcap`) survive snapshot -> layer -> unpack, byte for byte, and other readers
// (GNU tar) see them as the PAX record `SCHILY.xattr.security.capability`.
import { execFileSync } from 'node:child_process';
import { link, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { tempDir } from '../rootfs/fixtures.js';

let tmp: { path: string; cleanup: () => Promise<void> };
let root: string;
let out: string;
let snap: Snapshotter;
const ignore = IgnoreList.empty();

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.path, 'root');
  out = join(tmp.path, 'out');
  await mkdir(join(root, 'usr/bin'), { recursive: true });
  await mkdir(join(tmp.path, 'work'));
  await mkdir(out);
  await writeFile(join(root, 'usr/bin/ping'), 'ping', { mode: 0o755 });
  await writeFile(join(root, 'usr/bin/plain'), 'plain', { mode: 0o755 });
  snap = new Snapshotter({ root, ignore, workDir: join(tmp.path, 'work') });
  await snap.init();
});
afterEach(async () => {
  await tmp.cleanup();
});

const getcap = (path: string): string => execFileSync('getcap', [path]).toString().trim().replace(/^\S+\s*/, '');

describe('security.capability in layers', () => {
  it('setcap on an existing file: the layer records it and an unpack elsewhere restores it', async () => {
    execFileSync('setcap', ['cap_net_raw+ep', join(root, 'usr/bin/ping')]);
    await link(join(root, 'usr/bin/ping'), join(root, 'usr/bin/ping6'));
    await writeFile(join(root, 'usr/bin/new'), 'new');
    execFileSync('setcap', ['cap_net_bind_service,cap_sys_time=eip', join(root, 'usr/bin/new')]);
    snap.markAll();
    const layer = await snap.snapshot('caps.tar.gz');
    if (layer === null) throw new Error('no layer');
    const stats = await unpackLayer(out, await layer.uncompressed(), { ignore, expectedDiffId: await layer.diffId() });
    expect(stats.capabilities).toBe(3);
    expect(getcap(join(out, 'usr/bin/ping'))).toBe('cap_net_raw=ep');
    expect(getcap(join(out, 'usr/bin/ping6'))).toBe('cap_net_raw=ep');
    expect(getcap(join(out, 'usr/bin/new'))).toBe(getcap(join(root, 'usr/bin/new')));
    // Only changed files are in the layer, and a file without a capability gets none.
    expect(execFileSync('getcap', ['-r', out]).toString()).not.toContain('plain');

    const tar = join(tmp.path, 'layer.tar');
    execFileSync('sh', ['-c', `gunzip -c ${join(tmp.path, 'work', 'caps.tar.gz')} > ${tar}`]);
    const gnu = join(tmp.path, 'gnu');
    await mkdir(gnu);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xf', tar, '-C', gnu]);
    expect(getcap(join(gnu, 'usr/bin/ping'))).toBe('cap_net_raw=ep');
  });

  it('removing a capability (setcap -r) is a change the layer records: the file comes back without one', async () => {
    execFileSync('setcap', ['cap_net_raw+ep', join(root, 'usr/bin/ping')]);
    snap.markAll();
    await snap.snapshot('with.tar.gz');
    execFileSync('setcap', ['-r', join(root, 'usr/bin/ping')]);
    snap.markAll();
    const layer = await snap.snapshot('without.tar.gz');
    if (layer === null) throw new Error('setcap -r was not seen');
    execFileSync('cp', ['-a', `${root}/.`, out]);
    execFileSync('setcap', ['cap_net_raw+ep', join(out, 'usr/bin/ping')]);
    await unpackLayer(out, await layer.uncompressed(), { ignore });
    expect(getcap(join(out, 'usr/bin/ping'))).toBe('');
  });
});
