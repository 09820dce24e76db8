// A registry with token auth as the clouds run theirs, in front of the test suite's real docker-registry:
// `/v2/...` wants `Authorization: Bearer TOKEN` where TOKEN came from this front's own token endpoint
// (the challenge's realm, on the registry's own host as ACR's /oauth2/token and GCR's /v2/token are)
// for a scope that covers the request (`repository:NAME:pull` for GET and HEAD, `:push` for the rest);
// anything else gets the 401 and challenge a registry gives. Who may have a token is the caller's
// check (`authenticate`): ACR's refresh-token grant, GCR's Basic `oauth2accesstoken`. What passes goes
// to docker-registry with the public name as its host (X-Forwarded-Proto https), so that the upload
// URLs it hands back name the front.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { NameHandler } from './public-names.js';

/** A token request as the front received it: the form of a POST, the query of a GET. */
export interface TokenAsk {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  readonly params: URLSearchParams;
}

export interface BearerFrontOptions {
  /** The registry's public name: the challenge's `service`, and the host upload URLs name. */
  readonly host: string;
  /** docker-registry behind it, `127.0.0.1:PORT` (plain http). */
  readonly upstream: string;
  /** The token endpoint's path on `host`. */
  readonly realmPath: string;
  /** The caller's name for whoever asked, or undefined to refuse the request (401). */
  authenticate(ask: TokenAsk): string | undefined;
}

export interface TokenGrant {
  readonly subject: string | undefined;
  readonly grantType: string | null;
  readonly service: string | null;
  readonly scopes: readonly string[];
  readonly status: number;
}

export interface BearerFront {
  readonly handler: NameHandler;
  /** Every token request, in order. */
  readonly grants: TokenGrant[];
  /** Every registry request, `METHOD /v2/... STATUS`. */
  readonly requests: string[];
}

/** `repository:NAME:a,b` -> NAME and its actions. */
function parseScope(scope: string): { name: string; actions: string[] } | undefined {
  const m = /^repository:([^:]+):([a-z*,]+)$/.exec(scope);
  return m === null ? undefined : { name: m[1] as string, actions: (m[2] as string).split(',') };
}

export function bearerFront(o: BearerFrontOptions): BearerFront {
  const grants: TokenGrant[] = [];
  const requests: string[] = [];
  /** Access token -> repository name -> actions granted. */
  const tokens = new Map<string, Map<string, Set<string>>>();
  const [upHost, upPort] = o.upstream.split(':') as [string, string];

  function token(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const params = method === 'POST' ? new URLSearchParams(body.toString('utf8')) : new URL(req.url ?? '/', 'https://x').searchParams;
    const scopes = params.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const subject = o.authenticate({ method, headers: req.headers, params });
    const parsed = scopes.map(parseScope);
    const ok = subject !== undefined && params.get('service') === o.host && parsed.every((p) => p !== undefined);
    grants.push({ subject, grantType: params.get('grant_type'), service: params.get('service'), scopes, status: ok ? 200 : 401 });
    res.setHeader('content-type', 'application/json');
    if (!ok) {
      res.writeHead(401).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const access = new Map<string, Set<string>>();
    for (const p of parsed) if (p !== undefined) access.set(p.name, new Set([...(access.get(p.name) ?? []), ...p.actions]));
    const value = `kiln-front-access-${randomBytes(18).toString('hex')}`;
    tokens.set(value, access);
    res.end(JSON.stringify({ access_token: value, token: value, expires_in: 300 }));
  }

  function registry(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'https://x').pathname;
    const repo = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(path)?.[1];
    const action = method === 'GET' || method === 'HEAD' ? 'pull' : 'push';
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const access = bearer === undefined ? undefined : tokens.get(bearer);
    const allowed = access !== undefined && (repo === undefined || access.get(repo)?.has(action) === true);
    if (!allowed) {
      requests.push(`${method} ${path} 401`);
      const scope = repo === undefined ? '' : `,scope="repository:${repo}:${action === 'pull' ? 'pull' : 'pull,push'}"`;
      res.writeHead(401, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
        'www-authenticate': `Bearer realm="https://${o.host}${o.realmPath}",service="${o.host}"${scope}`,
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: o.host, 'x-forwarded-proto': 'https', 'content-length': String(body.length) };
    delete headers['authorization'];
    delete headers['transfer-encoding'];
    const up = httpRequest({ host: upHost, port: Number(upPort), method, path: req.url, headers }, (r) => {
      requests.push(`${method} ${path} ${r.statusCode ?? 0}`);
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    up.end(body);
  }

  return {
    grants,
    requests,
    handler(req, body, res) {
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      if (path === o.realmPath) token(req, body, res);
      else if (path === '/v2/' || path.startsWith('/v2/')) registry(req, body, res);
      else res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');
    },
  };
}
