// Hostile inputs are bounded and refused in one line (issue 14): a context tar or an ADD archive that
// unpacks to far more than it weighs (a gzip bomb), a registry that sends an endless manifest, a token
// endpoint that redirects in a loop. Nothing is pushed.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, tagExists, writeContext } from '../support/executor.js';
import { startStallingServer, type StallingServer } from '../support/stalling-servers.js';
import { tarBytes } from '../rootfs/fixtures.js';

const run = promisify(execFile);

/** An OCI layout of one image whose one layer is `tar`, made by hand (no kiln code), tag `img`. */
async function layoutOf(dir: string, tar: Buffer): Promise<string> {
  const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const layout = join(dir, 'layout');
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const d = sha(b);
    await writeFile(join(layout, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const gz = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha(tar)] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await put(gz), size: gz.length }],
    }),
  );
  const m = await put(manifest);
  await writeFile(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'img' } }] }));
  return layout;
}

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: '));
}

/** tar.gz of one file of `mib` MiB of zeros (~1000x smaller than that). */
async function gzipBomb(mib: number): Promise<Buffer> {
  const tar = await tarBytes([{ name: 'Dockerfile', content: 'FROM scratch\n' }, { name: 'zeros', content: Buffer.alloc(mib * 1024 * 1024) }]);
  const chunks: Buffer[] = [];
  for await (const c of Readable.from([tar]).pipe(createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('hostile inputs', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dirs: string[] = [];
  let endless: StallingServer;
  let loop: StallingServer;
  beforeAll(async () => {
    endless = await startStallingServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        return;
      }
      // No Content-Length: chunks for as long as anyone reads.
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const block = Buffer.alloc(64 * 1024, 0x20);
      const pump = (): void => {
        while (!res.destroyed && res.write(block));
        if (!res.destroyed) res.once('drain', pump);
      };
      res.write('{"schemaVersion":2,"x":"');
      pump();
    });
    loop = await startStallingServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${loop.host}/token",service="t"` }).end('{}');
        return;
      }
      res.writeHead(302, { Location: `http://${loop.host}/token?again=${Math.random()}` }).end();
    });
  });
  afterAll(async () => {
    await Promise.all([endless.stop(), loop.stop()]);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a context tar.gz bomb is refused at --archive-max-mib', async () => {
    const dir = await writeContext({});
    dirs.push(dir);
    const bomb = join(dir, 'ctx.tar.gz');
    await writeFile(bomb, await gzipBomb(64));
    const r = await executor(['--context', `tar://${bomb}`, '--no-push', '--archive-max-mib', '16']);
    expect(r.code).toBe(1);
    expect(errorLines(r.stderr)).toEqual([`error building image: build context ${bomb}: unpacks to more than 16 MiB (--archive-max-mib)`]);
  }, 60_000);

  it('an ADD archive bomb is refused on its ADD line, nothing pushed', async () => {
    const dir = await writeContext({ Dockerfile: `FROM ${images.busybox}\nADD bomb.tar.gz /x/\n` });
    dirs.push(dir);
    await writeFile(join(dir, 'bomb.tar.gz'), await gzipBomb(64));
    const dest = `${registry}/e2e/hostile-add:1`;
    const r = await executor(['--context', dir, '--destination', dest, '--insecure', '--insecure-pull', '--archive-max-mib', '16']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('Dockerfile:2 ADD bomb.tar.gz /x/');
    expect(lines[0]).toContain('more than 16 MiB (--archive-max-mib)');
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('an endless manifest body is refused at the manifest limit', async () => {
    const dir = await writeContext({ Dockerfile: `FROM ${endless.host}/x/y:1\n` });
    dirs.push(dir);
    const r = await executor(['--context', dir, '--no-push', '--insecure-pull']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`manifest ${endless.host}/x/y:1 is more than the 8388608 bytes allowed`);
  }, 60_000);

  it('a token endpoint that redirects in a loop fails in one line naming it', async () => {
    const dir = await writeContext({ Dockerfile: `FROM ${loop.host}/x/y:1\n` });
    dirs.push(dir);
    const r = await executor(['--context', dir, '--no-push', '--insecure-pull']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(loop.host);
    expect(lines[0]).toContain(`authenticating to ${loop.host}: token endpoint http://${loop.host}/token redirected more than 5 times`);
  }, 60_000);

  // Issue 14, item 4: names Linux cannot take, refused from the header in one short line.
  it('a context tar with a path over PATH_MAX and a symlink target over it: one line, nothing left', async () => {
    const dir = await writeContext({});
    dirs.push(dir);
    const deep = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(248)}`).join('/');
    const tar = join(dir, 'ctx.tar');
    for (const [name, entry] of [
      ['path', { name: `${deep}/f`, content: 'x' }],
      ['link', { name: 'l', type: 'symlink' as const, linkname: `/${'t'.repeat(5000)}` }],
    ] as const) {
      await writeFile(tar, await tarBytes([{ name: 'Dockerfile', content: 'FROM scratch\nCOPY . /\n' }, entry]));
      const tmp = await mkdtemp(join(tmpdir(), 'kiln-names-tmp-'));
      dirs.push(tmp);
      const r = await executor(['--context', `tar://${tar}`, '--no-push'], { env: { TMPDIR: tmp } });
      expect(r.code, name).toBe(1);
      const lines = errorLines(r.stderr);
      expect(lines, name).toHaveLength(1);
      expect(lines[0]!.length, name).toBeLessThan(400);
      expect(lines[0], name).toMatch(name === 'path' ? /refusing entry .*: its path would be \d+ bytes on the host, longer than the 4095 Linux allows \(PATH_MAX\)$/ : /refusing entry "l": its symlink target is 5001 bytes, longer than the 4095 Linux allows \(PATH_MAX\)$/);
      // The build's work dir (the unpacked context in it) is gone: nothing of the archive is left.
      expect(await readdir(tmp), name).toEqual([]);
    }
  }, 60_000);

  it('a base image layer with a name over NAME_MAX: the build fails in one line naming the layer, nothing pushed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-names-layer-'));
    dirs.push(dir);
    const layout = await layoutOf(dir, await tarBytes([{ name: 'ok.txt', content: 'ok' }, { name: `etc/${'n'.repeat(300)}`, content: 'x' }]));
    const base = `${registry}/e2e/long-name-base:1`;
    await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:img`, `docker://${base}`]);
    const ctx = await writeContext({ Dockerfile: `FROM ${base}\nRUN true\n` });
    dirs.push(ctx);
    const dest = `${registry}/e2e/long-name:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.length).toBeLessThan(400);
    expect(lines[0]).toMatch(/layer sha256:[0-9a-f]{12,64}.*refusing entry "etc\/n+"\.\.\."n+" \(304 bytes\): a name in its path is 300 bytes, longer than the 255 a filesystem allows \(NAME_MAX\)$/);
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);
});
