// The clouds' object stores, as real servers from npm on loopback, started by the test files that use
// them (a few hundred ms each, so not in global-setup.ts):
// - S3: s3rver, in this process. It knows access key ids (InvalidAccessKeyId for any other) but checks
//   no SigV4 signature, so what proves which credentials the SDK took is the Authorization header it
//   signed with: `Credential=KEYID/DATE/REGION/SERVICE/aws4_request`, recorded per request here.
// - Azure Blob: Azurite's blob server, a child process, with its own account and key (it does check
//   SharedKey signatures: a wrong key is refused as on Azure).
// - Cloud Storage: firebase-tools' Storage emulator, in this process: its GCS JSON API app (what
//   @google-cloud/storage uploads and downloads with). Started without the emulator's Firebase-rules
//   runtime, a Java jar it downloads from Google (not reachable here, and it needs Java 21): the GCS
//   API routes use its admin storage layer, which never consults rules.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((ok) => srv.close(() => ok()));
  return port;
}

export interface S3Server {
  /** `http://127.0.0.1:PORT`: S3_ENDPOINT. */
  readonly endpoint: string;
  /** The access key id of every signed request so far, with the region and service it was signed for. */
  signedWith(): readonly { readonly keyId: string; readonly region: string; readonly service: string }[];
  stop(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  readonly httpServer: Server;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;
interface S3rverAccount {
  createKeyPair(keyId: string, secret: string): void;
}

/** s3rver with these buckets, knowing `keys` (id -> secret) besides its own S3RVER. */
export async function startS3(buckets: readonly string[], keys: Readonly<Record<string, string>>): Promise<S3Server> {
  const S3rver = require('s3rver') as S3rverCtor;
  const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: S3rverAccount };
  for (const [id, secret] of Object.entries(keys)) DUMMY_ACCOUNT.createKeyPair(id, secret);
  const directory = await mkdtemp(join(tmpdir(), 'kiln-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  const seen: { keyId: string; region: string; service: string }[] = [];
  server.httpServer.on('request', (req: { headers: Record<string, string | string[] | undefined> }) => {
    const auth = req.headers['authorization'];
    const m = typeof auth === 'string' ? /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(auth) : null;
    if (m !== null) seen.push({ keyId: m[1] as string, region: m[2] as string, service: m[3] as string });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    signedWith: () => [...seen],
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * A front for an S3 server (s3rver ignores regions) that homes `bucket` in `region`, as AWS does: a
 * request for that bucket signed for any other region gets AWS's documented answer, 301
 * PermanentRedirect with the bucket's region in `x-amz-bucket-region` (and the error XML, but for
 * HEAD); everything else goes through to `upstream` unchanged. S3's own behaviour here, not kiln's:
 * see "Making requests using the REST API" / "Error responses" (PermanentRedirect) in the S3 docs.
 */
export async function startRegionFront(upstream: string, bucket: string, region: string): Promise<{ readonly endpoint: string; stop(): Promise<void> }> {
  const up = new URL(upstream);
  const server = createHttpServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const signedFor = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1];
    if ((path === `/${bucket}` || path.startsWith(`/${bucket}/`)) && signedFor !== region) {
      req.resume();
      res.writeHead(301, { 'x-amz-bucket-region': region, 'content-type': 'application/xml' });
      res.end(
        req.method === 'HEAD'
          ? undefined
          : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>${bucket}.s3.${region}.amazonaws.com</Endpoint><Bucket>${bucket}</Bucket></Error>`,
      );
      return;
    }
    const out = httpRequest({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

export interface BlobServer {
  readonly account: string;
  /** The account key, base64 (what AZURE_STORAGE_ACCESS_KEY holds). */
  readonly key: string;
  /** `http://127.0.0.1:PORT/ACCOUNT`: the account's blob endpoint (AZURE_STORAGE_SERVICE_ENDPOINT). */
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** Azurite's blob service in memory, with one account of its own. */
export async function startAzurite(account: string): Promise<BlobServer> {
  const key = randomBytes(32).toString('base64');
  const port = await freePort();
  const workspace = await mkdtemp(join(tmpdir(), 'kiln-azurite-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [join(REPO, 'node_modules/azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--silent',
      // Telemetry would send data off this machine; the API-version check would refuse an SDK newer than this Azurite.
      '--disableTelemetry', '--skipApiVersionCheck'],
    // Its cwd is a temp dir of its own, for whatever it writes there besides the in-memory data.
    { cwd: workspace, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', AZURITE_ACCOUNTS: `${account}:${key}` }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`azurite exited ${child.exitCode}: ${output}`);
    const up = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`azurite did not listen on ${port} in 30 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    account,
    key,
    endpoint: `http://127.0.0.1:${port}/${account}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(workspace, { recursive: true, force: true });
    },
  };
}

export interface GcsServer {
  /** `http://127.0.0.1:PORT`: STORAGE_EMULATOR_HOST. */
  readonly host: string;
  stop(): Promise<void>;
}

interface StorageEmulatorCtor {
  new (args: Record<string, unknown>): unknown;
}

/** firebase-tools' Storage emulator's Cloud Storage API on a free loopback port. */
export async function startGcsEmulator(projectId: string): Promise<GcsServer> {
  const port = await freePort();
  const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as { StorageEmulator: StorageEmulatorCtor };
  const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as { createApp: (project: string, emulator: unknown) => Promise<{ listen(port: number, host: string): Server }> };
  const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as { EmulatorRegistry: { set(name: string, emulator: unknown): void; clear(name: string): void } };
  const emulator = new StorageEmulator({ projectId, host: '127.0.0.1', port, rules: [], auto_download: false });
  // The emulator's routes find their own address (for the URLs they return) in this registry.
  EmulatorRegistry.set('storage', emulator);
  const app = await createApp(projectId, emulator);
  const server = app.listen(port, '127.0.0.1');
  await new Promise<void>((ok, fail) => {
    server.once('listening', ok);
    server.once('error', fail);
  });
  return {
    host: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections?.();
      await new Promise<void>((ok) => server.close(() => ok()));
      EmulatorRegistry.clear('storage');
    },
  };
}
