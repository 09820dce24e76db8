import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestMismatchError, UnpackError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { IgnoreList, defaultIgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { encodePaxRecords, paxEntryBytes } from '../../src/snapshot/pax-header.js';
import { capabilityOf, fingerprint, tarBytes, tarOf, tempDir, type TarEntry } from './fixtures.js';

const none = IgnoreList.empty();
const T = new Date('2021-03-04T05:06:07Z');
const T2 = new Date('2019-01-01T00:00:00Z');

let tmp: { path: string; cleanup: () => Promise<void> };
let root: string;
beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.path, 'root');
  await mkdir(root);
});
afterEach(async () => {
  await tmp.cleanup();
});

const unpack = async (entries: readonly TarEntry[], ignore = none) => unpackLayer(root, await tarOf(entries), { ignore });

describe('unpackLayer: entry types', () => {
  it('writes regular files with content, mode incl. setuid/setgid, owner and mtime', async () => {
    await unpack([
      { name: 'bin/su', mode: 0o4755, uid: 1234, gid: 5678, mtime: T, content: 'suid' },
      { name: 'bin/wall', mode: 0o2711, uid: 0, gid: 5, mtime: T2, content: 'sgid' },
      { name: 'etc/shadow', mode: 0o640, uid: 0, gid: 42, mtime: T, content: 'secret' },
    ]);
    const su = await stat(join(root, 'bin/su'));
    expect(su.mode & 0o7777).toBe(0o4755);
    expect([su.uid, su.gid]).toEqual([1234, 5678]);
    expect(su.mtimeMs).toBe(T.getTime());
    expect(await readFile(join(root, 'bin/su'), 'utf8')).toBe('suid');
    const wall = await stat(join(root, 'bin/wall'));
    expect(wall.mode & 0o7777).toBe(0o2711);
    expect(wall.mtimeMs).toBe(T2.getTime());
    expect((await stat(join(root, 'etc/shadow'))).mode & 0o7777).toBe(0o640);
  });

  it('creates directories with sticky bit and owner, and sets their mtime after their children', async () => {
    await unpack([
      { name: 'tmp/', type: 'directory', mode: 0o1777, uid: 7, gid: 8, mtime: T },
      { name: 'tmp/a', content: 'a', mtime: T2 },
      { name: 'tmp/sub/', type: 'directory', mode: 0o700, mtime: T2 },
      { name: 'tmp/sub/b', content: 'b' },
    ]);
    const t = await stat(join(root, 'tmp'));
    expect(t.mode & 0o7777).toBe(0o1777);
    expect([t.uid, t.gid]).toEqual([7, 8]);
    expect(t.mtimeMs).toBe(T.getTime());
    expect((await stat(join(root, 'tmp/sub'))).mtimeMs).toBe(T2.getTime());
  });

  it('creates missing parent directories 0755 root-owned', async () => {
    await unpack([{ name: 'usr/local/bin/tool', content: 'x', mode: 0o755 }]);
    const d = await stat(join(root, 'usr/local'));
    expect(d.isDirectory()).toBe(true);
    expect(d.mode & 0o7777).toBe(0o755);
  });

  it('keeps an existing directory in place (inode and contents) and gives it the entry metadata', async () => {
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/keep'), 'lower');
    const ino = (await stat(join(root, 'etc'))).ino;
    await unpack([{ name: 'etc/', type: 'directory', mode: 0o711, uid: 3, gid: 4, mtime: T }]);
    const st = await stat(join(root, 'etc'));
    expect(st.ino).toBe(ino);
    expect(st.mode & 0o7777).toBe(0o711);
    expect([st.uid, st.gid]).toEqual([3, 4]);
    expect(await readFile(join(root, 'etc/keep'), 'utf8')).toBe('lower');
  });

  it('stores symlink targets verbatim (absolute, relative, dangling) with owner and mtime on the link', async () => {
    await unpack([
      { name: 'abs', type: 'symlink', linkname: '/etc/os-release', uid: 11, gid: 12, mtime: T },
      { name: 'rel', type: 'symlink', linkname: '../../x/y' },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    ]);
    expect(await readlink(join(root, 'abs'))).toBe('/etc/os-release');
    expect(await readlink(join(root, 'rel'))).toBe('../../x/y');
    const l = await lstat(join(root, 'abs'));
    expect(l.isSymbolicLink()).toBe(true);
    expect([l.uid, l.gid]).toEqual([11, 12]);
    expect(l.mtimeMs).toBe(T.getTime());
  });

  it('makes hardlinks share the inode of their target', async () => {
    await unpack([
      { name: 'usr/bin/perl', content: 'perl', mode: 0o755 },
      { name: 'usr/bin/perl5.36', type: 'link', linkname: 'usr/bin/perl' },
      { name: 'usr/bin/perl-abs', type: 'link', linkname: '/usr/bin/perl' },
    ]);
    const a = await stat(join(root, 'usr/bin/perl'));
    expect((await stat(join(root, 'usr/bin/perl5.36'))).ino).toBe(a.ino);
    expect((await stat(join(root, 'usr/bin/perl-abs'))).ino).toBe(a.ino);
    expect(a.nlink).toBe(3);
  });

  it('reads PAX long names, long link targets and large uids', async () => {
    const long = `${'d'.repeat(120)}/${'e'.repeat(150)}/${'f'.repeat(200)}.txt`;
    const target = `/${'t'.repeat(300)}`;
    await unpack([
      { name: long, content: 'deep', uid: 1_000_000, gid: 2_000_000, pax: { uid: '1000000', gid: '2000000' } },
      { name: 'longlink', type: 'symlink', linkname: target },
    ]);
    const st = await stat(join(root, long));
    expect(await readFile(join(root, long), 'utf8')).toBe('deep');
    expect([st.uid, st.gid]).toEqual([1_000_000, 2_000_000]);
    expect(await readlink(join(root, 'longlink'))).toBe(target);
  });

  it('skips character and block devices, counting them; creates FIFOs with mode, owner and mtime', async () => {
    const stats = await unpack([
      { name: 'dev2/null', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: 'dev2/sda', type: 'block-device', devmajor: 8, devminor: 0 },
      { name: 'run/pipe', type: 'fifo', mode: 0o620, uid: 12, gid: 34, mtime: T },
      { name: 'ok', content: 'ok' },
    ]);
    expect(stats.skipped).toBe(2);
    expect(stats.fifos).toBe(1);
    expect(stats.files).toBe(1);
    await expect(lstat(join(root, 'dev2/null'))).rejects.toThrow(/ENOENT/);
    const fifo = await lstat(join(root, 'run/pipe'));
    expect(fifo.isFIFO()).toBe(true);
    expect(fifo.mode & 0o7777).toBe(0o620);
    expect([fifo.uid, fifo.gid, fifo.mtimeMs]).toEqual([12, 34, T.getTime()]);
  });

  it('a FIFO replaces what stood at its path; without the addon it is skipped', async () => {
    await writeFile(join(root, 'p'), 'file');
    await unpack([{ name: 'p', type: 'fifo' }]);
    expect((await lstat(join(root, 'p'))).isFIFO()).toBe(true);
    const stats = await unpackLayer(root, await tarOf([{ name: 'q', type: 'fifo' }]), { ignore: none, native: null });
    expect(stats.skipped).toBe(1);
    await expect(lstat(join(root, 'q'))).rejects.toThrow(/ENOENT/);
  });

  it('skips entry types it does not know (tar has none for sockets), and their bodies', async () => {
    const sparse = await tarBytes([{ name: 'weird', content: 'body of an unknown type' }]);
    sparse[156] = 'S'.charCodeAt(0);
    // Fix the checksum for the changed typeflag.
    sparse.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += sparse[i] as number;
    sparse.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const after = await tarBytes([{ name: 'after', content: 'a' }]);
    const stats = await unpackLayer(root, Readable.from([Buffer.concat([sparse.subarray(0, sparse.length - 1024), after])]), { ignore: none });
    expect(stats.skipped).toBe(1);
    expect(await readdir(root)).toEqual(['after']);
  });

  it('applies a hardlink entry header metadata to the shared inode, as docker does', async () => {
    await unpack([
      { name: 'bin/tool', content: 'x', mode: 0o755, uid: 1, gid: 2, mtime: T },
      { name: 'bin/alias', type: 'link', linkname: 'bin/tool', mode: 0o4750, uid: 3, gid: 4, mtime: T2 },
    ]);
    const st = await stat(join(root, 'bin/tool'));
    expect(st.nlink).toBe(2);
    expect(st.mode & 0o7777).toBe(0o4750);
    expect([st.uid, st.gid, st.mtimeMs]).toEqual([3, 4, T2.getTime()]);
  });

  it('applies security.capability (binary PAX value) to files and hardlinks; getcap reads it', async () => {
    const cap = capabilityOf('cap_net_raw+ep');
    const layer = Buffer.concat([
      paxEntryBytes(encodePaxRecords([['path', 'bin/ping'], ['SCHILY.xattr.security.capability', cap]]), 0),
      await tarBytes([{ name: 'ping-placeholder', content: 'ping', mode: 0o755, uid: 5, gid: 6 }]),
    ]);
    const link = Buffer.concat([
      paxEntryBytes(encodePaxRecords([['path', 'bin/ping6'], ['linkpath', 'bin/ping'], ['SCHILY.xattr.security.capability', cap]]), 0),
      await tarBytes([{ name: 'x', type: 'link', linkname: 'bin/ping', mode: 0o755, uid: 5, gid: 6 }]),
    ]);
    const stats = await unpackLayer(root, Readable.from([layer.subarray(0, layer.length - 1024), link]), { ignore: none });
    expect(stats.capabilities).toBe(2);
    expect(execFileSync('getcap', [join(root, 'bin/ping')]).toString()).toMatch(/cap_net_raw=ep/);
    // The link's chown (which clears capabilities) came before its capability was set again.
    expect((await stat(join(root, 'bin/ping6'))).nlink).toBe(2);
    expect(execFileSync('getcap', [join(root, 'bin/ping6')]).toString()).toMatch(/cap_net_raw=ep/);
  });

  it('accepts ./-prefixed names and leaves the root directory metadata alone', async () => {
    const before = await stat(root);
    await unpack([
      { name: './', type: 'directory', mode: 0o700, uid: 99 },
      { name: './a', content: 'a' },
    ]);
    const after = await stat(root);
    expect([after.mode, after.uid]).toEqual([before.mode, before.uid]);
    expect(await readFile(join(root, 'a'), 'utf8')).toBe('a');
  });
});

