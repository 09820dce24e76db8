// gcr (built in), answered: Application Default Credentials from GOOGLE_APPLICATION_CREDENTIALS, read
// and exchanged by google-auth-library as on Google Cloud, turned into the registry login
// docker-credential-gcr gives (`oauth2accesstoken` and the access token), masked. The credentials file
// is the `external_account` kind (workload identity federation: GKE outside Google, GitHub Actions'
// OIDC), the one whose token endpoint the file itself names: Google's STS is out of reach here, so
// `token_url` is a loopback server of this test that takes the token exchange as STS does (RFC 8693
// form, the audience and subject token the file gives) and refuses any other subject token. Service
// account keys sign a JWT for Google's own token endpoint, an address the library does not take from
// the file: that kind is answered under Google's names in gcr-service-account.test.ts.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/errors.js';
import { builtInLogin, withCloudRegistries } from '../../src/registry/cloud-keychain.js';
import type { Keychain } from '../../src/registry/keychain.js';
import { captureContext } from './fixtures.js';

const AUDIENCE = '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/kiln/providers/ci';
const SUBJECT_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.kiln-ci-oidc-subject-token.c2lnbmF0dXJl';
const ACCESS_TOKEN = 'ya29.kiln-gcr-access-token-0123456789abcdefghijklmnopqrstuvwxyz';

describe('gcr (built in), answered through Application Default Credentials', () => {
  let server: Server;
  let home: string;
  const exchanges: URLSearchParams[] = [];
  const saved = { ...process.env };

  async function credentialsFile(name: string, subjectToken: string, port: number): Promise<string> {
    const tokenFile = join(home, `${name}.oidc`);
    await writeFile(tokenFile, subjectToken);
    const file = join(home, `${name}.json`);
    await writeFile(
      file,
      JSON.stringify({
        type: 'external_account',
        audience: AUDIENCE,
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `http://127.0.0.1:${port}/v1/token`,
        credential_source: { file: tokenFile },
      }),
    );
    return file;
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        exchanges.push(form);
        res.setHeader('content-type', 'application/json');
        const ok =
          req.method === 'POST' &&
          req.url === '/v1/token' &&
          form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange' &&
          form.get('audience') === AUDIENCE &&
          form.get('subject_token') === SUBJECT_TOKEN;
        if (!ok) {
          res.statusCode = 400;
          res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'The subject token is invalid.' }));
          return;
        }
        res.end(JSON.stringify({ access_token: ACCESS_TOKEN, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    home = await mkdtemp(join(tmpdir(), 'kiln-gcr-login-'));
    for (const k of Object.keys(process.env)) if (/^(AWS_|GOOGLE_|AZURE_|GCE_|CLOUDSDK_)/.test(k)) delete process.env[k];
    Object.assign(process.env, { HOME: home, METADATA_SERVER_DETECTION: 'none' });
  });
  afterAll(async () => {
    process.env = saved;
    await new Promise((r) => server?.close(r));
    await rm(home, { recursive: true, force: true });
  });

  const port = (): number => (server.address() as AddressInfo).port;

  it('gives `oauth2accesstoken` and the exchanged access token for gcr.io and Artifact Registry hosts, the token masked', async () => {
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = await credentialsFile('good', SUBJECT_TOKEN, port());
    const ctx = captureContext('debug');
    const cred = await builtInLogin('gcr', 'gcr.io', { env: { HOME: home }, ctx, mask: ctx.mask });
    expect(cred).toEqual({ kind: 'basic', username: 'oauth2accesstoken', password: ACCESS_TOKEN });
    const form = exchanges.at(-1);
    expect(form?.get('subject_token')).toBe(SUBJECT_TOKEN);
    expect(form?.get('scope')).toContain('https://www.googleapis.com/auth/');
    expect(ctx.mask.apply(`token ${ACCESS_TOKEN}`)).not.toContain(ACCESS_TOKEN);
    // A bare Artifact Registry host with nothing configured: the same login, through the keychain.
    const empty: Keychain = { resolve: async () => ({ kind: 'anonymous' }) };
    const kc = withCloudRegistries(empty, { env: { HOME: home }, ctx, mask: ctx.mask });
    expect(await kc.resolve('europe-west1-docker.pkg.dev')).toEqual({ kind: 'basic', username: 'oauth2accesstoken', password: ACCESS_TOKEN });
  });

  it('a subject token the token endpoint refuses: one AUTH line naming the registry, no token in it', async () => {
    process.env['GOOGLE_APPLICATION_CREDENTIALS'] = await credentialsFile('bad', 'not-the-token', port());
    const ctx = captureContext('debug');
    const err = await builtInLogin('gcr', 'us-docker.pkg.dev', { env: { HOME: home }, ctx, mask: ctx.mask }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(exchanges.at(-1)?.get('subject_token')).toBe('not-the-token');
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('AUTH');
    expect((err as Error).message).toMatch(/^credential helper gcr \(built in\): registry us-docker\.pkg\.dev: /);
    expect((err as Error).message).not.toContain('\n');
    expect((err as Error).message).not.toContain(ACCESS_TOKEN);
  });
});
