// ADD after the Dockerfile reference ("ADD") and BuildKit: local tar archives (plain, gzip, bzip2, xz,
// zstd; detected by content, not by name) are extracted with their owners and modes, or with --chown's
// (BuildKit v0.23+); remote URLs are downloaded, never extracted, 0600 and 0:0 unless told otherwise,
// with Last-Modified as mtime and --checksum verified.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeContext } from '../support/executor.js';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

const run = promisify(execFile);
const images = inject('images');
const getcap = (path: string): string => execFileSync('getcap', [path]).toString().trim().replace(/^\S+\s*/, '');

/** A context with one small tree archived every way ADD must understand, made with GNU tar. */
async function archiveContext(): Promise<string> {
  const ctx = await writeContext({ 'tree/dir/hello.txt': 'hello from the archive\n', 'notatar.txt': 'just text\n' });
  await run('chmod', ['0751', join(ctx, 'tree/dir/hello.txt')]);
  const tar = (out: string, ...flags: string[]) =>
    run('tar', ['-C', join(ctx, 'tree'), '--owner=1234', '--group=2345', '--numeric-owner', ...flags, '-cf', join(ctx, out), 'dir']);
  await tar('t.tar');
  await tar('t.tgz', '-z');
  await tar('t.tar.bz2', '-j');
  await tar('t.tar.xz', '-J');
  await tar('t.tar.zst', '--zstd');
  // Named like nothing an extension check would extract: detected by its gzip magic and tar header.
  await tar('disguised.bin', '-z');
  // gzip, but no tar inside: copied as it is.
  await run('sh', ['-c', `gzip -c ${join(ctx, 'notatar.txt')} > ${join(ctx, 'plain.gz')}`]);
  // What tar-stream's extractor lost: a file capability (a binary PAX record, GNU tar --xattrs) on a
  // file and its hardlink, and a FIFO.
  const special = join(ctx, 'special');
  await mkdir(special);
  await writeFile(join(special, 'pinger'), 'ping\n', { mode: 0o755 });
  await run('setcap', ['cap_net_raw+ep', join(special, 'pinger')]);
  await run('ln', [join(special, 'pinger'), join(special, 'pinger6')]);
  await run('mkfifo', ['-m', '0620', join(special, 'pipe')]);
  await run('tar', ['-C', special, '--xattrs', '--xattrs-include=security.capability', '-czf', join(ctx, 'special.tgz'), '.']);
  await rm(special, { recursive: true });
  await rm(join(ctx, 'tree'), { recursive: true });
  return ctx;
}

async function stat(b: LayoutBuild, p: string): Promise<string> {
  const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', p));
  return `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}`;
}