describe('unpackLayer: whiteouts', () => {
  beforeEach(async () => {
    await mkdir(join(root, 'etc/conf.d'), { recursive: true });
    await writeFile(join(root, 'etc/passwd'), 'x');
    await writeFile(join(root, 'etc/conf.d/a'), 'a');
    await writeFile(join(root, 'etc/conf.d/b'), 'b');
    await mkdir(join(root, 'opt/app/lib'), { recursive: true });
    await writeFile(join(root, 'opt/app/lib/old.so'), 'old');
    await writeFile(join(root, 'opt/app/old'), 'old');
  });

  it('.wh.NAME deletes a file, and a whole directory tree', async () => {
    const stats = await unpack([
      { name: 'etc/.wh.passwd' },
      { name: 'etc/.wh.conf.d' },
    ]);
    expect(stats.whiteouts).toBe(2);
    expect(await readdir(join(root, 'etc'))).toEqual([]);
  });

  it('.wh..wh..opq empties the directory of lower content but keeps this layer entries, whatever their order', async () => {
    await unpack([
      { name: 'opt/app/', type: 'directory', mode: 0o755 },
      { name: 'opt/app/new', content: 'new' },
      { name: 'opt/app/lib/', type: 'directory', mode: 0o755 },
      { name: 'opt/app/lib/new.so', content: 'n' },
      { name: 'opt/app/.wh..wh..opq' },
      { name: 'opt/app/late', content: 'late' },
    ]);
    expect((await readdir(join(root, 'opt/app'))).sort()).toEqual(['late', 'lib', 'new']);
    expect(await readdir(join(root, 'opt/app/lib'))).toEqual(['new.so']);
  });

  it('a whiteout of a missing path is a no-op', async () => {
    await unpack([{ name: 'etc/.wh.nothing' }, { name: 'nodir/.wh.x' }]);
    expect((await readdir(join(root, 'etc'))).sort()).toEqual(['conf.d', 'passwd']);
  });
});

