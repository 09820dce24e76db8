// Build contexts from the clouds' object stores (issue 11), against real servers on loopback (see
// test/support/cloud-servers.ts): s3rver for `s3://`, Azurite for Azure Blob URLs, firebase-tools'
// Storage emulator for `gs://`. Each build is pushed to the test registry and read back with skopeo
// and umoci, never with kiln's own code. The failures are one line that names the URL and the cause
// and holds no secret.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAzurite, startGcsEmulator, startRegionFront, startS3, type BlobServer, type GcsServer, type S3Server } from '../support/cloud-servers.js';
import { executor, unpackWithUmoci, writeContext } from '../support/executor.js';

const run = promisify(execFile);

// Two profiles in one credentials file: which one signed a request tells the chain's choice.
const DEFAULT_KEY = { id: 'AKIAKILNDEFAULT00001', secret: 'kiln/default/secret/aaaaaaaaaaaaaaaaaaaaaaaa' };
const CI_KEY = { id: 'AKIAKILNCIPROFILE002', secret: 'kiln/ci/secret/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' };
const UNKNOWN_KEY = { id: 'AKIAKILNUNKNOWN00003', secret: 'kiln/unknown/secret/cccccccccccccccccccccc' };
const BUCKET = 'kiln-contexts';

/** Never a request to a cloud's metadata service (169.254.169.254) from these tests. */
const NO_METADATA = {
  AWS_EC2_METADATA_DISABLED: 'true',
  METADATA_SERVER_DETECTION: 'none',
  // Azure's managed identity would probe 169.254.169.254: point it at a closed loopback port.
  AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9',
};

/** Every line that says the build failed. */
function errorLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('error building image: '));
}

