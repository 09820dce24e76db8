// Faults between kiln and a real registry: a registry that goes away in the middle of a push, one that
// answers 500 for a while, one that refuses large bodies or immutable tags, a blob whose bytes do not
// match its digest, and blob downloads redirected to another host.
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/digest.js';
import { parseReference } from '../../src/oci/reference.js';
import { pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { spoolingImage } from '../../src/sources/registry-spool.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { errorBody, startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { captureContext, MemoryLayer, newClient, readAll, sha256, skopeo, testImage } from './fixtures.js';

const linux = { os: 'linux', architecture: 'amd64' };

async function tagExists(ref: string): Promise<boolean> {
  return skopeo('inspect', '--tls-verify=false', '--raw', `docker://${ref}`).then(
    () => true,
    () => false,
  );
}

/** A layer whose `compressed()` first runs `hook` (once), to act in the middle of a push. */
function layerWithHook(layer: MemoryLayer, hook: () => Promise<void>): MemoryLayer {
  let fired = false;
  return Object.assign(Object.create(layer) as MemoryLayer, {
    compressed: async (): Promise<Readable> => {
      if (!fired) {
        fired = true;
        await hook();
      }
      return Readable.from([layer.gz]);
    },
  });
}

describe('a registry that stops in the middle of a push', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('is retried with backoff until it is back, and the push completes', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 5, retryDelayMs: 200 });
    const first = await MemoryLayer.of({ 'one.txt': 'before the crash' });
    let restarted: Promise<void> | undefined;
    // The registry dies as the second layer is about to upload, and comes back 600ms later.
    const second = layerWithHook(await MemoryLayer.of({ 'two.txt': 'during the crash' }), async () => {
      await reg.kill();
      restarted = new Promise((r) => setTimeout(r, 600)).then(() => reg.restart());
    });
    const ref = `${reg.host}/kiln/crash:v1`;
    const digest = await pushImage(client, testImage([first, second]), [parseReference(ref)], ctx, { concurrency: 1 });
    await restarted;
    client.close();
    expect(ctx.lines.some((l) => l.includes('retrying') && l.includes('ECONNREFUSED'))).toBe(true);
    const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${ref}`);
    expect(sha256(Buffer.from(raw))).toBe(digest);
    await skopeo('copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${reg.dir}/crash-copy`);
  });

  it('leaves nothing under the tag when the retries run out', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 2, retryDelayMs: 50 });
    const layer = layerWithHook(await MemoryLayer.of({ 'gone.txt': 'no registry' }), () => reg.kill());
    const ref = `${reg.host}/kiln/gone:v1`;
    const err = await pushImage(client, testImage([layer]), [parseReference(ref)], ctx).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toBe(`unable to reach registry ${reg.host}: connect ECONNREFUSED ${reg.host}`);
    await reg.restart();
    expect(await tagExists(ref)).toBe(false);
  });
});

