// ecr-login built in, to the end: the AWS SDK's GetAuthorizationToken, signed with the profile's key,
// answered, and the answer turned into the registry login docker-credential-ecr-login gives (`AWS` and
// the token's password), its secrets masked. There is no ECR emulator to be had here: the endpoint
// (AWS_ENDPOINT_URL_ECR, the SDK's own override) is a loopback server of this test that speaks ECR's
// JSON 1.1 protocol and checks the request's Signature Version 4 the way AWS does (canonical request,
// string to sign, key derived from the secret), so a request signed with any other key, region or
// service is refused as AWS would refuse it. Its own file: the SDK caches the credential files it read.
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnError } from '../../src/errors.js';
import { builtInLogin, withCloudRegistries } from '../../src/registry/cloud-keychain.js';
import type { Keychain } from '../../src/registry/keychain.js';
import { captureContext } from './fixtures.js';

const ECR = '123456789012.dkr.ecr.eu-north-1.amazonaws.com';
const KEY = { id: 'AKIAKILNECRLOGIN0001', secret: 'kiln/ecr/login/ssssssssssssssssssssssssssss' };
const REGISTRY_PASSWORD = 'eyJwYXlsb2FkIjoia2lsbi1lY3ItcGFzc3dvcmQifQ-kiln-ecr-password';

interface Seen {
  readonly target: string | undefined;
  readonly verdict: string;
  readonly body: string;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex');

/** AWS's check of a SigV4 `Authorization` header with `secret`: 'ok' or why it does not hold. */
function verifySigV4(req: IncomingMessage, body: string, secret: string, want: { keyId: string; region: string; service: string }): string {
  const auth = req.headers.authorization ?? '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (m === null) return `not a SigV4 header: ${auth}`;
  const [, keyId, date, region, service, signedHeaders, signature] = m as unknown as [string, string, string, string, string, string, string];
  if (keyId !== want.keyId || region !== want.region || service !== want.service) return `signed as ${keyId}/${region}/${service}`;
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!amzDate.startsWith(date)) return 'x-amz-date does not match the scope';
  const url = new URL(req.url ?? '/', 'http://x');
  const query = [...url.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).sort().join('&');
  const headers = signedHeaders
    .split(';')
    .map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonical = [req.method, url.pathname, query, headers, signedHeaders, sha256(body)].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
  return hmac(key, toSign).toString('hex') === signature ? 'ok' : 'SignatureDoesNotMatch';
}

describe('ecr-login (built in), answered', () => {
  let server: Server;
  let endpoint: string;
  let home: string;
  const seen: Seen[] = [];
  const saved = { ...process.env };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const target = req.headers['x-amz-target'] as string | undefined;
        const verdict = verifySigV4(req, body, KEY.secret, { keyId: KEY.id, region: 'eu-north-1', service: 'ecr' });
        seen.push({ target, verdict, body });
        res.setHeader('content-type', 'application/x-amz-json-1.1');
        if (verdict !== 'ok') {
          res.statusCode = 403;
          res.end(JSON.stringify({ __type: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided.' }));
          return;
        }
        if (target !== 'AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken') {
          res.statusCode = 400;
          res.end(JSON.stringify({ __type: 'UnknownOperationException' }));
          return;
        }
        const ids = (JSON.parse(body) as { registryIds?: string[] }).registryIds ?? [];
        res.end(
          JSON.stringify({
            authorizationData: ids.map((id) => ({
              authorizationToken: Buffer.from(`AWS:${REGISTRY_PASSWORD}`).toString('base64'),
              expiresAt: Math.floor(Date.now() / 1000) + 43_200,
              proxyEndpoint: `https://${id}.dkr.ecr.eu-north-1.amazonaws.com`,
            })),
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    home = await mkdtemp(join(tmpdir(), 'kiln-ecr-login-'));
    for (const k of Object.keys(process.env)) if (/^(AWS_|GOOGLE_|AZURE_|GCE_|CLOUDSDK_)/.test(k)) delete process.env[k];
    const credentials = join(home, 'credentials');
    await writeFile(credentials, `[default]\naws_access_key_id = ${KEY.id}\naws_secret_access_key = ${KEY.secret}\n`);
    Object.assign(process.env, {
      HOME: home,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SHARED_CREDENTIALS_FILE: credentials,
      AWS_ENDPOINT_URL_ECR: endpoint,
    });
  });
  afterAll(async () => {
    process.env = saved;
    await new Promise((r) => server?.close(r));
    await rm(home, { recursive: true, force: true });
  });

  it("gives the registry login `AWS` and the token's password, for the host's account and region, with both secrets masked", async () => {
    const ctx = captureContext('debug');
    const cred = await builtInLogin('ecr-login', ECR, { env: { HOME: home }, ctx, mask: ctx.mask });
    expect(cred).toEqual({ kind: 'basic', username: 'AWS', password: REGISTRY_PASSWORD });
    const last = seen.at(-1);
    expect(last?.verdict).toBe('ok');
    expect(last?.target).toBe('AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken');
    expect(JSON.parse(last?.body ?? '{}')).toEqual({ registryIds: ['123456789012'] });
    // What the mask now hides: the password and the token it came in, wherever a log line holds them.
    const token = Buffer.from(`AWS:${REGISTRY_PASSWORD}`).toString('base64');
    expect(ctx.mask.apply(`p=${REGISTRY_PASSWORD} t=${token}`)).not.toMatch(new RegExp(`${REGISTRY_PASSWORD}|${token.slice(0, 20)}`));
    expect(ctx.lines.join('')).not.toContain(KEY.secret);
  });

  it('answers an ECR host nothing else has credentials for, as the binary would through the keychain', async () => {
    const ctx = captureContext('debug');
    const empty: Keychain = { resolve: async () => ({ kind: 'anonymous' }) };
    const kc = withCloudRegistries(empty, { env: { HOME: home }, ctx, mask: ctx.mask });
    expect(await kc.resolve(ECR)).toEqual({ kind: 'basic', username: 'AWS', password: REGISTRY_PASSWORD });
    // Another account in the same region: its own request, its own id.
    expect(await kc.resolve('210987654321.dkr.ecr.eu-north-1.amazonaws.com')).toEqual({ kind: 'basic', username: 'AWS', password: REGISTRY_PASSWORD });
    expect(JSON.parse(seen.at(-1)?.body ?? '{}')).toEqual({ registryIds: ['210987654321'] });
  });

  it("a host in another region is signed for that region, which this endpoint's check refuses: one AUTH line, no secret", async () => {
    const ctx = captureContext('debug');
    const err = await builtInLogin('ecr-login', '123456789012.dkr.ecr.us-west-2.amazonaws.com', { env: { HOME: home }, ctx, mask: ctx.mask }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(seen.at(-1)?.verdict).toBe('signed as AKIAKILNECRLOGIN0001/us-west-2/ecr');
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('AUTH');
    expect((err as Error).message).toMatch(/^credential helper ecr-login \(built in\): registry 123456789012\.dkr\.ecr\.us-west-2\.amazonaws\.com: ECR GetAuthorizationToken failed: InvalidSignatureException: /);
    expect((err as Error).message).not.toContain('\n');
    expect((err as Error).message).not.toContain(KEY.secret);
  });
});