describe('unpackLayer: an entry replaces an entry of another type', () => {
  it('file replaces directory tree, directory replaces file, symlink replaces directory, file replaces symlink', async () => {
    await mkdir(join(root, 'was-dir/sub'), { recursive: true });
    await writeFile(join(root, 'was-dir/sub/f'), 'f');
    await writeFile(join(root, 'was-file'), 'f');
    await mkdir(join(root, 'dir-to-link'));
    await writeFile(join(root, 'target'), 'target');
    await symlink('target', join(root, 'link-to-file'));
    await unpack([
      { name: 'was-dir', content: 'now a file' },
      { name: 'was-file/', type: 'directory', mode: 0o750 },
      { name: 'was-file/inside', content: 'i' },
      { name: 'dir-to-link', type: 'symlink', linkname: '/target' },
      { name: 'link-to-file', content: 'replaced, not written through' },
    ]);
    expect(await readFile(join(root, 'was-dir'), 'utf8')).toBe('now a file');
    expect((await stat(join(root, 'was-file'))).isDirectory()).toBe(true);
    expect(await readFile(join(root, 'was-file/inside'), 'utf8')).toBe('i');
    expect(await readlink(join(root, 'dir-to-link'))).toBe('/target');
    expect((await lstat(join(root, 'link-to-file'))).isFile()).toBe(true);
    expect(await readFile(join(root, 'target'), 'utf8')).toBe('target');
  });

  it('follows a lower layer symlinked directory as the rootfs sees it (usrmerge: lib -> usr/lib)', async () => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('usr/lib', join(root, 'lib'));
    await symlink('/usr/lib', join(root, 'lib64'));
    await unpack([
      { name: 'lib/libc.so', content: 'c' },
      { name: 'lib64/ld.so', content: 'ld' },
    ]);
    expect(await readFile(join(root, 'usr/lib/libc.so'), 'utf8')).toBe('c');
    expect(await readFile(join(root, 'usr/lib/ld.so'), 'utf8')).toBe('ld');
    expect(await readlink(join(root, 'lib'))).toBe('usr/lib');
  });
});

