// gcr / gcloud built in, with a service account key (GOOGLE_APPLICATION_CREDENTIALS naming a
// `service_account` JSON), to the end, under the real names: google-auth-library signs a JWT with the
// key and posts it to Google's token endpoint (www.googleapis.com/oauth2/v4/token in the pinned
// version; oauth2.googleapis.com/token is served too), whatever the file's token_uri says, so kiln
// (bin/executor.js, bin/warmer.js) runs in a mount namespace whose /etc/hosts sends those names and
// the registries' (gcr.io, europe-docker.pkg.dev) to loopback stand-ins on :443
// (test/support/public-names.ts). The token endpoint checks the JWT's RS256 signature with the
// account's public key (the key pair is made here) and its iss, aud, scope and lifetime; the
// registries' token endpoints take the access token as GCR's do (Basic `oauth2accesstoken`:TOKEN) and
// the registries want the bearer token they gave (bearer-front.ts, before the suite's docker-registry).
// test/registry/gcr-login.test.ts covers the `external_account` kind, in-process.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearerFront, type BearerFront, type TokenAsk } from '../support/bearer-front.js';
import { GOOGLE_TOKEN_URLS, googleTokenStandIn, type GoogleTokenStandIn } from '../support/cloud-login-servers.js';
import { executor, failureLines, WARMER, writeContext } from '../support/executor.js';
import { privateHostsUnavailable, startPublicNames, type PublicNames } from '../support/public-names.js';
import { skopeo } from './fixtures.js';

/** A loopback address of this file's own (public-names.ts): another file's stand-ins can hold 127.0.0.1:443. */
const ADDRESS = '127.0.0.3';
const GCR = 'gcr.io';
const AR = 'europe-docker.pkg.dev';
const CLIENT_EMAIL = 'kiln-builder@kiln-test.iam.gserviceaccount.com';
const KEY_ID = randomBytes(20).toString('hex');

function keyPair(): { privatePem: string; publicKey: ReturnType<typeof generateKeyPairSync>['publicKey'] } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey };
}

const unavailable = await privateHostsUnavailable(ADDRESS);