describe('build contexts from S3, Azure Blob and Cloud Storage', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dockerfile = `FROM ${images.busybox}\nCOPY . /ctx/\nRUN cat /ctx/msg > /from-run\n`;
  let work: string;
  let tgz: Buffer;
  let s3: S3Server;
  let blob: BlobServer;
  let gcs: GcsServer;
  /** A HOME whose ~/.aws has the credentials file (both profiles) and a config with a profile region. */
  let home: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-cloud-ctx-'));
    const src = await writeContext({ Dockerfile: dockerfile, msg: 'from the cloud\n', 'sub/kept': 'kept\n' });
    const path = join(work, 'context.tar.gz');
    await run('tar', ['-czf', path, '-C', src, '.']);
    tgz = await readFile(path);
    await rm(src, { recursive: true, force: true });

    [s3, blob, gcs] = await Promise.all([
      startS3([BUCKET], { [DEFAULT_KEY.id]: DEFAULT_KEY.secret, [CI_KEY.id]: CI_KEY.secret }),
      startAzurite('kilnacct'),
      startGcsEmulator('demo-kiln'),
    ]);
    // Uploaded with the vendors' own SDKs, as a user's CI would.
    const client = new S3Client({
      endpoint: s3.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      // s3rver reads no aws-chunked bodies with trailing checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    for (const key of ['app/context.tar.gz', 'context.tar.gz']) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: tgz }));
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'not-an-archive.txt', Body: 'just text, no archive\n' }));
    client.destroy();
    const container = new BlobServiceClient(blob.endpoint, new StorageSharedKeyCredential(blob.account, blob.key)).getContainerClient('ctx');
    await container.create();
    await container.getBlockBlobClient('app/context.tar.gz').uploadData(tgz);
    const storage = new Storage({ apiEndpoint: gcs.host, projectId: 'demo-kiln' });
    await storage.bucket('kiln-gcs').file('dir/context.tar.gz').save(tgz, { resumable: false });

    home = join(work, 'home');
    await mkdir(join(home, '.aws'), { recursive: true });
    await writeFile(
      join(home, '.aws/credentials'),
      `[default]\naws_access_key_id = ${DEFAULT_KEY.id}\naws_secret_access_key = ${DEFAULT_KEY.secret}\n\n[ci]\naws_access_key_id = ${CI_KEY.id}\naws_secret_access_key = ${CI_KEY.secret}\n`,
    );
    await writeFile(join(home, '.aws/config'), '[default]\nregion = eu-central-1\n\n[profile ci]\nregion = ap-southeast-2\n');
  }, 120_000);

  afterAll(async () => {
    await Promise.all([s3?.stop(), blob?.stop(), gcs?.stop()]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** The S3-compatible store's settings, kaniko's variables. */
  function s3Env(extra: Record<string, string> = {}): Record<string, string> {
    return { HOME: home, S3_ENDPOINT: s3.endpoint, S3_FORCE_PATH_STYLE: 'true', ...NO_METADATA, ...extra };
  }

  /** Builds, pushes to `repo`, and reads /from-run and /ctx back from the pushed image. */
  async function buildAndRead(repo: string, args: readonly string[], env: Record<string, string>): Promise<{ stderr: string; fromRun: string; kept: string }> {
    const ref = `${registry}/e2e/cloud-${repo}:1`;
    const r = await executor([...args, '--destination', ref, '--insecure', '--insecure-pull'], { env });
    expect(r.code, r.stderr).toBe(0);
    const img = await unpackWithUmoci(`docker://${ref}`);
    try {
      return { stderr: r.stderr, fromRun: await readFile(join(img.rootfs, 'from-run'), 'utf8'), kept: await readFile(join(img.rootfs, 'ctx/sub/kept'), 'utf8') };
    } finally {
      await img.cleanup();
    }
  }

  /** Runs a build that must fail and returns its one error line; no secret may appear anywhere in the output. */
  async function failure(args: readonly string[], env: Record<string, string>, secrets: readonly string[]): Promise<string> {
    const r = await executor([...args, '--no-push'], { env });
    expect(r.code, r.stderr).not.toBe(0);
    for (const s of secrets) {
      expect(r.stderr).not.toContain(s);
      expect(r.stdout).not.toContain(s);
    }
    const lines = errorLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    return lines[0] as string;
  }

  describe('s3://', () => {
    it('the seed case: ~/.aws/credentials, AWS_REGION; pushed and read back; the context is deleted after the build', async () => {
      const before = s3.signedWith().length;
      const workDir = join(work, 'wd-seed');
      const img = await buildAndRead('s3-seed', ['--context', `s3://${BUCKET}/app/context.tar.gz`, '--work-dir', workDir], s3Env({ AWS_REGION: 'us-west-2' }));
      expect(img.fromRun).toBe('from the cloud\n');
      expect(img.kept).toBe('kept\n');
      expect(img.stderr).toContain(`s3://${BUCKET}/app/context.tar.gz`);
      // What the SDK signed with: the default profile's key id, for AWS_REGION's region, for S3.
      expect(s3.signedWith().slice(before)).toContainEqual({ keyId: DEFAULT_KEY.id, region: 'us-west-2', service: 's3' });
      expect(s3.signedWith().slice(before).every((s) => s.keyId === DEFAULT_KEY.id)).toBe(true);
      expect(existsSync(join(workDir, 'buildcontext'))).toBe(false);
      expect(img.stderr).not.toContain(DEFAULT_KEY.secret);
    });

    it('AWS_PROFILE picks the profile, and its region comes from ~/.aws/config when AWS_REGION is unset', async () => {
      const before = s3.signedWith().length;
      const img = await buildAndRead('s3-profile', ['--context', `s3://${BUCKET}/app/context.tar.gz`], s3Env({ AWS_PROFILE: 'ci' }));
      expect(img.fromRun).toBe('from the cloud\n');
      expect(s3.signedWith().slice(before)).toContainEqual({ keyId: CI_KEY.id, region: 'ap-southeast-2', service: 's3' });
    });

    it('AWS_SHARED_CREDENTIALS_FILE and AWS_DEFAULT_REGION; kaniko\'s --bucket s3://BUCKET reads its context.tar.gz', async () => {
      const before = s3.signedWith().length;
      const credsFile = join(work, 'other-credentials');
      await writeFile(credsFile, `[default]\naws_access_key_id = ${CI_KEY.id}\naws_secret_access_key = ${CI_KEY.secret}\n`);
      const env = { ...s3Env({ AWS_DEFAULT_REGION: 'sa-east-1', AWS_SHARED_CREDENTIALS_FILE: credsFile }), HOME: join(work, 'no-home') };
      const img = await buildAndRead('s3-bucket-flag', ['--bucket', `s3://${BUCKET}`], env);
      expect(img.fromRun).toBe('from the cloud\n');
      expect(s3.signedWith().slice(before)).toContainEqual({ keyId: CI_KEY.id, region: 'sa-east-1', service: 's3' });
    });

    it('AWS_ACCESS_KEY_ID in the environment wins over the files', async () => {
      const before = s3.signedWith().length;
      await buildAndRead('s3-env', ['--context', `s3://${BUCKET}/app/context.tar.gz`], s3Env({ AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: CI_KEY.id, AWS_SECRET_ACCESS_KEY: CI_KEY.secret }));
      expect(s3.signedWith().slice(before)).toContainEqual({ keyId: CI_KEY.id, region: 'us-east-1', service: 's3' });
    });

    it('a missing object, an unknown key, no credentials, no region, not an archive: one line each, no secret', async () => {
      const secrets = [DEFAULT_KEY.secret, CI_KEY.secret, UNKNOWN_KEY.secret];
      expect(await failure(['--context', `s3://${BUCKET}/app/missing.tar.gz`], s3Env({ AWS_REGION: 'us-east-1' }), secrets)).toBe(
        `error building image: build context s3://${BUCKET}/app/missing.tar.gz: no such object (NoSuchKey)`,
      );
      expect(await failure(['--context', 's3://no-such-bucket/context.tar.gz'], s3Env({ AWS_REGION: 'us-east-1' }), secrets)).toBe(
        'error building image: build context s3://no-such-bucket/context.tar.gz: no such bucket (NoSuchBucket)',
      );
      const unknown = s3Env({ AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: UNKNOWN_KEY.id, AWS_SECRET_ACCESS_KEY: UNKNOWN_KEY.secret });
      expect(await failure(['--context', `s3://${BUCKET}/app/context.tar.gz`], unknown, secrets)).toBe(
        `error building image: build context s3://${BUCKET}/app/context.tar.gz: the access key id is not known to the server (InvalidAccessKeyId)`,
      );
      const none = { ...s3Env({ AWS_REGION: 'us-east-1' }), HOME: join(work, 'no-home') };
      expect(await failure(['--context', `s3://${BUCKET}/app/context.tar.gz`], none, secrets)).toMatch(
        new RegExp(`^error building image: build context s3://${BUCKET}/app/context\\.tar\\.gz: no AWS credentials found \\(`),
      );
      const noRegion = { ...s3Env({ AWS_ACCESS_KEY_ID: DEFAULT_KEY.id, AWS_SECRET_ACCESS_KEY: DEFAULT_KEY.secret }), HOME: join(work, 'no-home') };
      expect(await failure(['--context', `s3://${BUCKET}/app/context.tar.gz`], noRegion, secrets)).toBe(
        `error building image: build context s3://${BUCKET}/app/context.tar.gz: no AWS region: set AWS_REGION (or a region in the profile)`,
      );
      expect(await failure(['--context', `s3://${BUCKET}/not-an-archive.txt`], s3Env({ AWS_REGION: 'us-east-1' }), secrets)).toMatch(
        new RegExp(`^error building image: build context s3://${BUCKET}/not-an-archive\\.txt: `),
      );
    });
  });

  describe('s3:// and the bucket\'s region', () => {
    it("a bucket in another region than AWS_REGION: S3's PermanentRedirect names both, in one line; the bucket's region builds", async () => {
      // s3rver has no regions: a front answers as AWS does for a bucket homed in eu-west-3.
      const front = await startRegionFront(s3.endpoint, BUCKET, 'eu-west-3');
      try {
        const env = (region: string): Record<string, string> => ({ ...s3Env({ AWS_REGION: region }), S3_ENDPOINT: front.endpoint });
        expect(await failure(['--context', `s3://${BUCKET}/app/context.tar.gz`], env('us-east-1'), [DEFAULT_KEY.secret])).toBe(
          `error building image: build context s3://${BUCKET}/app/context.tar.gz: the bucket is in eu-west-3, not us-east-1 (PermanentRedirect): set AWS_REGION`,
        );
        const img = await buildAndRead('s3-region', ['--context', `s3://${BUCKET}/app/context.tar.gz`], env('eu-west-3'));
        expect(img.fromRun).toBe('from the cloud\n');
      } finally {
        await front.stop();
      }
    });
  });

  describe('Azure Blob (https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH)', () => {
    const url = 'https://kilnacct.blob.core.windows.net/ctx/app/context.tar.gz';
    const azEnv = (extra: Record<string, string>): Record<string, string> => ({ HOME: join(work, 'no-home'), AZURE_STORAGE_SERVICE_ENDPOINT: blob.endpoint, ...NO_METADATA, ...extra });

    it("kaniko's AZURE_STORAGE_ACCESS_KEY: pushed and read back", async () => {
      const img = await buildAndRead('azure-key', ['--context', url], azEnv({ AZURE_STORAGE_ACCESS_KEY: blob.key }));
      expect(img.fromRun).toBe('from the cloud\n');
      expect(img.stderr).not.toContain(blob.key);
    });

    it('AZURE_STORAGE_CONNECTION_STRING, as the az CLI takes it', async () => {
      const conn = `DefaultEndpointsProtocol=http;AccountName=${blob.account};AccountKey=${blob.key};BlobEndpoint=${blob.endpoint};`;
      const img = await buildAndRead('azure-conn', ['--context', url], { HOME: join(work, 'no-home'), ...NO_METADATA, AZURE_STORAGE_CONNECTION_STRING: conn });
      expect(img.fromRun).toBe('from the cloud\n');
    });

    // ~20 s: the managed-identity client retries the closed port before it gives up.
    it('a wrong key, a missing blob, a missing container, no credentials: one line each, no secret', { timeout: 120_000 }, async () => {
      const wrong = Buffer.alloc(32, 7).toString('base64');
      const secrets = [blob.key, wrong];
      expect(await failure(['--context', url], azEnv({ AZURE_STORAGE_ACCESS_KEY: wrong }), secrets)).toBe(
        `error building image: build context ${url}: the account key was refused (AuthorizationFailure): a wrong key, or the account does not allow this request`,
      );
      const missing = 'https://kilnacct.blob.core.windows.net/ctx/app/missing.tar.gz';
      expect(await failure(['--context', missing], azEnv({ AZURE_STORAGE_ACCESS_KEY: blob.key }), secrets)).toBe(
        `error building image: build context ${missing}: no such blob (BlobNotFound)`,
      );
      const noContainer = 'https://kilnacct.blob.core.windows.net/nope/context.tar.gz';
      expect(await failure(['--context', noContainer], azEnv({ AZURE_STORAGE_ACCESS_KEY: blob.key }), secrets)).toBe(
        `error building image: build context ${noContainer}: no such container (ContainerNotFound)`,
      );
      // No key and no identity: DefaultAzureCredential finds none (its managed-identity try goes to a
      // closed loopback port, NO_METADATA), before any request to the blob's host.
      const none = { HOME: join(work, 'no-home'), ...NO_METADATA };
      expect(await failure(['--context', url], none, secrets)).toBe(
        `error building image: build context ${url}: no Azure credentials found (AZURE_STORAGE_ACCESS_KEY, AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN, a service principal, workload or managed identity, az login)`,
      );
    });
  });

  describe('gs://', () => {
    it("STORAGE_EMULATOR_HOST: pushed and read back; kaniko's --bucket NAME is gs://NAME/context.tar.gz", async () => {
      const env = { HOME: join(work, 'no-home'), STORAGE_EMULATOR_HOST: gcs.host, ...NO_METADATA };
      const img = await buildAndRead('gcs', ['--context', 'gs://kiln-gcs/dir/context.tar.gz'], env);
      expect(img.fromRun).toBe('from the cloud\n');
      expect(await failure(['--bucket', 'kiln-gcs'], env, [])).toMatch(/^error building image: build context gs:\/\/kiln-gcs\/context\.tar\.gz: no such object or bucket \(HTTP 404/);
    });
  });
});
