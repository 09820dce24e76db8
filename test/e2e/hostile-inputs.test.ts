// Hostile inputs are bounded and refused in one line (issue 14): a context tar or an ADD archive that
// unpacks to far more than it weighs (a gzip bomb), a registry that sends an endless manifest, a token
// endpoint that redirects in a loop. Nothing is pushed.
import { writeFile } from 'node:fs/promises';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, tagExists, writeContext } from '../support/executor.js';
import { startStallingServer, type StallingServer } from '../support/stalling-servers.js';
import { tarBytes } from '../rootfs/fixtures.js';

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
});