describe.skipIf(unavailable !== undefined)(`gcr (built in) with a service account key, against Google stand-ins under their own names${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`, () => {
  const registry = inject('registry');
  const images = inject('images');
  const account = keyPair();
  const dirs: string[] = [];
  let names: PublicNames;
  let google: GoogleTokenStandIn;
  let fronts: Record<string, BearerFront>;
  let context: string;

  const temp = async (): Promise<string> => {
    const d = await mkdtemp(join(tmpdir(), 'kiln-gcr-sa-'));
    dirs.push(d);
    return d;
  };
  /** The JSON key file the console's "Create key" gives, signed with `privatePem`. */
  const keyFile = async (privatePem: string): Promise<string> => {
    const file = join(await temp(), 'key.json');
    await writeFile(
      file,
      JSON.stringify({
        type: 'service_account',
        project_id: 'kiln-test',
        private_key_id: KEY_ID,
        private_key: privatePem,
        client_email: CLIENT_EMAIL,
        client_id: '109876543210987654321',
        auth_uri: 'https://accounts.google.com/o/oauth2/auth',
        token_uri: 'https://oauth2.googleapis.com/token',
        auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
        client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${encodeURIComponent(CLIENT_EMAIL)}`,
        universe_domain: 'googleapis.com',
      }),
    );
    return file;
  };
  const run = async (args: readonly string[], config: object, privatePem: string, bin?: string): ReturnType<typeof executor> => {
    const cfg = await temp();
    await writeFile(join(cfg, 'config.json'), JSON.stringify(config));
    return executor(args, {
      hosts: names.hostsPath,
      ...(bin !== undefined ? { bin } : {}),
      env: { DOCKER_CONFIG: cfg, NODE_EXTRA_CA_CERTS: names.caPath, GOOGLE_APPLICATION_CREDENTIALS: await keyFile(privatePem) },
    });
  };
  /** The registry path of a base image in the suite's registry (`test/busybox:latest`). */
  const base = images.busybox.slice(registry.length + 1);
  const noSecrets = (out: string): void => {
    for (const s of [...google.issued, account.privatePem.split('\n')[1] ?? 'unreachable']) expect(out).not.toContain(s);
  };

  beforeAll(async () => {
    google = googleTokenStandIn({ clientEmail: CLIENT_EMAIL, publicKey: account.publicKey, keyId: KEY_ID });
    // GCR's token endpoint: docker login's Basic, user `oauth2accesstoken`, an access token Google gave.
    const oauth2AccessToken = (ask: TokenAsk): string | undefined => {
      const basic = /^Basic (\S+)$/.exec(ask.headers.authorization ?? '')?.[1];
      const [user, password] = Buffer.from(basic ?? '', 'base64').toString('utf8').split(/:(.*)/s);
      return user === 'oauth2accesstoken' && google.issued.has(password ?? '') ? CLIENT_EMAIL : undefined;
    };
    fronts = {
      [GCR]: bearerFront({ host: GCR, upstream: registry, realmPath: '/v2/token', authenticate: oauth2AccessToken }),
      [AR]: bearerFront({ host: AR, upstream: registry, realmPath: '/v2/token', authenticate: oauth2AccessToken }),
    };
    names = await startPublicNames(ADDRESS, {
      ...Object.fromEntries(GOOGLE_TOKEN_URLS.map((u) => [new URL(u).host, google.handler])),
      [GCR]: (fronts[GCR] as BearerFront).handler,
      [AR]: (fronts[AR] as BearerFront).handler,
    });
    context = await writeContext({ Dockerfile: `FROM ${GCR}/${base}\nCOPY hello.txt /hello.txt\n`, 'hello.txt': 'pushed to GCR with a service account key\n' });
    dirs.push(context);
  });
  afterAll(async () => {
    await names?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("credHelpers gcr: the key signs a JWT for Google's token endpoint, its access token pulls the base and pushes", async () => {
    const r = await run(['--context', `dir://${context}`, '--destination', `${GCR}/kiln-test/sa-app:1`], { credHelpers: { [GCR]: 'gcr' } }, account.privatePem);
    expect(r.code, r.stderr).toBe(0);
    const last = google.requests.at(-1);
    expect(last?.verdict).toBe('ok');
    expect(last?.claims).toMatchObject({ iss: CLIENT_EMAIL, aud: last?.url, scope: 'https://www.googleapis.com/auth/cloud-platform' });
    const grants = (fronts[GCR] as BearerFront).grants;
    expect(grants.some((g) => g.status === 200 && g.subject === CLIENT_EMAIL && g.scopes.includes(`repository:${base.replace(/:.*$/, '')}:pull`))).toBe(true);
    expect(grants.some((g) => g.status === 200 && g.subject === CLIENT_EMAIL && g.scopes.includes('repository:kiln-test/sa-app:pull,push'))).toBe(true);
    await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${registry}/kiln-test/sa-app:1`);
    noSecrets(r.stdout + r.stderr);
  });

  it('an Artifact Registry host with nothing configured: the warmer pulls with the same login', async () => {
    const cache = await temp();
    const before = google.requests.length;
    const r = await run(['--cache-dir', cache, '--image', `${AR}/${base}`], {}, account.privatePem, WARMER);
    expect(r.code, r.stderr).toBe(0);
    expect(google.requests.slice(before).map((q) => q.verdict)).toContain('ok');
    expect((fronts[AR] as BearerFront).grants.some((g) => g.status === 200 && g.subject === CLIENT_EMAIL)).toBe(true);
    expect((await readdir(cache)).length).toBeGreaterThan(0);
    noSecrets(r.stdout + r.stderr);
  });

  it('a key that is not the account\'s: Google refuses the signature, one line naming the registry, no key or token in the output', async () => {
    const other = keyPair();
    const r = await run(['--context', `dir://${context}`, '--destination', `${GCR}/kiln-test/sa-refused:1`], { credHelpers: { [GCR]: 'gcloud' } }, other.privatePem);
    expect(r.code).not.toBe(0);
    expect(google.requests.at(-1)?.verdict).toBe('Invalid JWT Signature.');
    const lines = failureLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(`credential helper gcr (built in): registry ${GCR}: `);
    expect(lines[0]).toContain('Invalid JWT Signature.');
    expect(r.stdout + r.stderr).not.toContain(other.privatePem.split('\n')[1] ?? 'unreachable');
    noSecrets(r.stdout + r.stderr);
  });
});
