// extractArchive (ADD of a local tar) on a real rootfs in a temp dir: the layer unpacker's fidelity
// (binary `security.capability` PAX records, FIFOs) with ADD's own rules (entries stay in the
// destination, --chown, no whiteouts, the build's ignore list).
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerfileError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import { detectArchive, extractArchive, type ExtractOptions } from '../../src/instructions/add/add-archive.js';
import { IgnoreList, defaultIgnoreList } from '../../src/rootfs/ignore-list.js';
import { nativeFs } from '../../src/rootfs/native-fs.js';
import { tarBytes, tempDir, type TarEntry } from '../rootfs/fixtures.js';

const site = { file: 'Dockerfile', line: 2, source: 'ADD a.tar /dest/' };
const ctx = { log: silentLogger(), signal: new AbortController().signal };
const native = nativeFs();
const getcap = (path: string): string => execFileSync('getcap', [path]).toString().trim().replace(/^\S+\s*/, '');

let tmp: { path: string; cleanup: () => Promise<void> };
let root: string;
let src: string;

beforeEach(async () => {
  tmp = await tempDir();
  root = join(tmp.path, 'root');
  src = join(tmp.path, 'src');
  await mkdir(join(root, 'dest'), { recursive: true });
  await mkdir(src);
});
afterEach(async () => tmp.cleanup());

async function extract(file: string, more: Partial<ExtractOptions> = {}): Promise<void> {
  const st = await stat(file);
  const compression = await detectArchive(file, st, site);
  if (compression === undefined) throw new Error(`${file} is not an archive`);
  await extractArchive({ file, compression, destRoot: root, destDir: '/dest', owner: undefined, ignore: IgnoreList.empty(), ctx, site, ...more });
}

async function archive(entries: readonly TarEntry[]): Promise<string> {
  const file = join(tmp.path, 'a.tar');
  await writeFile(file, await tarBytes(entries));
  return file;
}

/** GNU tar of `src`'s contents, with xattrs. */
function gnuTar(out: string, ...flags: string[]): string {
  const file = join(tmp.path, out);
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', ...flags, '-C', src, '-cf', file, '.']);
  return file;
}

describe.skipIf(native === null)('ADD archive: what the tar-stream extractor lost', () => {
  it('keeps a binary security.capability (GNU tar --xattrs, gzip) on files and hardlinks', async () => {
    await writeFile(join(src, 'ping'), 'ping', { mode: 0o755 });
    execFileSync('setcap', ['cap_net_raw+ep', join(src, 'ping')]);
    await writeFile(join(src, 'clock'), 'clock', { mode: 0o755 });
    // A value with bytes that are not valid UTF-8 (0x80 and up in the capability masks).
    execFileSync('setcap', ['cap_net_bind_service,cap_sys_time,cap_setfcap=eip', join(src, 'clock')]);
    execFileSync('ln', [join(src, 'ping'), join(src, 'ping6')]);
    const file = gnuTar('caps.tgz', '-z');
    // GNU tar recorded them as PAX records, as docker and containerd do.
    expect(execFileSync('sh', ['-c', `gunzip -c ${file} | grep -ac SCHILY.xattr.security.capability`]).toString().trim()).not.toBe('0');
    await extract(file);
    expect(getcap(join(root, 'dest/ping'))).toBe('cap_net_raw=ep');
    expect(getcap(join(root, 'dest/ping6'))).toBe('cap_net_raw=ep');
    expect(getcap(join(root, 'dest/clock'))).toBe(getcap(join(src, 'clock')));
    expect(await readFile(join(root, 'dest/ping'), 'utf8')).toBe('ping');
  });

  it('keeps the capability with --chown (set after the chown that would clear it)', async () => {
    await writeFile(join(src, 'ping'), 'ping', { mode: 0o4755 });
    execFileSync('setcap', ['cap_net_raw+ep', join(src, 'ping')]);
    await extract(gnuTar('caps.tar'), { owner: { uid: 1000, gid: 1001 } });
    const st = await lstat(join(root, 'dest/ping'));
    expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([1000, 1001, '4755']);
    expect(getcap(join(root, 'dest/ping'))).toBe('cap_net_raw=ep');
  });

  it('creates a FIFO for a FIFO entry, with its mode and owner', async () => {
    execFileSync('mkfifo', ['-m', '0640', join(src, 'pipe')]);
    execFileSync('chown', ['7:8', join(src, 'pipe')]);
    await extract(gnuTar('fifo.tar'));
    const st = await lstat(join(root, 'dest/pipe'));
    expect(st.isFIFO()).toBe(true);
    expect([st.uid, st.gid, (st.mode & 0o7777).toString(8)]).toEqual([7, 8, '640']);
  });
});

