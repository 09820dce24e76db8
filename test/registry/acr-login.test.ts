// acr-env built in, to the end, under the real names: kiln (bin/executor.js) gets an Entra ID token for
// the service principal in AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID from
// login.microsoftonline.com through @azure/identity, exchanges it at https://kilntest.azurecr.io/oauth2/exchange
// for a refresh token, trades that at the registry's token realm for an access token, and pushes with
// it. Neither Entra ID nor ACR can be pointed elsewhere (@azure/identity's authority aside, the
// exchange is on the registry's own name), so each run of kiln is in a mount namespace whose /etc/hosts
// sends both names to loopback stand-ins on :443 (test/support/public-names.ts) that check what the
// real services check (test/support/cloud-login-servers.ts, bearer-front.ts); the registry behind the
// front is the suite's docker-registry, where the pushed image is then read with skopeo.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearerFront, type BearerFront } from '../support/bearer-front.js';
import { acrExchange, entraIdStandIn, type AcrExchange, type EntraStandIn } from '../support/cloud-login-servers.js';
import { executor, failureLines, writeContext } from '../support/executor.js';
import { privateHostsUnavailable, startPublicNames, type PublicNames } from '../support/public-names.js';
import { skopeo } from './fixtures.js';

/** A loopback address of this file's own (public-names.ts): another file's stand-ins can hold 127.0.0.1:443. */
const ADDRESS = '127.0.0.2';
const ACR = 'kilntest.azurecr.io';
/** A registry of another tenant than the service principal's. */
const OTHER_ACR = 'kilnother.azurecr.io';
const APP = { tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: '0f5c2a5e-6a3b-4b55-9d2e-4c1e2f0a9b11', clientSecret: 'kIlN~acr.Secret_0123456789abcdefghijKLMN' };

const unavailable = await privateHostsUnavailable(ADDRESS);

