// A minimal token service for docker-registry's `auth: token:` mode: checks Basic credentials and
// issues RS256 JWTs signed with a key and self-signed certificate made by openssl at start. The
// certificate goes in the token's `x5c` header and in the registry's rootcertbundle, which is how
// distribution v2.8 verifies the signing key.
import { execFile } from 'node:child_process';
import { createSign, randomUUID, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TokenServerOptions {
  readonly users: Readonly<Record<string, string>>;
  readonly service: string;
  readonly issuer: string;
  /** OAuth2 refresh tokens (docker's `identitytoken`) accepted by `POST` with grant_type=refresh_token, mapped to their user. */
  readonly refreshTokens?: Readonly<Record<string, string>>;
  /** Token lifetime in seconds, in `expires_in` and the JWT's `exp` (default 300). */
  readonly expiresIn?: number;
}

export interface TokenRequestRecord {
  readonly user: string | undefined;
  readonly scopes: readonly string[];
  readonly status: number;
}

export interface RunningTokenServer {
  /** The realm URL the registry hands out in its challenge. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM of the signing certificate, for the registry's `rootcertbundle`. */
  readonly certPath: string;
  /** Every token request seen, in order. */
  readonly requests: readonly TokenRequestRecord[];
  stop(): Promise<void>;
}

export async function startTokenServer(opts: TokenServerOptions): Promise<RunningTokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath,
    '-days', '2', '-subj', '/CN=kiln-test-token-issuer',
  ]);
  const key = await readFile(keyPath, 'utf8');
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString('base64');
  const requests: TokenRequestRecord[] = [];

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (b: Buffer) => (body += b.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '');
        const refresh = form.get('refresh_token') ?? '';
        const user = form.get('grant_type') === 'refresh_token' ? opts.refreshTokens?.[refresh] : undefined;
        respond(res, user, scopes);
      });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    respond(res, checkBasic(req.headers.authorization, opts.users), url.searchParams.getAll('scope'));
  });

  function respond(res: ServerResponse, user: string | undefined, scopes: string[]): void {
    if (user === undefined) {
      requests.push({ user: undefined, scopes, status: 401 });
      res.writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Basic realm="kiln-test"' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad or missing credentials' }] }));
      return;
    }
    requests.push({ user, scopes, status: 200 });
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: opts.issuer,
      sub: user,
      aud: opts.service,
      exp: now + (opts.expiresIn ?? 300),
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access: scopes.flatMap(parseScope),
    };
    const token = signJwt({ alg: 'RS256', typ: 'JWT', x5c: [certDer] }, claims, key);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: opts.expiresIn ?? 300, issued_at: new Date().toISOString() }));
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service: opts.service,
    issuer: opts.issuer,
    certPath,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function checkBasic(header: string | undefined, users: Readonly<Record<string, string>>): string | undefined {
  if (header === undefined || !header.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon);
  return users[user] !== undefined && users[user] === decoded.slice(colon + 1) ? user : undefined;
}

/** `repository:name:pull,push` -> a grant of everything asked (the test server trusts its users fully). */
function parseScope(scope: string): { type: string; name: string; actions: string[] }[] {
  const parts = scope.split(':');
  if (parts.length < 3) return [];
  const type = parts[0] ?? '';
  const actions = (parts.at(-1) ?? '').split(',').filter((a) => a !== '');
  const name = parts.slice(1, -1).join(':');
  return [{ type, name, actions }];
}

function signJwt(header: object, claims: object, privateKeyPem: string): string {
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc(header)}.${enc(claims)}`;
  const sig = createSign('RSA-SHA256').update(input).sign(privateKeyPem).toString('base64url');
  return `${input}.${sig}`;
}