describe('ADD archive: ADD semantics', () => {
  it('keeps owners, modes and times; directories get theirs after their contents', async () => {
    const mtime = new Date(1_500_000_000_000);
    await extract(
      await archive([
        { name: 'd/', type: 'directory', mode: 0o750, uid: 5, gid: 6, mtime },
        { name: 'd/f', content: 'f', mode: 0o604, uid: 7, gid: 8, mtime },
        { name: 'd/l', type: 'symlink', linkname: 'f', uid: 9, gid: 9, mtime },
        // A hardlink entry's metadata applies to the shared inode, as docker applies it.
        { name: 'd/h', type: 'link', linkname: 'd/f', mode: 0o604, uid: 7, gid: 8, mtime },
      ]),
    );
    const d = await lstat(join(root, 'dest/d'));
    expect([d.uid, d.gid, (d.mode & 0o7777).toString(8), d.mtime.getTime()]).toEqual([5, 6, '750', mtime.getTime()]);
    const f = await lstat(join(root, 'dest/d/f'));
    expect([f.uid, f.gid, (f.mode & 0o7777).toString(8), f.mtime.getTime(), f.nlink]).toEqual([7, 8, '604', mtime.getTime(), 2]);
    expect(await readlink(join(root, 'dest/d/l'))).toBe('f');
    expect((await lstat(join(root, 'dest/d/h'))).ino).toBe(f.ino);
  });

  it('--chown applies to every entry', async () => {
    await extract(await archive([{ name: 'd/', type: 'directory', uid: 5 }, { name: 'd/f', content: 'x', uid: 7 }, { name: 'd/l', type: 'symlink', linkname: 'f' }]), { owner: { uid: 1000, gid: 1000 } });
    for (const p of ['dest/d', 'dest/d/f', 'dest/d/l']) {
      const st = await lstat(join(root, p));
      expect([p, st.uid, st.gid]).toEqual([p, 1000, 1000]);
    }
  });

  it('merges into an existing directory and replaces what else stands at a path', async () => {
    await mkdir(join(root, 'dest/d'));
    await writeFile(join(root, 'dest/d/kept'), 'kept');
    await writeFile(join(root, 'dest/was-file'), 'file');
    await mkdir(join(root, 'dest/was-dir/sub'), { recursive: true });
    await extract(await archive([{ name: 'd/', type: 'directory' }, { name: 'd/new', content: 'new' }, { name: 'was-file/', type: 'directory' }, { name: 'was-dir', content: 'now a file' }]));
    expect(await readFile(join(root, 'dest/d/kept'), 'utf8')).toBe('kept');
    expect(await readFile(join(root, 'dest/d/new'), 'utf8')).toBe('new');
    expect((await lstat(join(root, 'dest/was-file'))).isDirectory()).toBe(true);
    expect(await readFile(join(root, 'dest/was-dir'), 'utf8')).toBe('now a file');
  });

  it('has no whiteout semantics: .wh. entries are plain files', async () => {
    await writeFile(join(root, 'dest/victim'), 'still here');
    await extract(await archive([{ name: '.wh.victim', content: '' }, { name: '.wh..wh..opq', content: '' }]));
    expect(await readFile(join(root, 'dest/victim'), 'utf8')).toBe('still here');
    expect((await lstat(join(root, 'dest/.wh.victim'))).isFile()).toBe(true);
    expect((await lstat(join(root, 'dest/.wh..wh..opq'))).isFile()).toBe(true);
  });

  it('follows a destination that is a symlink inside the rootfs', async () => {
    await mkdir(join(root, 'real'));
    await symlink('/real', join(root, 'via'));
    await extract(await archive([{ name: 'f', content: 'x' }, { name: 'sub/g', content: 'y' }]), { destDir: '/via/' });
    expect(await readFile(join(root, 'real/f'), 'utf8')).toBe('x');
    expect(await readFile(join(root, 'real/sub/g'), 'utf8')).toBe('y');
  });

  it('follows symlinks that stay inside the destination', async () => {
    await extract(await archive([{ name: 'a/', type: 'directory' }, { name: 'l', type: 'symlink', linkname: 'a' }, { name: 'l/f', content: 'x' }]));
    expect(await readFile(join(root, 'dest/a/f'), 'utf8')).toBe('x');
  });

  it('writes nothing on the build ignore list', async () => {
    await extract(await archive([{ name: 'kaniko/evil', content: 'x' }, { name: 'ok', content: 'y' }]), { destDir: '/', ignore: IgnoreList.of(['/kaniko']) });
    await expect(lstat(join(root, 'kaniko'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(root, 'ok'), 'utf8')).toBe('y');
  });

  it("container mode: entries under the live /sys, /proc or the runtime's files are left out, with one warning line", async () => {
    const warnings: string[] = [];
    const log = silentLogger();
    log.warn = ((m: unknown) => void warnings.push(String(m))) as typeof log.warn;
    const entries = [
      { name: 'sys/kernel/x', content: 's' },
      { name: 'proc/y', content: 'p' },
      { name: 'etc/hosts', content: 'h' },
      { name: 'opt/o', content: 'o' },
    ];
    await extract(await archive(entries), { destDir: '/', ignore: defaultIgnoreList({ mode: 'container' }), ctx: { ...ctx, log } });
    await expect(lstat(join(root, 'sys'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(join(root, 'etc/hosts'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(root, 'opt/o'), 'utf8')).toBe('o');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^ADD a\.tar: 3 entries left out \(the first: sys\/kernel\/x\): .*ignore list.*docker build would put it in the layer$/);
    // Sandbox mode (the stage's own tree): all of them are written, as docker build writes them.
    warnings.length = 0;
    await extract(await archive(entries), { destDir: '/', ignore: defaultIgnoreList({ mode: 'sandbox' }), ctx: { ...ctx, log } });
    expect(await readFile(join(root, 'sys/kernel/x'), 'utf8')).toBe('s');
    expect(await readFile(join(root, 'etc/hosts'), 'utf8')).toBe('h');
    expect(warnings).toEqual([]);
  });

  it('skips device entries', async () => {
    await extract(await archive([{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }, { name: 'f', content: 'x' }]));
    await expect(lstat(join(root, 'dest/null'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(root, 'dest/f'), 'utf8')).toBe('x');
  });
});

describe('ADD archive: breakouts are refused, naming the archive and the entry', () => {
  const refused = async (entries: readonly TarEntry[], pattern: RegExp): Promise<void> => {
    const err = await extract(await archive(entries)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DockerfileError);
    expect((err as Error).message).toMatch(pattern);
    // Nothing reached the rootfs outside the destination.
    expect(execFileSync('find', [root, '-mindepth', '1', '-not', '-path', `${root}/dest*`]).toString()).toBe('');
  };

  it('a name whose .. climbs out of the destination', async () => {
    await refused([{ name: '../x', content: 'pwned' }], /^Dockerfile:2 ADD a\.tar \/dest\/: ADD a\.tar: refusing archive entry "\.\.\/x": its path climbs out of the destination$/);
    await refused([{ name: 'a/../../x', content: 'pwned' }], /refusing archive entry "a\/\.\.\/\.\.\/x": its path climbs out of the destination/);
  });

  it('an entry written through a symlink of the archive that leads out of the destination', async () => {
    await refused(
      [
        { name: 'l', type: 'symlink', linkname: '/' },
        { name: 'l/x', content: 'pwned' },
      ],
      /refusing archive entry "l\/x": a symlink leads it out of the destination/,
    );
    await refused(
      [
        { name: 'up', type: 'symlink', linkname: '..' },
        { name: 'up/x', content: 'pwned' },
      ],
      /refusing archive entry "up\/x": a symlink leads it out of the destination/,
    );
  });

  it('an entry written through a symlink already in the rootfs that leads out of the destination', async () => {
    await symlink('/etc', join(root, 'dest/etc'));
    await refused([{ name: 'etc/passwd', content: 'pwned' }], /refusing archive entry "etc\/passwd": a symlink leads it out of the destination/);
  });

  it('a hardlink whose target is outside the destination', async () => {
    await writeFile(join(root, 'dest/../secret'), 'secret');
    const err = await extract(await archive([{ name: 'h', type: 'link', linkname: '../secret' }])).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/refusing archive entry "h": its link target "\.\.\/secret" is outside the destination/);
    await symlink('/', join(root, 'dest/up'));
    const err2 = await extract(await archive([{ name: 'h', type: 'link', linkname: 'up/secret' }])).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/refusing archive entry "h": its link target "up\/secret" is outside the destination/);
    await expect(lstat(join(root, 'dest/h'))).rejects.toThrow(/ENOENT/);
  });

  it('a corrupt archive names the archive', async () => {
    const file = join(tmp.path, 'bad.tgz');
    const good = await tarBytes([{ name: 'f', content: 'x'.repeat(10_000) }]);
    const gz = execFileSync('gzip', ['-c'], { input: good });
    await writeFile(file, gz.subarray(0, gz.length - 20));
    await expect(extractArchive({ file, compression: 'gzip', destRoot: root, destDir: '/dest', owner: undefined, ignore: IgnoreList.empty(), ctx, site })).rejects.toThrow(
      /^Dockerfile:2 ADD a\.tar \/dest\/: extracting bad\.tgz: /,
    );
  });
});