describe('faults injected in front of a real registry', () => {
  let reg: RunningRegistry;
  let proxy: FaultProxy;
  beforeAll(async () => {
    reg = await startRegistry({ accessLog: true });
    proxy = await startFaultProxy(reg.host);
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
  });

  it('retries a registry that answers 500 to its first requests, and pushes', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 4, retryDelayMs: 20 });
    let failures = 0;
    proxy.fault = (req) => (req.path !== '/v2/' && failures++ < 3 ? { status: 500, body: errorBody('UNKNOWN', 'flaky') } : undefined);
    try {
      const ref = `${proxy.host}/kiln/flaky:v1`;
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ f: 'flaky' })], { label: 'flaky' }), [parseReference(ref)], ctx);
      expect(sha256(Buffer.from(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/flaky:v1`)))).toBe(digest);
    } finally {
      proxy.fault = undefined;
      client.close();
    }
    expect(ctx.lines.filter((l) => l.includes('retrying') && l.includes('500 Internal Server Error'))).toHaveLength(3);
  });

  it('gives up on a registry that keeps answering 500, naming the URL and status', async () => {
    const client = newClient(captureContext(), { retries: 1, retryDelayMs: 5 });
    proxy.fault = (req) => (req.path !== '/v2/' ? { status: 500, body: errorBody('UNKNOWN', 'broken') } : undefined);
    try {
      const err = await client.getManifest(parseReference(`${proxy.host}/kiln/flaky:v1`)).catch((e: unknown) => e);
      expect((err as Error).message).toBe(`GET http://${proxy.host}/v2/kiln/flaky/manifests/v1: 500 Internal Server Error: UNKNOWN: broken`);
    } finally {
      proxy.fault = undefined;
      client.close();
    }
  });

  it('refuses to push a blob whose bytes do not match its digest, and tags nothing', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const honest = await MemoryLayer.of({ 'liar.txt': 'the bytes' });
    const liar = Object.assign(Object.create(honest) as MemoryLayer, { digest: async () => sha256(Buffer.from('other bytes')) });
    const ref = `${reg.host}/kiln/liar-push:v1`;
    const err = await pushImage(client, testImage([liar]), [parseReference(ref)], ctx).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).registryCodes).toContain('DIGEST_INVALID');
    expect((err as Error).message).toMatch(/^PUT http:\/\/127\.0\.0\.1:\d+\/v2\/kiln\/liar-push\/blobs\/uploads\/[\w-]+: 400 Bad Request: DIGEST_INVALID/);
    expect(await tagExists(ref)).toBe(false);
  });

  it('uploads in PATCH chunks when the registry refuses a large single PUT (413)', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { chunkSize: 1000 });
    proxy.fault = (req) =>
      req.method === 'PUT' && req.path.includes('/blobs/uploads/') && (req.contentLength ?? 0) > 1500
        ? { status: 413, body: errorBody('SIZE_INVALID', 'request entity too large') }
        : undefined;
    const big = await MemoryLayer.of({ 'big.bin': randomBytes(3000).toString('latin1') });
    expect(big.gz.byteLength).toBeGreaterThan(2000);
    const before = proxy.requests.length;
    try {
      const digest = await pushImage(client, testImage([big], { label: 'chunks' }), [parseReference(`${proxy.host}/kiln/chunks:v1`)], ctx);
      expect(sha256(Buffer.from(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/chunks:v1`)))).toBe(digest);
      await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/kiln/chunks:v1`, `dir:${reg.dir}/chunks-copy`);
    } finally {
      proxy.fault = undefined;
      client.close();
    }
    const patches = proxy.requests.slice(before).filter((r) => r.method === 'PATCH');
    const n = big.gz.byteLength;
    const want = Array.from({ length: Math.ceil(n / 1000) }, (_, i) => Math.min(1000, n - i * 1000));
    expect(patches.map((r) => r.contentLength)).toEqual(want);
  });

  it('uploads blobs larger than chunkedAbove in chunks, straight to docker-registry', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { chunkedAbove: 100, chunkSize: 128 });
    const layer = await MemoryLayer.of({ 'c.txt': randomBytes(400).toString('hex') });
    const image = testImage([layer], { label: 'direct-chunks' });
    const configSize = (await image.rawConfig()).byteLength;
    expect(configSize).toBeGreaterThan(100);
    const before = reg.requests().length;
    const digest = await pushImage(client, image, [parseReference(`${reg.host}/kiln/direct-chunks:v1`)], ctx);
    client.close();
    await new Promise((r) => setTimeout(r, 100)); // the access log arrives through a pipe
    const reqs = reg.requests().slice(before);
    expect(reqs.filter((r) => r.method === 'PATCH').length).toBe(Math.ceil(layer.gz.byteLength / 128) + Math.ceil(configSize / 128));
    expect(reqs.filter((r) => r.method === 'PATCH').every((r) => r.status === 202)).toBe(true);
    const pulled = await pullImage(newClient(captureContext()), parseReference(`${reg.host}/kiln/direct-chunks:v1`), { platform: linux });
    expect(await pulled.digest()).toBe(digest);
    expect(await readAll(await (await pulled.layers())[0]!.compressed())).toEqual(layer.gz);
  });

  it('resumes a chunked upload where the registry stands after a PATCH fails, in the same session', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { chunkedAbove: 100, chunkSize: 500, retries: 2, retryDelayMs: 5 });
    const layer = await MemoryLayer.of({ 'resume.bin': randomBytes(2400).toString('latin1') });
    const n = layer.gz.byteLength;
    expect(n).toBeGreaterThan(1500);
    const layerDigest = await layer.digest();
    let fullChunks = 0;
    let failed = false;
    // The config is under 500 bytes: the 500-byte PATCHes are the layer's. Its third (bytes 1000-1499)
    // never reaches the registry: a 500 instead.
    proxy.fault = (req) => {
      if (req.method !== 'PATCH' || req.contentLength !== 500) return undefined;
      if (++fullChunks === 3 && !failed) {
        failed = true;
        return { status: 500, body: errorBody('UNKNOWN', 'injected') };
      }
      return undefined;
    };
    const before = proxy.requests.length;
    try {
      const image = testImage([layer], { label: 'resume' });
      const digest = await pushImage(client, image, [parseReference(`${proxy.host}/kiln/resume:v1`)], ctx);
      expect(sha256(Buffer.from(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/resume:v1`)))).toBe(digest);
      await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/kiln/resume:v1`, `dir:${reg.dir}/resume-copy`);
    } finally {
      proxy.fault = undefined;
      client.close();
    }
    expect(failed).toBe(true);
    const reqs = proxy.requests.slice(before);
    // One status GET of the session, and every byte of every blob sent once but the failed chunk's.
    expect(reqs.filter((r) => r.method === 'GET' && r.path.includes('/blobs/uploads/')).length).toBe(1);
    const sent = reqs.filter((r) => r.method === 'PATCH').reduce((a, r) => a + (r.contentLength ?? 0), 0);
    const configSize = (await testImage([layer], { label: 'resume' }).rawConfig()).byteLength;
    expect(sent).toBe(n + configSize + 500);
    // No second session for the layer: POSTs are one per blob.
    expect(reqs.filter((r) => r.method === 'POST').length).toBe(2);
    expect(ctx.lines.some((l) => l.includes(`resuming the upload of ${layerDigest} at byte 1000`))).toBe(true);
  });

  it('downloads a layer again when its body breaks off, with --image-download-retry', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const layer = await MemoryLayer.of({ 'cut.bin': randomBytes(2000).toString('hex') });
    const ref = parseReference(`${proxy.host}/kiln/cut:v1`);
    await pushImage(client, testImage([layer], { label: 'cut' }), [ref], ctx);
    const digest = await layer.digest();
    let cuts = 0;
    // The body stops after 10 of the promised bytes and the connection closes.
    proxy.fault = (req) =>
      req.method === 'GET' && req.path.endsWith(digest) && cuts++ < 1
        ? { status: 200, headers: { 'Content-Length': String(layer.gz.byteLength), Connection: 'close' }, body: 'truncated!' }
        : undefined;
    const dir = await mkdtemp(join(tmpdir(), 'kiln-spool-'));
    try {
      const failing = spoolingImage(await pullImage(client, ref, { platform: linux }), { dir, ctx, retries: 0 });
      const layers = await failing.layers();
      await expect((async () => readAll(await layers[0]!.compressed()))()).rejects.toThrow(
        `layer ${proxy.host}/kiln/cut@${digest}: download broke off: aborted`,
      );
      cuts = 0;
      const retrying = spoolingImage(await pullImage(client, ref, { platform: linux }), { dir, ctx, retries: 1 });
      expect(await readAll(await (await retrying.layers())[0]!.uncompressed())).toEqual(layer.tar);
      expect(ctx.lines.some((l) => l.includes(`retrying the download of layer ${digest}`))).toBe(true);
    } finally {
      proxy.fault = undefined;
      client.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('ignores an immutable-tag refusal only when asked to', async () => {
    const ecr = "tag invalid: The image tag 'v1' already exists in the 'kiln/immutable' repository and cannot be overwritten because the repository is immutable.";
    proxy.fault = (req) =>
      req.method === 'PUT' && req.path === '/v2/kiln/immutable/manifests/v1' ? { status: 400, body: errorBody('TAG_INVALID', ecr) } : undefined;
    const image = testImage([await MemoryLayer.of({ i: 'immutable' })], { label: 'immutable' });
    const dests = [parseReference(`${proxy.host}/kiln/immutable:v1`), parseReference(`${proxy.host}/kiln/immutable:v2`)];
    try {
      const ctx = captureContext('info');
      const client = newClient(ctx);
      const err = await pushImage(client, image, dests, ctx).catch((e: unknown) => e);
      expect((err as RegistryError).registryCodes).toEqual(['TAG_INVALID']);
      const digest = await pushImage(client, image, dests, ctx, { ignoreImmutableTagErrors: true });
      client.close();
      expect(ctx.lines.join('')).toContain(`Immutable tag error ignored for ${proxy.host}/kiln/immutable@${digest}`);
      expect(await tagExists(`${reg.host}/kiln/immutable:v2`)).toBe(true);
    } finally {
      proxy.fault = undefined;
    }
  });
});

