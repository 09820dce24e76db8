// kiln's executor image with its context in a cloud's object store (issue 11), run in podman as kaniko's
// tutorials run kaniko: the AWS credentials file mounted at /root/.aws/credentials, AWS_REGION in the
// env, `--context s3://BUCKET/KEY`; the same for Azure Blob (AZURE_STORAGE_ACCESS_KEY) and Cloud
// Storage (the emulator). The stores are real servers on loopback (test/support/cloud-servers.ts),
// reached with --network=host; what the build pushed is read with skopeo only.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startAzurite, startGcsEmulator, startS3, type BlobServer, type GcsServer, type S3Server } from '../support/cloud-servers.js';
import { executorImage } from '../support/executor-image.js';
import { podmanAvailable, RUN_DEFAULTS, startPodman, type Podman } from '../support/podman.js';

const run = promisify(execFile);
const KEY = { id: 'AKIAKILNIMAGETEST001', secret: 'kiln/image/secret/dddddddddddddddddddddddd' };
const BUCKET = 'kiln-image-contexts';
const NO_METADATA = ['-e', 'AWS_EC2_METADATA_DISABLED=true', '-e', 'METADATA_SERVER_DETECTION=none', '-e', 'AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:9'];

const available = await podmanAvailable();

describe.skipIf(!available)(`kiln's executor image with a context in S3, Azure Blob and Cloud Storage${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 300_000 }, () => {
  const registry = inject('registry');
  const images = inject('images');
  const workDir = inject('workDir');
  let podman: Podman;
  let imageId: string;
  let work: string;
  let s3: S3Server;
  let blob: BlobServer;
  let gcs: GcsServer;
  let credentials: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-executor-cloud-'));
    podman = await startPodman();
    const built = await executorImage(workDir, registry, 'executor');
    imageId = await podman.load(built.tarPath);
    [s3, blob, gcs] = await Promise.all([startS3([BUCKET], { [KEY.id]: KEY.secret }), startAzurite('kilnimage'), startGcsEmulator('demo-kiln')]);

    const ctx = await mkdtemp(join(work, 'ctx-'));
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${images.busybox}\nCOPY msg /msg\nRUN cat /msg > /from-run\n`);
    await writeFile(join(ctx, 'msg'), 'from a bucket\n');
    const tgzPath = join(work, 'context.tar.gz');
    await run('tar', ['-czf', tgzPath, '-C', ctx, '.']);
    const tgz = await readFile(tgzPath);
    const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED' });
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'context.tar.gz', Body: tgz }));
    client.destroy();
    const container = new BlobServiceClient(blob.endpoint, new StorageSharedKeyCredential(blob.account, blob.key)).getContainerClient('ctx');
    await container.create();
    await container.getBlockBlobClient('context.tar.gz').uploadData(tgz);
    await new Storage({ apiEndpoint: gcs.host, projectId: 'demo-kiln' }).bucket('kiln-image-gcs').file('context.tar.gz').save(tgz, { resumable: false });

    credentials = join(work, 'credentials');
    await writeFile(credentials, `[default]\naws_access_key_id = ${KEY.id}\naws_secret_access_key = ${KEY.secret}\n`);
  }, 900_000);

  afterAll(async () => {
    await podman?.cleanup();
    await Promise.all([s3?.stop(), blob?.stop(), gcs?.stop()]);
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** Runs the image with `runOpts` and kaniko's flags; asserts it pushed `ref` and returns its stderr. */
  async function buildPushed(runOpts: readonly string[], args: readonly string[], ref: string): Promise<string> {
    const r = await podman.exec([...RUN_DEFAULTS, ...NO_METADATA, ...runOpts, imageId, ...args, '--destination', ref, '--insecure', '--insecure-pull']);
    expect(r.code, r.stderr).toBe(0);
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // The RUN read the file the archive brought: the layer's content, through skopeo only.
    const layout = await mkdtemp(join(work, 'layout-'));
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `dir:${layout}`]);
    const manifest = JSON.parse(await readFile(join(layout, 'manifest.json'), 'utf8')) as { layers: { digest: string }[] };
    const last = manifest.layers.at(-1)?.digest.replace(/^sha256:/, '') ?? '';
    const { stdout: content } = await run('tar', ['-xOf', join(layout, last), 'from-run']);
    expect(content).toBe('from a bucket\n');
    return r.stderr;
  }

  it('the seed case: s3:// with /root/.aws/credentials mounted and AWS_REGION set, signed with the mounted key', async () => {
    const before = s3.signedWith().length;
    const stderr = await buildPushed(
      ['-v', `${credentials}:/root/.aws/credentials:ro`, '-e', 'AWS_REGION=eu-west-1', '-e', `S3_ENDPOINT=${s3.endpoint}`, '-e', 'S3_FORCE_PATH_STYLE=true'],
      ['--context', `s3://${BUCKET}/context.tar.gz`],
      `${registry}/executor-cloud/s3:1`,
    );
    expect(s3.signedWith().slice(before)).toContainEqual({ keyId: KEY.id, region: 'eu-west-1', service: 's3' });
    expect(stderr).not.toContain(KEY.secret);
  });

  it('Azure Blob with AZURE_STORAGE_ACCESS_KEY', async () => {
    const stderr = await buildPushed(
      ['-e', `AZURE_STORAGE_ACCESS_KEY=${blob.key}`, '-e', `AZURE_STORAGE_SERVICE_ENDPOINT=${blob.endpoint}`],
      ['--context', `https://${blob.account}.blob.core.windows.net/ctx/context.tar.gz`],
      `${registry}/executor-cloud/azure:1`,
    );
    expect(stderr).not.toContain(blob.key);
  });

  it("gs:// through kaniko's --bucket, with the SDK's STORAGE_EMULATOR_HOST", async () => {
    await buildPushed(['-e', `STORAGE_EMULATOR_HOST=${gcs.host}`], ['--bucket', 'kiln-image-gcs'], `${registry}/executor-cloud/gcs:1`);
  });

  it('a missing object: one line naming the URL and the cause', async () => {
    const r = await podman.exec([...RUN_DEFAULTS, ...NO_METADATA, '-v', `${credentials}:/root/.aws/credentials:ro`, '-e', 'AWS_REGION=eu-west-1', '-e', `S3_ENDPOINT=${s3.endpoint}`, '-e', 'S3_FORCE_PATH_STYLE=true', imageId, '--context', `s3://${BUCKET}/nope.tar.gz`, '--no-push']);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error building image: '))).toEqual([`error building image: build context s3://${BUCKET}/nope.tar.gz: no such object (NoSuchKey)`]);
    expect(r.stderr).not.toContain(KEY.secret);
  });
});
