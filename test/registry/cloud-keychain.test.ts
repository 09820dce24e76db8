// The clouds' registry logins built in (src/registry/cloud-keychain.ts): which names and hosts reach
// them, that a configured helper's failure is an error while a bare cloud host falls back to anonymous,
// and ECR's GetAuthorizationToken signed by the SDK's chain with the profile's key, as a real server
// (s3rver, standing in as the ECR endpoint through the SDK's AWS_ENDPOINT_URL_ECR) sees it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/errors.js';
import { builtInHelper, helperForHost, parseEcrHost } from '../../src/cloud/hosts.js';
import { builtInLogin, cloudHelpers, withCloudRegistries } from '../../src/registry/cloud-keychain.js';
import { dockerConfigKeychain, type Keychain } from '../../src/registry/keychain.js';
import { startS3, type S3Server } from '../support/cloud-servers.js';
import { captureContext } from './fixtures.js';

const ECR = '123456789012.dkr.ecr.eu-north-1.amazonaws.com';
const KEY = { id: 'AKIAKILNECRTEST00001', secret: 'kiln/ecr/secret/eeeeeeeeeeeeeeeeeeeeeeeeeeee' };

describe('cloud registry hosts and helper names', () => {
  it('tells ECR, GCR/Artifact Registry and ACR hosts, and nothing else', () => {
    expect(parseEcrHost(ECR)).toEqual({ account: '123456789012', region: 'eu-north-1', fips: false });
    expect(parseEcrHost('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com')).toEqual({ account: '123456789012', region: 'us-gov-west-1', fips: true });
    expect(parseEcrHost('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn')?.region).toBe('cn-north-1');
    expect(parseEcrHost('public.ecr.aws')).toBeUndefined();
    expect(parseEcrHost('12345.dkr.ecr.us-east-1.amazonaws.com')).toBeUndefined();
    expect(['gcr.io', 'eu.gcr.io', 'europe-west1-docker.pkg.dev'].map(helperForHost)).toEqual(['gcr', 'gcr', 'gcr']);
    expect(['myreg.azurecr.io', 'myreg.azurecr.cn'].map(helperForHost)).toEqual(['acr-env', 'acr-env']);
    expect(['index.docker.io', 'ghcr.io', 'quay.io', '127.0.0.1:5000', 'gcr.io.example.com', 'azurecr.io'].map(helperForHost)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(['ecr-login', 'gcr', 'gcloud', 'acr-env', 'desktop', 'pass'].map(builtInHelper)).toEqual(['ecr-login', 'gcr', 'gcr', 'acr-env', undefined, undefined]);
  });
});

describe('built-in cloud logins', () => {
  let s3: S3Server;
  let home: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    s3 = await startS3([], { [KEY.id]: KEY.secret });
    home = await mkdtemp(join(tmpdir(), 'kiln-cloud-keychain-'));
    // The SDKs read process.env (this test file's own process): nothing of the machine's, and never a
    // request to a metadata service.
    for (const k of Object.keys(process.env)) if (/^(AWS_|GOOGLE_|AZURE_|GCE_|CLOUDSDK_)/.test(k)) delete process.env[k];
    Object.assign(process.env, { HOME: home, AWS_EC2_METADATA_DISABLED: 'true', METADATA_SERVER_DETECTION: 'none' });
  });
  afterAll(async () => {
    process.env = saved;
    await s3?.stop();
    await rm(home, { recursive: true, force: true });
  });

  function options(env: Record<string, string> = {}): Parameters<typeof builtInLogin>[2] & { lines: string[] } {
    const ctx = captureContext('debug');
    return { env: { HOME: home, ...env }, ctx, mask: ctx.mask, lines: ctx.lines };
  }

  it('no credentials: ecr-login and gcr say so in one line', async () => {
    await expect(builtInLogin('ecr-login', ECR, options())).rejects.toThrow(/^credential helper ecr-login \(built in\): registry 123456789012\.dkr\.ecr\.eu-north-1\.amazonaws\.com: no AWS credentials found \(/);
    await expect(builtInLogin('gcr', 'europe-west1-docker.pkg.dev', options())).rejects.toThrow(
      'credential helper gcr (built in): registry europe-west1-docker.pkg.dev: no Google credentials found (GOOGLE_APPLICATION_CREDENTIALS, gcloud application-default login, or the metadata server)',
    );
  });

  it('a configured credHelper is an error when it fails; a bare cloud host falls back to anonymous; credsStore skips hosts of other clouds', async () => {
    const o = options();
    const config = dockerConfigKeychain({ credHelpers: { 'gcr.io': 'gcr' }, credsStore: 'ecr-login', auths: { 'ghcr.io': { username: 'u', password: 'p' } } }, o.mask, { builtIn: cloudHelpers(o) });
    await expect(config.resolve('gcr.io')).rejects.toThrow(/no Google credentials found/);
    // ecr-login as the store knows nothing of ghcr.io: the `auths` entry answers, as with the binary.
    expect(await config.resolve('ghcr.io')).toEqual({ kind: 'basic', username: 'u', password: 'p' });
    const empty: Keychain = { resolve: async () => ({ kind: 'anonymous' }) };
    const kc = withCloudRegistries(empty, o);
    expect(await kc.resolve(ECR)).toEqual({ kind: 'anonymous' });
    expect(o.lines.join('')).toMatch(/no AWS credentials found.*pulling 123456789012\.dkr\.ecr\.eu-north-1\.amazonaws\.com anonymously/);
    expect(await kc.resolve('quay.io')).toEqual({ kind: 'anonymous' });
  });
  // Last: the SDK caches the credentials files it parsed for the rest of this process.
  it('ecr-login: GetAuthorizationToken is signed with the profile\'s key for the host\'s region; the server\'s refusal is one AUTH line', async () => {
    // A path the SDK has not read yet in this process (it caches files, missing ones too).
    const file = join(home, 'ecr-credentials');
    await writeFile(file, `[default]\naws_access_key_id = ${KEY.id}\naws_secret_access_key = ${KEY.secret}\n`);
    process.env['AWS_SHARED_CREDENTIALS_FILE'] = file;
    process.env['AWS_ENDPOINT_URL_ECR'] = s3.endpoint;
    try {
      const before = s3.signedWith().length;
      const err = await builtInLogin('ecr-login', ECR, options()).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(KilnError);
      expect((err as KilnError).code).toBe('AUTH');
      expect((err as Error).message).toMatch(new RegExp(`^credential helper ecr-login \\(built in\\): registry ${ECR.replace(/\./g, '\\.')}: ECR GetAuthorizationToken failed: `));
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).not.toContain(KEY.secret);
      expect(s3.signedWith().slice(before)).toContainEqual({ keyId: KEY.id, region: 'eu-north-1', service: 'ecr' });
    } finally {
      delete process.env['AWS_ENDPOINT_URL_ECR'];
      delete process.env['AWS_SHARED_CREDENTIALS_FILE'];
    }
  });
});
