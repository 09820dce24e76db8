import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DigestMismatchError, UnpackError } from '../../src/errors.js';
import { sha256Digest } from '../../src/oci/digest.js';
import { IgnoreList, defaultIgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { fingerprint, tarBytes, tarOf, tempDir, type TarEntry } from './fixtures.js';

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

  it('skips character and block devices and FIFOs, counting them', async () => {
    const stats = await unpack([
      { name: 'dev2/null', type: 'character-device', devmajor: 1, devminor: 3 },
      { name: 'dev2/sda', type: 'block-device', devmajor: 8, devminor: 0 },
      { name: 'run/pipe', type: 'fifo' },
      { name: 'ok', content: 'ok' },
    ]);
    expect(stats.skipped).toBe(3);
    expect(stats.files).toBe(1);
    await expect(lstat(join(root, 'dev2/null'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(root, 'run/pipe'))).rejects.toThrow(/ENOENT/);
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
    const ignore = defaultIgnoreList({ mode: 'sandbox' });
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

  it('refuses a symlink loop instead of spinning', async () => {
    await symlink('b', join(root, 'a'));
    await symlink('a', join(root, 'b'));
    await expect(unpack([{ name: 'a/x', content: 'x' }])).rejects.toThrow(/too many levels of symbolic links/);
    await untouched();
  });
});
