// Stand-ins for the identity services the clouds' registry logins talk to, checking what the real ones
// check and answering as they answer (shapes from Microsoft's and Google's documentation), for
// public-names.ts to serve under their own host names:
// - Microsoft Entra ID (login.microsoftonline.com): the v2.0 client-credentials grant for one tenant,
//   client id and secret; its OpenID configuration and instance discovery too, should MSAL ask.
// - ACR's /oauth2/exchange: an Entra access token this stand-in issued, for this registry (`service`)
//   and tenant, for a refresh token; the registry's token endpoint (bearer-front.ts) then takes the
//   refresh token.
// - Google's OAuth 2.0 token endpoint: the JWT-bearer grant of a service account key, its RS256
//   signature checked with the account's public key, and its iss, aud (the URL it was posted to),
//   scope, iat and exp. At both of Google's addresses: oauth2.googleapis.com/token, the documented one,
//   and www.googleapis.com/oauth2/v4/token, the older one that google-auth-library 9's gtoken 7 posts
//   to (and signs for) whatever the key file's token_uri says.
import { randomBytes, verify, type KeyObject } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { NameHandler } from './public-names.js';

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

const form = (body: Buffer): URLSearchParams => new URLSearchParams(body.toString('utf8'));

export interface EntraApp {
  readonly tenant: string;
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface EntraStandIn {
  readonly handler: NameHandler;
  /** Access tokens issued so far (what the exchange accepts). */
  readonly issued: Set<string>;
  /** Every token request: the grant, client id and scope asked, and the answer's status. */
  readonly tokenRequests: { readonly grantType: string | null; readonly clientId: string | null; readonly scope: string | null; readonly status: number }[];
}

/** Entra ID's error body: `error`, the AADSTS line, and the ids every answer carries. */
function entraError(res: ServerResponse, status: number, error: string, code: number, text: string): void {
  const trace = randomBytes(16).toString('hex');
  json(res, status, {
    error,
    error_description: `AADSTS${code}: ${text} Trace ID: ${trace} Correlation ID: ${randomBytes(16).toString('hex')} Timestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: trace,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  });
}

export function entraIdStandIn(app: EntraApp): EntraStandIn {
  const issued = new Set<string>();
  const tokenRequests: EntraStandIn['tokenRequests'] = [];
  const base = 'https://login.microsoftonline.com';
  return {
    issued,
    tokenRequests,
    handler(req, body, res) {
      const url = new URL(req.url ?? '/', base);
      if (req.method === 'GET' && url.pathname === '/common/discovery/instance') {
        json(res, 200, {
          tenant_discovery_endpoint: `${base}/${app.tenant}/v2.0/.well-known/openid-configuration`,
          'api-version': '1.1',
          metadata: [{ preferred_network: 'login.microsoftonline.com', preferred_cache: 'login.windows.net', aliases: ['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com', 'sts.windows.net'] }],
        });
        return;
      }
      const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(url.pathname);
      if (m === null) {
        json(res, 404, { error: 'not_found' });
        return;
      }
      const [, tenant, what] = m as unknown as [string, string, string];
      if (tenant !== app.tenant) {
        entraError(res, 400, 'invalid_request', 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`);
        return;
      }
      if (what.endsWith('openid-configuration')) {
        json(res, 200, {
          token_endpoint: `${base}/${tenant}/oauth2/v2.0/token`,
          authorization_endpoint: `${base}/${tenant}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${base}/${tenant}/oauth2/v2.0/logout`,
          jwks_uri: `${base}/${tenant}/discovery/v2.0/keys`,
          issuer: `${base}/${tenant}/v2.0`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        });
        return;
      }
      const f = form(body);
      const record = (status: number): void => {
        tokenRequests.push({ grantType: f.get('grant_type'), clientId: f.get('client_id'), scope: f.get('scope'), status });
      };
      if (req.method !== 'POST' || f.get('grant_type') !== 'client_credentials') {
        record(400);
        entraError(res, 400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
        return;
      }
      if (f.get('client_id') !== app.clientId) {
        record(400);
        entraError(res, 400, 'unauthorized_client', 700016, `Application with identifier '${f.get('client_id') ?? ''}' was not found in the directory '${tenant}'.`);
        return;
      }
      if (f.get('client_secret') !== app.clientSecret) {
        record(401);
        entraError(res, 401, 'invalid_client', 7000215, 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.');
        return;
      }
      const scope = f.get('scope') ?? '';
      if (!/(^| )https:\/\/[^ ]+\/\.default( |$)/.test(scope)) {
        record(400);
        entraError(res, 400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.`);
        return;
      }
      record(200);
      // Shaped as Entra's access tokens are (a JWT); nothing reads inside it but the exchange, which looks it up.
      const token = ['eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9', Buffer.from(JSON.stringify({ aud: scope.replace('/.default', ''), tid: tenant, appid: app.clientId })).toString('base64url'), randomBytes(32).toString('base64url')].join('.');
      issued.add(token);
      json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
    },
  };
}

export interface AcrExchange {
  /** Answers `POST /oauth2/exchange`, or returns false for any other path. */
  handle(...args: Parameters<NameHandler>): boolean;
  /** Refresh tokens issued so far (what the registry's token endpoint takes). */
  readonly refreshTokens: Set<string>;
  readonly requests: { readonly grantType: string | null; readonly service: string | null; readonly tenant: string | null; readonly status: number }[];
}

/** ACR's exchange of an Entra access token (one of `entra.issued`, of the registry's `tenant`) for the registry's refresh token. */
export function acrExchange(registry: string, tenant: string, entra: EntraStandIn): AcrExchange {
  const refreshTokens = new Set<string>();
  const requests: AcrExchange['requests'] = [];
  return {
    refreshTokens,
    requests,
    handle(req, body, res) {
      if (new URL(req.url ?? '/', 'https://x').pathname !== '/oauth2/exchange') return false;
      const f = form(body);
      const aad = f.get('access_token') ?? '';
      // ACR takes tokens of its own tenant only: the token's `tid`, and the `tenant` the client names.
      const tid = entra.issued.has(aad) ? (JSON.parse(Buffer.from(aad.split('.')[1] ?? '', 'base64url').toString('utf8')) as { tid?: unknown }).tid : undefined;
      const ok =
        req.method === 'POST' &&
        f.get('grant_type') === 'access_token' &&
        f.get('service') === registry &&
        (f.get('tenant') ?? tenant) === tenant &&
        tid === tenant;
      requests.push({ grantType: f.get('grant_type'), service: f.get('service'), tenant: f.get('tenant'), status: ok ? 200 : 401 });
      if (!ok) {
        json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required, visit https://aka.ms/acr/authorization for more information.' }] });
        return true;
      }
      const refresh = `eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.kiln-acr-refresh.${randomBytes(32).toString('base64url')}`;
      refreshTokens.add(refresh);
      json(res, 200, { refresh_token: refresh });
      return true;
    },
  };
}

export interface ServiceAccount {
  readonly clientEmail: string;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

export interface GoogleTokenStandIn {
  readonly handler: NameHandler;
  /** Access tokens issued so far (what the registry's token endpoint takes as the Basic password). */
  readonly issued: Set<string>;
  /** Every token request: the URL it went to, the JWT's claims when it parsed, and the verdict (`ok` or why not). */
  readonly requests: { readonly url: string; readonly claims: Record<string, unknown> | undefined; readonly verdict: string }[];
}

/** Google's token endpoints, each a name for public-names.ts and a path on it. */
export const GOOGLE_TOKEN_URLS = ['https://oauth2.googleapis.com/token', 'https://www.googleapis.com/oauth2/v4/token'] as const;

/** Why Google would refuse this assertion from `sa`, posted to `url`, or 'ok'. */
function checkAssertion(assertion: string, sa: ServiceAccount, url: string): { verdict: string; claims: Record<string, unknown> | undefined } {
  const parts = assertion.split('.');
  if (parts.length !== 3) return { verdict: 'not a JWT', claims: undefined };
  const [h, c, s] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
    claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return { verdict: 'not a JWT', claims: undefined };
  }
  if (header['alg'] !== 'RS256') return { verdict: `alg ${String(header['alg'])}`, claims };
  if (header['kid'] !== undefined && header['kid'] !== sa.keyId) return { verdict: `unknown kid ${String(header['kid'])}`, claims };
  if (!verify('RSA-SHA256', Buffer.from(`${h}.${c}`), sa.publicKey, Buffer.from(s, 'base64url'))) return { verdict: 'Invalid JWT Signature.', claims };
  const now = Math.floor(Date.now() / 1000);
  if (claims['iss'] !== sa.clientEmail) return { verdict: `iss ${String(claims['iss'])}`, claims };
  if (claims['aud'] !== url) return { verdict: `aud ${String(claims['aud'])}`, claims };
  if (typeof claims['scope'] !== 'string' || !claims['scope'].split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) return { verdict: `scope ${String(claims['scope'])}`, claims };
  const iat = claims['iat'];
  const exp = claims['exp'];
  if (typeof iat !== 'number' || typeof exp !== 'number' || iat > now + 300 || exp <= now || exp - iat > 3600) return { verdict: 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.', claims };
  return { verdict: 'ok', claims };
}

export function googleTokenStandIn(sa: ServiceAccount): GoogleTokenStandIn {
  const issued = new Set<string>();
  const requests: GoogleTokenStandIn['requests'] = [];
  return {
    issued,
    requests,
    handler(req, body, res) {
      const f = form(body);
      const url = `https://${(req.headers.host ?? '').replace(/:443$/, '')}${new URL(req.url ?? '/', 'https://x').pathname}`;
      if (req.method !== 'POST' || !(GOOGLE_TOKEN_URLS as readonly string[]).includes(url)) {
        json(res, 404, { error: 'not_found' });
        return;
      }
      if (f.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        requests.push({ url, claims: undefined, verdict: `grant_type ${f.get('grant_type') ?? ''}` });
        json(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' });
        return;
      }
      const { verdict, claims } = checkAssertion(f.get('assertion') ?? '', sa, url);
      requests.push({ url, claims, verdict });
      if (verdict !== 'ok') {
        json(res, 400, { error: 'invalid_grant', error_description: verdict });
        return;
      }
      const token = `ya29.c.kiln-${randomBytes(24).toString('base64url')}`;
      issued.add(token);
      json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
    },
  };
}
