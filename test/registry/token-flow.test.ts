// The bearer token flow against docker-registry in `auth: token` mode: the extra `from` scope of a
// cross-repository mount, renewal of expired tokens, and the push-permission probe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/errors.js';
import { SecretMask } from '../../src/log/logger.js';
import { parseReference } from '../../src/oci/reference.js';
import { dockerConfigKeychain, withGitLabCi, type Keychain } from '../../src/registry/keychain.js';
import { checkPushPermissions, pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { startTokenServer, type RunningTokenServer } from '../support/token-server.js';
import { captureContext, MemoryLayer, newClient, testImage, type CapturedContext } from './fixtures.js';

const USER = 'kiln';
const PASSWORD = 'token-flow-password';
const linux = { os: 'linux', architecture: 'amd64' };

describe('bearer tokens', () => {
  let tokens: RunningTokenServer;
  let reg: RunningRegistry;
  beforeAll(async () => {
    tokens = await startTokenServer({ users: { [USER]: PASSWORD, reader: 'reader-password' }, service: 'kiln-flow', issuer: 'kiln-flow-issuer', expiresIn: 11 });
    reg = await startRegistry({
      accessLog: true,
      auth: { kind: 'token', realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath },
    });
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
  });

  const keychainFor = (ctx: CapturedContext, password = PASSWORD): Keychain =>
    dockerConfigKeychain({ auths: { [reg.host]: { username: USER, password } } }, ctx.mask);

  it('asks for the source repository\'s pull scope with the push scope when mounting a blob', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { keychain: keychainFor(ctx) });
    const src = parseReference(`${reg.host}/kiln/mount-src:v1`);
    await pushImage(client, testImage([await MemoryLayer.of({ m: 'mount' })], { label: 'src' }), [src], ctx);
    const pulled = await pullImage(client, src, { platform: linux });
    const before = tokens.requests.length;
    const mark = reg.requests().length;
    await pushImage(client, pulled, [parseReference(`${reg.host}/kiln/mount-dst:v1`)], ctx);
    client.close();
    expect(tokens.requests.slice(before).map((r) => r.scopes)).toContainEqual(['repository:kiln/mount-dst:pull,push', 'repository:kiln/mount-src:pull']);
    expect(reg.requests().slice(mark).some((r) => r.method === 'POST' && r.path.includes('mount=') && r.status === 201)).toBe(true);
  });

  it('fetches a new token when the cached one expires', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { keychain: keychainFor(ctx) });
    const ref = parseReference(`${reg.host}/kiln/mount-src:v1`);
    const before = tokens.requests.length;
    await client.getManifest(ref);
    await client.getManifest(ref);
    expect(tokens.requests.length - before).toBe(1); // cached
    // expires_in 11s is renewed 10s early: after 1s the token is stale.
    await new Promise((r) => setTimeout(r, 1100));
    await client.getManifest(ref);
    client.close();
    expect(tokens.requests.length - before).toBe(2);
  });

  it('checks push permission with a push-scoped token and an upload it cancels', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { keychain: keychainFor(ctx) });
    const mark = reg.requests().length;
    const dests = [parseReference(`${reg.host}/kiln/perm:a`), parseReference(`${reg.host}/kiln/perm:b`)];
    await checkPushPermissions(client, dests, ctx);
    client.close();
    await new Promise((r) => setTimeout(r, 100)); // the access log arrives through a pipe
    const reqs = reg.requests().slice(mark).filter((r) => r.path !== '/v2/');
    // One probe per repository; the cancel is refused for want of a `delete` scope and not pursued.
    expect(reqs.map((r) => `${r.method} ${r.status}`)).toEqual(['POST 202', 'DELETE 401']);
    expect(tokens.requests.at(-1)?.scopes).toEqual(['repository:kiln/perm:pull,push']);
  });

  it('fails the push-permission check in one line naming the destination when the password is wrong', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { keychain: keychainFor(ctx, 'wrong-token-flow-pw') });
    const err = await checkPushPermissions(client, [parseReference(`${reg.host}/kiln/perm:c`)], ctx).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).status).toBe(401);
    expect((err as Error).message).toMatch(new RegExp(`^checking push permission for "${reg.host}/kiln/perm:c": authenticating to ${reg.host}: GET http://127\\.0\\.0\\.1:\\d+/token: 401`));
    expect((err as Error).message).not.toContain('wrong-token-flow-pw');
  });
});

describe("kaniko's GitLab CI helper", () => {
  it('answers for the CI_REGISTRY host only, and only when config.json has nothing', async () => {
    const mask = new SecretMask();
    const inner = dockerConfigKeychain({ auths: { 'other.example.com': { username: 'o', password: 'other-pw' } } }, mask);
    const ci = withGitLabCi(inner, { registry: 'gitlab.example.com:5050', username: 'gitlab-ci-token', password: 'ci-job-token' }, mask);
    expect(await ci.resolve('gitlab.example.com:5050')).toEqual({ kind: 'basic', username: 'gitlab-ci-token', password: 'ci-job-token' });
    expect(await ci.resolve('gitlab.example.com')).toEqual({ kind: 'basic', username: 'gitlab-ci-token', password: 'ci-job-token' });
    expect(await ci.resolve('registry.gitlab.com')).toEqual({ kind: 'anonymous' });
    expect(await ci.resolve('other.example.com')).toEqual({ kind: 'basic', username: 'o', password: 'other-pw' });
    expect(mask.apply('x ci-job-token')).toBe('x ********');
    const url = withGitLabCi(inner, { registry: 'https://registry.gitlab.com', username: 'u', password: 'pwpw' }, mask);
    expect(await url.resolve('registry.gitlab.com')).toMatchObject({ kind: 'basic', username: 'u' });
  });
});