describe('unpackLayer: the ignore list', () => {
  it('skips ignored paths and what lies under them, also when reached through a symlink', async () => {
    await mkdir(join(root, 'proc'));
    const ignore = defaultIgnoreList({ mode: 'container' });
    const stats = await unpack(
      [
        { name: 'proc/cpuinfo', content: 'fake' },
        { name: 'etc/hosts', content: 'fake' },
        { name: 'etc/hosts.allow', content: 'real' },
        { name: 'p', type: 'symlink', linkname: '/proc' },
        { name: 'p/version', content: 'fake' },
        { name: '.wh.proc' },
      ],
      ignore,
    );
    expect(stats.ignored).toBe(4);
    expect(await readdir(join(root, 'proc'))).toEqual([]);
    expect(await readdir(join(root, 'etc'))).toEqual(['hosts.allow']);
  });

  it('a whiteout of a directory spares ignored paths under it', async () => {
    await mkdir(join(root, 'var/run/secrets'), { recursive: true });
    await writeFile(join(root, 'var/run/secrets/token'), 't');
    await writeFile(join(root, 'var/cache'), 'c');
    await unpack([{ name: '.wh.var' }], IgnoreList.of(['/var/run']));
    expect(await readdir(join(root, 'var'))).toEqual(['run']);
    expect(await readFile(join(root, 'var/run/secrets/token'), 'utf8')).toBe('t');
  });
});

