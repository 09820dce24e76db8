import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { loadDockerConfigKeychain } from '../../src/registry/keychain.js';
import { pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { startTokenServer, type RunningTokenServer } from '../support/token-server.js';
import { captureContext, MemoryLayer, newClient, readAll, skopeo, testImage, type CapturedContext } from './fixtures.js';

const USER = 'kiln';
const PASSWORD = 'correct-horse-battery';
const WRONG = 'wrong-password-123';
const REFRESH = 'refresh-token-for-kiln';
const linux = { os: 'linux', architecture: 'amd64' };

/** A docker config dir holding `auth` (base64 user:password) for a host, as `docker login` writes it. */
async function dockerConfigDir(host: string, user: string, password: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-docker-config-'));
  const auth = Buffer.from(`${user}:${password}`).toString('base64');
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [`http://${host}/v2/`]: { auth } } }));
  return dir;
}

async function clientWith(ctx: CapturedContext, host: string, password: string) {
  const dir = await dockerConfigDir(host, USER, password);
  try {
    return newClient(ctx, { keychain: await loadDockerConfigKeychain(dir, ctx.mask) });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('htpasswd (Basic) auth', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER]: PASSWORD } } });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pushes and pulls with the right credentials from config.json', async () => {
    const ctx = captureContext();
    const client = await clientWith(ctx, reg.host, PASSWORD);
    const layer = await MemoryLayer.of({ 'secret.txt': 'basic' });
    const digest = await pushImage(client, testImage([layer]), [parseReference(`${reg.host}/kiln/basic:v1`)], ctx);
    const img = await pullImage(client, parseReference(`${reg.host}/kiln/basic:v1`), { platform: linux });
    expect(await img.digest()).toBe(digest);
    expect(await readAll(await (await img.layers())[0]!.compressed())).toEqual(layer.gz);
    client.close();
    const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `--creds=${USER}:${PASSWORD}`, `docker://${reg.host}/kiln/basic:v1`);
    expect(raw.length).toBeGreaterThan(0);
    expect(ctx.lines.join('')).not.toContain(PASSWORD);
  });

  it('fails with a one-line 401 naming the registry and never the password', async () => {
    const ctx = captureContext();
    const client = await clientWith(ctx, reg.host, WRONG);
    const err = await pullImage(client, parseReference(`${reg.host}/kiln/basic:v1`), { platform: linux }).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.status).toBe(401);
    expect(e.code).toBe('AUTH');
    expect(e.registryCodes).toContain('UNAUTHORIZED');
    expect(e.message).toContain(reg.host);
    expect(e.message).not.toContain('\n');
    expect(e.message).not.toContain(WRONG);
    expect(e.message).not.toContain(Buffer.from(`${USER}:${WRONG}`).toString('base64'));
    expect(ctx.lines.join('')).not.toContain(WRONG);
  });

  it('fails anonymous pushes with a 401', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const err = await pushImage(client, testImage([await MemoryLayer.of({ a: 'b' })]), [parseReference(`${reg.host}/kiln/anon:v1`)], ctx).catch(
      (e: unknown) => e,
    );
    client.close();
    expect(err).toMatchObject({ status: 401, code: 'AUTH' });
  });
});

describe('token (Bearer) auth', () => {
  let tokens: RunningTokenServer;
  let reg: RunningRegistry;
  beforeAll(async () => {
    tokens = await startTokenServer({
      users: { [USER]: PASSWORD },
      service: 'kiln-test-registry',
      issuer: 'kiln-test-issuer',
      refreshTokens: { [REFRESH]: USER },
    });
    reg = await startRegistry({
      auth: { kind: 'token', realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath },
    });
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
  });

  it('pushes and pulls with tokens scoped to the repository, fetching one token per scope', async () => {
    const ctx = captureContext();
    const client = await clientWith(ctx, reg.host, PASSWORD);
    const layer = await MemoryLayer.of({ 'token.txt': 'bearer' });
    const ref = parseReference(`${reg.host}/kiln/token:v1`);
    const digest = await pushImage(client, testImage([layer, await MemoryLayer.of({ two: '2' })]), [ref], ctx);
    const img = await pullImage(client, ref, { platform: linux });
    expect(await img.digest()).toBe(digest);
    expect(await readAll(await (await img.layers())[0]!.uncompressed())).toEqual(layer.tar);
    client.close();

    // One push token served every blob, the manifest and (as pull,push covers pull) the pull too.
    expect(tokens.requests).toEqual([{ user: USER, scopes: ['repository:kiln/token:pull,push'], status: 200 }]);
    const out = ctx.lines.join('');
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/); // no JWT in the logs
  });

  it('exchanges an identitytoken from config.json by the OAuth2 refresh-token grant', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-docker-config-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { identitytoken: REFRESH } } }));
    const ctx = captureContext();
    const client = newClient(ctx, { keychain: await loadDockerConfigKeychain(dir, ctx.mask) });
    await rm(dir, { recursive: true, force: true });
    const before = tokens.requests.length;
    const ref = parseReference(`${reg.host}/kiln/refresh:v1`);
    const digest = await pushImage(client, testImage([await MemoryLayer.of({ r: 'refresh' })]), [ref], ctx);
    expect(await client.getManifest(ref)).toMatchObject({ digest });
    client.close();
    expect(tokens.requests.slice(before)).toEqual([{ user: USER, scopes: ['repository:kiln/refresh:pull,push'], status: 200 }]);
    expect(ctx.lines.join('')).not.toContain(REFRESH);
  });

  it('fails with a 401 from the token service naming the registry when the password is wrong', async () => {
    const ctx = captureContext();
    const client = await clientWith(ctx, reg.host, WRONG);
    const err = await pullImage(client, parseReference(`${reg.host}/kiln/token:v1`), { platform: linux }).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.status).toBe(401);
    expect(e.message).toMatch(new RegExp(`^authenticating to ${reg.host}: GET http://127\\.0\\.0\\.1:\\d+/token: 401`));
    expect(e.message).not.toContain(WRONG);
  });
});