describe.skipIf(unavailable !== undefined)(`acr-env (built in) against Entra ID and ACR stand-ins under their own names${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`, () => {
  const registry = inject('registry');
  const dirs: string[] = [];
  let names: PublicNames;
  let entra: EntraStandIn;
  let exchange: AcrExchange;
  let otherExchange: AcrExchange;
  let front: BearerFront;
  let context: string;

  const dockerConfig = async (config: object): Promise<string> => {
    const d = await mkdtemp(join(tmpdir(), 'kiln-acr-cfg-'));
    dirs.push(d);
    await writeFile(join(d, 'config.json'), JSON.stringify(config));
    return d;
  };
  const build = (destination: string, config: object, secret: string, extra: readonly string[] = []): ReturnType<typeof executor> =>
    dockerConfig(config).then((cfg) =>
      executor(['--context', `dir://${context}`, '--destination', destination, ...extra], {
        hosts: names.hostsPath,
        env: {
          DOCKER_CONFIG: cfg,
          NODE_EXTRA_CA_CERTS: names.caPath,
          AZURE_TENANT_ID: APP.tenant,
          AZURE_CLIENT_ID: APP.clientId,
          AZURE_CLIENT_SECRET: secret,
        },
      }),
    );
  const noSecrets = (out: string): void => {
    for (const s of [APP.clientSecret, ...entra.issued, ...exchange.refreshTokens, ...otherExchange.refreshTokens]) expect(out).not.toContain(s);
  };

  beforeAll(async () => {
    entra = entraIdStandIn(APP);
    exchange = acrExchange(ACR, APP.tenant, entra);
    otherExchange = acrExchange(OTHER_ACR, 'b3c4d5e6-0000-4000-8000-000000000000', entra);
    front = bearerFront({
      host: ACR,
      upstream: registry,
      realmPath: '/oauth2/token',
      authenticate: (ask) => (ask.method === 'POST' && ask.params.get('grant_type') === 'refresh_token' && exchange.refreshTokens.has(ask.params.get('refresh_token') ?? '') ? 'refresh-token' : undefined),
    });
    names = await startPublicNames(ADDRESS, {
      'login.microsoftonline.com': entra.handler,
      [ACR]: (req, body, res) => {
        if (!exchange.handle(req, body, res)) return front.handler(req, body, res);
      },
      [OTHER_ACR]: (req, body, res) => {
        if (!otherExchange.handle(req, body, res)) res.writeHead(401, { 'www-authenticate': `Bearer realm="https://${OTHER_ACR}/oauth2/token",service="${OTHER_ACR}"` }).end();
      },
    });
    context = await writeContext({ Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'pushed to ACR with an exchanged token\n' });
    dirs.push(context);
  });
  afterAll(async () => {
    await names?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('credHelpers acr-env: Entra ID client secret -> /oauth2/exchange -> refresh-token grant -> push', async () => {
    const r = await build(`${ACR}/kiln/acr-helper:1`, { credHelpers: { [ACR]: 'acr-env' } }, APP.clientSecret);
    expect(r.code, r.stderr).toBe(0);
    expect(entra.tokenRequests.at(-1)).toMatchObject({ grantType: 'client_credentials', clientId: APP.clientId, status: 200 });
    expect(exchange.requests.at(-1)).toEqual({ grantType: 'access_token', service: ACR, tenant: APP.tenant, status: 200 });
    expect(front.grants.some((g) => g.status === 200 && g.grantType === 'refresh_token' && g.scopes.includes('repository:kiln/acr-helper:pull,push'))).toBe(true);
    await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${registry}/kiln/acr-helper:1`);
    noSecrets(r.stdout + r.stderr);
  });

  it('credsStore acr-env, and an ACR host with nothing configured, log in the same way (the registry certificate given by flag)', async () => {
    const store = await build(`${ACR}/kiln/acr-store:1`, { credsStore: 'acr-env' }, APP.clientSecret);
    expect(store.code, store.stderr).toBe(0);
    const before = exchange.requests.length;
    const bare = await build(`${ACR}/kiln/acr-bare:1`, {}, APP.clientSecret, ['--registry-certificate', `${ACR}=${names.caPath}`]);
    expect(bare.code, bare.stderr).toBe(0);
    expect(exchange.requests.length).toBeGreaterThan(before);
    await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${registry}/kiln/acr-store:1`);
    await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${registry}/kiln/acr-bare:1`);
    noSecrets(store.stdout + store.stderr + bare.stdout + bare.stderr);
  });

  it('a wrong client secret: Entra ID refuses it, the build fails with one line naming the registry, no secret in the output', async () => {
    const wrong = 'kIlN~wrong.Secret_zyxwvutsrqponmlkjihgfedcba';
    const r = await build(`${ACR}/kiln/acr-refused:1`, { credHelpers: { [ACR]: 'acr-env' } }, wrong);
    expect(r.code).not.toBe(0);
    expect(entra.tokenRequests.at(-1)).toMatchObject({ clientId: APP.clientId, status: 401 });
    const lines = failureLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`credential helper acr-env (built in): registry ${ACR}: `);
    // Entra ID's own reason, which the SDK puts after a line of its own: what the user can act on.
    expect(lines[0]).toContain('AADSTS7000215: Invalid client secret provided.');
    expect(lines[0]).not.toMatch(/Trace ID|Correlation ID/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
    noSecrets(r.stdout + r.stderr);
  });

  it("a registry of another tenant refuses the Entra token at /oauth2/exchange: one line naming the registry, no token in it", async () => {
    const r = await build(`${OTHER_ACR}/kiln/acr-other:1`, { credHelpers: { [OTHER_ACR]: 'acr-env' } }, APP.clientSecret);
    expect(r.code).not.toBe(0);
    expect(entra.tokenRequests.at(-1)?.status).toBe(200);
    expect(otherExchange.requests.at(-1)).toMatchObject({ service: OTHER_ACR, tenant: APP.tenant, status: 401 });
    const lines = failureLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`credential helper acr-env (built in): registry ${OTHER_ACR}: /oauth2/exchange refused the Entra ID token (HTTP 401)`);
    noSecrets(r.stdout + r.stderr);
  });
});