describe('unpackLayer: diffID verification', () => {
  it('passes when the uncompressed stream hashes to the expected diffID, fails with DigestMismatchError otherwise', async () => {
    const bytes = await tarBytes([{ name: 'a', content: 'a' }]);
    const good = sha256Digest(createHash('sha256').update(bytes).digest('hex'));
    await unpackLayer(root, Readable.from([bytes]), { ignore: none, expectedDiffId: good });
    const bad = sha256Digest('0'.repeat(64));
    await expect(unpackLayer(root, Readable.from([bytes]), { ignore: none, expectedDiffId: bad })).rejects.toBeInstanceOf(DigestMismatchError);
  });

  it('fails with UnpackError on a truncated tar', async () => {
    const bytes = await tarBytes([{ name: 'a', content: 'x'.repeat(5000) }]);
    await expect(unpackLayer(root, Readable.from([bytes.subarray(0, 1024)]), { ignore: none })).rejects.toBeInstanceOf(UnpackError);
  });
});

describe('unpackLayer: never writes outside the root', () => {
  let sentinel: string;
  let before: string[];
  beforeEach(async () => {
    sentinel = join(tmp.path, 'sentinel');
    await mkdir(sentinel);
    await writeFile(join(sentinel, 'secret'), 'do not touch');
    await mkdir(join(sentinel, 'sub'));
    await writeFile(join(sentinel, 'sub/file'), 'nor this');
    before = await fingerprint(tmp.path).then((f) => f.filter((l) => !l.startsWith('root')));
  });
  const untouched = async () => {
    const after = (await fingerprint(tmp.path)).filter((l) => !l.startsWith('root'));
    // The root's own line moves (its mtime): compare everything else in the parent dir.
    expect(after.filter((l) => !l.startsWith(' '))).toEqual(before.filter((l) => !l.startsWith(' ')));
    expect(await readdir(tmp.path)).toEqual(expect.arrayContaining(['root', 'sentinel']));
    expect((await readdir(tmp.path)).length).toBe(2);
  };

  it('refuses a name whose .. climbs out, naming the entry', async () => {
    for (const name of ['../sentinel/evil', 'a/../../sentinel/evil', '/../sentinel/secret']) {
      await expect(unpack([{ name, content: 'pwned' }])).rejects.toThrow(new RegExp(`refusing entry "${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}"`));
    }
    await untouched();
  });

  it('refuses a hardlink whose target climbs out', async () => {
    await expect(unpack([{ name: 'h', type: 'link', linkname: '../sentinel/secret' }])).rejects.toThrow(/refusing entry "h".*outside the root/);
    await untouched();
  });

  it('clamps symlinks pointing outside, as securejoin does: a file written through them lands inside the root', async () => {
    await unpack([
      { name: 'up', type: 'symlink', linkname: '../sentinel' },
      { name: 'up/secret', content: 'pwned-rel' },
      { name: 'abs', type: 'symlink', linkname: sentinel },
      { name: 'abs/secret', content: 'pwned-abs' },
      { name: 'slash', type: 'symlink', linkname: '/../..' },
      { name: 'slash/sentinel/sub/file', content: 'pwned-slash' },
      { name: 'chain1', type: 'symlink', linkname: 'chain2/x' },
      { name: 'chain2', type: 'symlink', linkname: '../../../../sentinel' },
      { name: 'chain1/y', content: 'pwned-chain' },
    ]);
    await untouched();
    // `../sentinel` from the root is `<root>/sentinel`; an absolute target is taken inside the root.
    expect(await readFile(join(root, 'sentinel/secret'), 'utf8')).toBe('pwned-rel');
    expect(await readFile(join(root, sentinel, 'secret'), 'utf8')).toBe('pwned-abs');
    expect(await readFile(join(root, 'sentinel/sub/file'), 'utf8')).toBe('pwned-slash');
    expect(await readFile(join(root, 'sentinel/x/y'), 'utf8')).toBe('pwned-chain');
    // The links themselves are stored verbatim.
    expect(await readlink(join(root, 'up'))).toBe('../sentinel');
  });

  it('a directory entry through a symlink to outside creates the directory inside the root', async () => {
    await symlink('../../sentinel', join(root, 'out'));
    await unpack([{ name: 'out/newdir/', type: 'directory', mode: 0o777 }, { name: 'out/sub/', type: 'directory', mode: 0o700, uid: 5 }]);
    await untouched();
    expect((await stat(join(root, 'sentinel/newdir'))).isDirectory()).toBe(true);
  });

  it('does not follow an existing symlink at the entry path: the entry replaces the link', async () => {
    await symlink(join(sentinel, 'secret'), join(root, 'victim'));
    await symlink('../sentinel/sub', join(root, 'victimdir'));
    await unpack([
      { name: 'victim', content: 'pwned' },
      { name: 'victimdir/', type: 'directory', mode: 0o777 },
    ]);
    expect(await readFile(join(root, 'victim'), 'utf8')).toBe('pwned');
    expect((await lstat(join(root, 'victimdir'))).isDirectory()).toBe(true);
    await untouched();
  });

  it('a hardlink through a symlink to outside cannot reach the outside file', async () => {
    await expect(
      unpack([
        { name: 'out', type: 'symlink', linkname: '../sentinel' },
        { name: 'h', type: 'link', linkname: 'out/secret' },
      ]),
    ).rejects.toThrow(/refusing entry "h".*does not exist/);
    await untouched();
  });

  it('whiteouts and opaque whiteouts through a symlink stay inside the root', async () => {
    await symlink('../sentinel', join(root, 'out'));
    await symlink(sentinel, join(root, 'outabs'));
    await unpack([{ name: 'out/.wh.secret' }, { name: 'outabs/.wh..wh..opq' }, { name: 'out/sub/.wh.file' }, { name: '.wh.out' }]);
    await untouched();
  });

  it('a directory replaced by a symlink to outside within the layer: later entries under it stay inside (resolution cache)', async () => {
    await unpack([
      { name: 'a/', type: 'directory' },
      { name: 'a/first', content: 'cached parent' },
      { name: 'a', type: 'symlink', linkname: sentinel },
      { name: 'a/secret', content: 'pwned' },
      { name: 'a/sub/file', content: 'pwned' },
    ]);
    expect(await readFile(join(root, sentinel, 'secret'), 'utf8')).toBe('pwned');
    expect(await readlink(join(root, 'a'))).toBe(sentinel);
    await untouched();
  });

  it('a whiteout of a symlinked directory, then a real one: later entries go into the real one (resolution cache)', async () => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('usr/lib', join(root, 'lib'));
    await unpack([
      { name: 'lib/x', content: 'through the link' },
      { name: '.wh.lib' },
      { name: 'lib/', type: 'directory' },
      { name: 'lib/y', content: 'in the new dir' },
    ]);
    expect(await readFile(join(root, 'usr/lib/x'), 'utf8')).toBe('through the link');
    expect((await lstat(join(root, 'lib'))).isDirectory()).toBe(true);
    expect(await readdir(join(root, 'lib'))).toEqual(['y']);
    await untouched();
  });

  it('refuses a symlink loop instead of spinning', async () => {
    await symlink('b', join(root, 'a'));
    await symlink('a', join(root, 'b'));
    await expect(unpack([{ name: 'a/x', content: 'x' }])).rejects.toThrow(/too many levels of symbolic links/);
    await untouched();
  });
});