describe('blob downloads redirected to another host', () => {
  let reg: RunningRegistry;
  let proxy: FaultProxy;
  let storage: Server;
  let storageHost = '';
  const storageSeen: { path: string; authorized: boolean }[] = [];
  beforeAll(async () => {
    reg = await startRegistry({ auth: { kind: 'htpasswd', users: { kiln: 'redirect-secret' } } });
    // "Storage": serves the registry's blobs (fetched with the registry's credentials by the test).
    storage = createServer((req, res) => {
      storageSeen.push({ path: req.url ?? '', authorized: req.headers.authorization !== undefined });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      void fetch(`http://${reg.host}${path}`, { headers: { Authorization: `Basic ${Buffer.from('kiln:redirect-secret').toString('base64')}` } })
        .then(async (r) => {
          res.writeHead(r.status, { 'Content-Type': 'application/octet-stream' });
          res.end(Buffer.from(await r.arrayBuffer()));
        })
        .catch(() => res.destroy());
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    const addr = storage.address();
    storageHost = `127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
    proxy = await startFaultProxy(reg.host, (req) =>
      req.method === 'GET' && /\/blobs\/sha256:/.test(req.path) && req.authorized
        ? { status: 307, headers: { Location: `http://${storageHost}${req.path}?X-Signature=abc` } }
        : undefined,
    );
  });
  afterAll(async () => {
    await proxy?.stop();
    storage?.closeAllConnections();
    await new Promise((r) => storage?.close(r));
    await reg?.stop();
  });

  it('follows the redirect without sending the credentials to the other host', async () => {
    const { dockerConfigKeychain } = await import('../../src/registry/keychain.js');
    const ctx = captureContext();
    const keychain = dockerConfigKeychain({ auths: { [proxy.host]: { username: 'kiln', password: 'redirect-secret' } } }, ctx.mask);
    const client = newClient(ctx, { keychain });
    const layer = await MemoryLayer.of({ 'r.txt': 'redirected' });
    const ref = parseReference(`${proxy.host}/kiln/redirect:v1`);
    await pushImage(client, testImage([layer]), [ref], ctx);
    const img = await pullImage(client, ref, { platform: linux });
    expect(await readAll(await (await img.layers())[0]!.compressed())).toEqual(layer.gz);
    client.close();
    const layerDigest: Digest = await layer.digest();
    expect(storageSeen).toContainEqual({ path: `/v2/kiln/redirect/blobs/${layerDigest}?X-Signature=abc`, authorized: false });
    expect(storageSeen.every((s) => !s.authorized)).toBe(true);
    // The registry itself did get them.
    expect(proxy.requests.some((r) => r.path === `/v2/kiln/redirect/blobs/${layerDigest}` && r.authorized)).toBe(true);
  });
});