describe('ADD of local archives', () => {
  let b: LayoutBuild;
  beforeAll(async () => {
    const ctx = await archiveContext();
    await writeFile(
      join(ctx, 'Dockerfile'),
      [
        `FROM ${images.busybox}`,
        'ADD t.tar /tar/',
        'ADD t.tgz /gz',
        'ADD t.tar.bz2 /bz2/',
        'ADD t.tar.xz /xz/',
        'ADD t.tar.zst /zst/',
        'ADD disguised.bin /disguised/',
        'ADD plain.gz /files/',
        'ADD --chown=1000:1000 t.tgz /owned/',
        'ADD special.tgz /special/',
        'ADD --chown=1000:1000 special.tgz /special-owned/',
        '',
      ].join('\n'),
    );
    b = await buildToLayout({}, [], { ctx });
  });
  afterAll(async () => {
    await b?.cleanup();
    await rm(b?.ctx ?? '/nonexistent-kiln', { recursive: true, force: true });
  });

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it.each(['tar', 'gz', 'bz2', 'xz', 'zst'])('extracts the %s archive with its owners and modes', async (dir) => {
    expect(await b.file(`${dir}/dir/hello.txt`)).toBe('hello from the archive\n');
    expect(await stat(b, `${dir}/dir/hello.txt`)).toBe('1234:2345:751');
    expect(await stat(b, `${dir}/dir`)).toMatch(/^1234:2345:/);
  });

  it('detects an archive by content, not by its name', async () => {
    expect(await b.file('disguised/dir/hello.txt')).toBe('hello from the archive\n');
  });

  it('copies a compressed file that holds no tar as it is', async () => {
    const bytes = await readFile(join(b.image?.rootfs ?? '/nonexistent', 'files/plain.gz'));
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('applies --chown to every extracted entry', async () => {
    expect(await stat(b, 'owned/dir/hello.txt')).toBe('1000:1000:751');
    expect(await stat(b, 'owned/dir')).toMatch(/^1000:1000:/);
  });

  it('keeps a file capability (binary PAX record) on the file and its hardlink, with and without --chown', async () => {
    const rootfs = b.image?.rootfs ?? '/nonexistent';
    for (const dir of ['special', 'special-owned']) {
      expect(getcap(join(rootfs, dir, 'pinger'))).toBe('cap_net_raw=ep');
      expect(getcap(join(rootfs, dir, 'pinger6'))).toBe('cap_net_raw=ep');
      expect((await lstat(join(rootfs, dir, 'pinger'))).ino).toBe((await lstat(join(rootfs, dir, 'pinger6'))).ino);
    }
    expect(await stat(b, 'special-owned/pinger')).toBe('1000:1000:755');
  });

  it('creates a FIFO from a FIFO entry', async () => {
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'special/pipe'));
    expect(st.isFIFO()).toBe(true);
    expect(await stat(b, 'special/pipe')).toBe('0:0:620');
  });

  it('refuses an archive entry that climbs out of the destination', async () => {
    const ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nADD evil.tar /x/\n` });
    const p = pack();
    p.entry({ name: '../../escaped.txt' }, 'nope\n');
    p.finalize();
    const chunks: Buffer[] = [];
    for await (const c of p) chunks.push(c as Buffer);
    await writeFile(join(ctx, 'evil.tar'), Buffer.concat(chunks));
    const r = await buildToLayout({}, [], { ctx });
    await r.cleanup();
    await rm(ctx, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:2 ADD evil.tar \/x\/: .*refusing archive entry "..\/..\/escaped.txt"/);
  });
});

describe('ADD of remote URLs', () => {
  const body = 'remote file body\n';
  const lastModified = new Date('2021-03-04T05:06:07Z');
  let server: Server;
  let base: string;
  let tgz: Buffer;
  let b: LayoutBuild;
  const sha = (x: string | Buffer) => `sha256:${createHash('sha256').update(x).digest('hex')}`;

  beforeAll(async () => {
    const ctx = await archiveContext();
    tgz = await readFile(join(ctx, 't.tgz'));
    await rm(ctx, { recursive: true, force: true });
    server = createServer((req, res) => {
      if (req.url === '/files/app.txt') {
        res.writeHead(200, { 'content-type': 'text/plain', 'last-modified': lastModified.toUTCString() });
        res.end(body);
      } else if (req.url === '/files/t.tgz') {
        res.writeHead(200, { 'content-type': 'application/gzip' });
        res.end(tgz);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    b = await buildToLayout({
      Dockerfile: [
        `FROM ${images.busybox}`,
        `ADD ${base}/files/app.txt /downloads/`,
        `ADD --checksum=${sha(body)} ${base}/files/app.txt /checked.txt`,
        `ADD --chown=1000:1000 --chmod=644 ${base}/files/app.txt /owned/`,
        `ADD ${base}/files/t.tgz /remote/`,
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => {
    await b?.cleanup();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('downloads into a directory under the URL\'s file name, 0600 and root-owned, mtime from Last-Modified', async () => {
    expect(await b.file('downloads/app.txt')).toBe(body);
    expect(await stat(b, 'downloads/app.txt')).toBe('0:0:600');
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'downloads/app.txt'));
    expect(st.mtime.getTime()).toBe(lastModified.getTime());
  });

  it('verifies --checksum and names the destination file', async () => {
    expect(await b.file('checked.txt')).toBe(body);
  });

  it('applies --chown and --chmod', async () => {
    expect(await stat(b, 'owned/app.txt')).toBe('1000:1000:644');
  });

  it('never extracts a remote archive', async () => {
    const bytes = await readFile(join(b.image?.rootfs ?? '/nonexistent', 'remote/t.tgz'));
    expect(bytes.equals(tgz)).toBe(true);
    expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'remote/dir'))).toBe(false);
  });

  it('fails a checksum mismatch with one line naming the URL', async () => {
    const wrong = `sha256:${'0'.repeat(64)}`;
    const r = await buildToLayout({ Dockerfile: `FROM ${images.busybox}\nADD --checksum=${wrong} ${base}/files/app.txt /x\n` });
    await r.cleanup();
    expect(r.code).toBe(1);
    const line = r.stderr.split('\n').find((l) => l.startsWith('error building image'));
    expect(line).toContain(`checksum mismatch for ${base}/files/app.txt: expected ${wrong}, got ${sha(body)}`);
    expect(line).toMatch(/Dockerfile:2 ADD/);
  });

  it('fails an HTTP error naming the URL and status', async () => {
    const r = await buildToLayout({ Dockerfile: `FROM ${images.busybox}\nADD ${base}/missing /x\n` });
    await r.cleanup();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ADD ${base}/missing: HTTP 404`);
  });

  it('refuses --checksum on a local source', async () => {
    const r = await buildToLayout({ 'a.txt': 'a', Dockerfile: `FROM ${images.busybox}\nADD --checksum=${sha('a')} a.txt /a\n` });
    await r.cleanup();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("checksum can't be specified for non-HTTP(S) sources");
  });
});

