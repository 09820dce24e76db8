import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
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
import { selfSignedCertificate, startRegistry, type RunningRegistry } from '../support/registry.js';
import { captureContext, MemoryLayer, newClient, skopeo, testImage } from './fixtures.js';

const linux = { os: 'linux', architecture: 'amd64' };

describe('reaching registries', () => {
  it('reports an unreachable registry in one retryable line, after retrying', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 2, retryDelayMs: 5 });
    const err = await pullImage(client, parseReference('127.0.0.1:1/kiln/none:v1'), { platform: linux }).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.message).toBe('unable to reach registry 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1');
    expect(e.retryable).toBe(true);
    expect(e.code).toBe('REGISTRY');
    expect(ctx.lines.filter((l) => l.includes('retrying'))).toHaveLength(2);
  });

  describe('a registry that answers 503 (and serves one schema 1 manifest)', () => {
    let server: Server;
    let host = '';
    const seen: string[] = [];
    beforeAll(async () => {
      server = createServer((req, res) => {
        seen.push(`${req.method} ${req.url}`);
        if (req.url === '/v2/') {
          res.writeHead(200).end('{}');
          return;
        }
        if (req.url === '/v2/kiln/old/manifests/v1') {
          res.writeHead(200, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
          res.end(JSON.stringify({ schemaVersion: 1, name: 'kiln/old', tag: 'v1', fsLayers: [], history: [] }));
          return;
        }
        res.writeHead(503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'try later' }] }));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const addr = server.address();
      host = `127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    it('retries 5xx with backoff, then fails naming the URL, status and error code', async () => {
      const client = newClient(captureContext(), { retries: 2, retryDelayMs: 5 });
      const err = await client.getManifest(parseReference(`${host}/kiln/busy:v1`)).catch((e: unknown) => e);
      client.close();
      expect(err).toBeInstanceOf(RegistryError);
      const e = err as RegistryError;
      expect(e.message).toBe(`GET http://${host}/v2/kiln/busy/manifests/v1: 503 Service Unavailable: UNAVAILABLE: try later`);
      expect(e.status).toBe(503);
      expect(e.retryable).toBe(true);
      expect(seen.filter((s) => s === 'GET /v2/kiln/busy/manifests/v1')).toHaveLength(3);
    });

    it('refuses Docker schema 1 manifests with a clear error', async () => {
      const client = newClient(captureContext());
      const err = await client.getManifest(parseReference(`${host}/kiln/old:v1`)).catch((e: unknown) => e);
      client.close();
      expect((err as Error).message).toBe(
        `${host}/kiln/old:v1 is a Docker schema 1 manifest, which is deprecated and not supported; push it again with a current client`,
      );
    });
  });

  describe('a registry serving https with a self-signed certificate', () => {
    let reg: RunningRegistry;
    let certDir: string;
    beforeAll(async () => {
      certDir = await mkdtemp(join(tmpdir(), 'kiln-tls-'));
      reg = await startRegistry({ tls: await selfSignedCertificate(certDir) });
    });
    afterAll(async () => {
      await reg?.stop();
      await rm(certDir, { recursive: true, force: true });
    });

    it('is refused, without falling back to http, unless TLS verification is skipped for it', async () => {
      const ctx = captureContext();
      const strict = newClient(ctx, { insecure: () => true });
      const err = await strict.getManifest(parseReference(`${reg.host}/kiln/tls:v1`)).catch((e: unknown) => e);
      strict.close();
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(new RegExp(`^unable to reach registry ${reg.host}: self[- ]signed certificate`));
      expect((err as RegistryError).retryable).toBe(false);
    });

    it('pushes and pulls over https with --skip-tls-verify for that registry', async () => {
      const ctx = captureContext();
      const client = newClient(ctx, { skipTlsVerify: (r) => r === reg.host });
      const ref = parseReference(`${reg.host}/kiln/tls:v1`);
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ tls: 'yes' })]), [ref], ctx);
      expect(await (await pullImage(client, ref, { platform: linux })).digest()).toBe(digest);
      client.close();
      const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/tls:v1`);
      expect(raw.length).toBeGreaterThan(0);
      expect(ctx.lines.join('')).toContain(`registry ${reg.host} speaks https`);
    });
  });

  describe('a plain http registry on loopback', () => {
    let reg: RunningRegistry;
    beforeAll(async () => {
      reg = await startRegistry();
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it('is reached over http after https fails, as go-containerregistry does for local registries', async () => {
      const ctx = captureContext();
      const client = newClient(ctx);
      const ref = parseReference(`${reg.host}/kiln/plain:v1`);
      await pushImage(client, testImage([await MemoryLayer.of({ p: 'http' })]), [ref], ctx);
      client.close();
      expect(ctx.lines.join('')).toContain(`registry ${reg.host} speaks http\n`);
    });
  });
});

// Found by the soak run (bench/soak.mjs): a registry killed mid-upload broke the build with
// `error building image: Error: socket hang up`, not retried. node-fetch destroys the request body with
// the socket's error, and the transport took that for a failure of the body itself.
describe('a connection that breaks in the middle of an upload', () => {
  let server: Server;
  let host = '';
  const puts: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (req.method === 'POST') return void res.writeHead(202, { Location: `/v2/kiln/drop/blobs/uploads/u${puts.length}` }).end();
      if (req.method === 'PUT') {
        puts.push(req.url ?? '');
        let got = 0;
        req.on('data', (c: Buffer) => {
          got += c.length;
          // The first upload: the registry dies after some of the body, before any answer.
          if (puts.length === 1 && got > 64 * 1024) req.socket.destroy();
        });
        req.on('end', () => res.writeHead(201).end());
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    host = `127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('is a network error of the registry, retried: the second attempt uploads the blob', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 1, retryDelayMs: 5 });
    const bytes = Buffer.alloc(1024 * 1024, 7);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    // Slowly, so the socket breaks while the body is still being sent.
    const open = async (): Promise<Readable> =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < bytes.length; i += 16 * 1024) {
            yield bytes.subarray(i, i + 16 * 1024);
            await new Promise((r) => setTimeout(r, 1));
          }
        })(),
      );
    expect(await client.uploadBlob(host, 'kiln/drop', digest, bytes.length, open)).toBe('uploaded');
    client.close();
    expect(puts).toHaveLength(2);
    expect(ctx.lines.some((l) => /retrying blob upload .*unable to reach registry/.test(l))).toBe(true);
  });

  it('without retries, fails in one line naming the registry, not a bare "socket hang up"', async () => {
    puts.length = 0;
    const client = newClient(captureContext(), { retries: 0 });
    const bytes = Buffer.alloc(1024 * 1024, 8);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
    const open = async (): Promise<Readable> =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < bytes.length; i += 16 * 1024) {
            yield bytes.subarray(i, i + 16 * 1024);
            await new Promise((r) => setTimeout(r, 1));
          }
        })(),
      );
    const err = await client.uploadBlob(host, 'kiln/drop', digest, bytes.length, open).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toMatch(new RegExp(`^unable to reach registry ${host.replace(/\./g, '\\.')}: `));
    expect((err as RegistryError).retryable).toBe(true);
  });
});
