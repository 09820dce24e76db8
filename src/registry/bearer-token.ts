// The token half of the distribution auth spec: exchange credentials at the challenge's realm for a
// bearer token good for some scopes (`repository:NAME:pull` / `repository:NAME:pull,push`).
import fetch, { FetchError, type RequestInit } from 'node-fetch';
import { z } from 'zod';
import { RegistryError } from '../errors.js';
import { parseJsonBytes } from '../oci/json.js';
import type { Challenge } from './challenge.js';
import type { Credential } from './keychain.js';
import { displayUrl, errorFromResponse, unreachableError } from './response-error.js';

const tokenResponseSchema = z
  .looseObject({
    token: z.string().optional(),
    access_token: z.string().optional(),
    expires_in: z.number().optional(),
  })
  .refine((t) => (t.token ?? t.access_token ?? '') !== '', { message: 'neither token nor access_token is set' });

export interface BearerToken {
  readonly value: string;
  /** Epoch ms after which the token should not be used. */
  readonly expiresAt: number;
}

export interface TokenRequest {
  readonly registry: string;
  readonly challenge: Challenge;
  readonly scopes: readonly string[];
  readonly credential: Credential;
  readonly userAgent: string;
  readonly signal: AbortSignal;
  readonly agent: RequestInit['agent'];
}

/** The spec's default lifetime when the server does not say; we renew a little early. */
const DEFAULT_TTL_S = 60;
/** Token services redirect once or twice at most (to a regional endpoint). */
const MAX_TOKEN_REDIRECTS = 5;
const RENEW_EARLY_MS = 10_000;

export async function fetchBearerToken(req: TokenRequest): Promise<BearerToken> {
  const realm = req.challenge.params['realm'];
  if (realm === undefined || realm === '') {
    throw new RegistryError(`registry ${req.registry} asked for a bearer token without a realm`, {});
  }
  let url: URL;
  try {
    url = new URL(realm);
  } catch (err) {
    throw new RegistryError(`registry ${req.registry} gave an invalid token realm`, {}, { cause: err });
  }
  const service = req.challenge.params['service'];
  const headers: Record<string, string> = { 'User-Agent': req.userAgent };
  const cred = req.credential;
  let init: RequestInit;
  if (cred.kind === 'identity-token') {
    // OAuth2 refresh-token grant, as docker and go-containerregistry use identity tokens.
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.token, client_id: 'kiln' });
    if (service !== undefined) form.set('service', service);
    if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init = { method: 'POST', body: form.toString(), headers };
  } else {
    if (service !== undefined) url.searchParams.set('service', service);
    for (const s of req.scopes) url.searchParams.append('scope', s);
    if (cred.kind === 'basic') {
      headers['Authorization'] = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
    }
    init = { method: 'GET', headers };
  }
  const method = init.method ?? 'GET';
  let res;
  try {
    res = await fetch(url, { ...init, signal: req.signal, agent: req.agent, follow: MAX_TOKEN_REDIRECTS });
  } catch (err) {
    // A realm that redirects in a loop will not stop doing so: no retry, and no query (scopes) shown.
    if (err instanceof FetchError && err.type === 'max-redirect') {
      throw new RegistryError(`authenticating to ${req.registry}: token endpoint ${displayUrl(url)} redirected more than ${MAX_TOKEN_REDIRECTS} times`, { url: displayUrl(url) }, { cause: err });
    }
    throw unreachableError(url.host, url, err);
  }
  if (res.status !== 200) {
    const e = await errorFromResponse(method, url, res);
    throw new RegistryError(`authenticating to ${req.registry}: ${e.message}`, {
      ...(e.status !== undefined ? { status: e.status } : {}),
      registryCodes: e.registryCodes,
      retryable: e.retryable,
      url: displayUrl(url),
    });
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const body = parseJsonBytes(tokenResponseSchema, bytes, `token response from ${displayUrl(url)}`);
  const value = body.token !== undefined && body.token !== '' ? body.token : (body.access_token ?? '');
  const ttl = body.expires_in !== undefined && body.expires_in > 0 ? body.expires_in : DEFAULT_TTL_S;
  return { value, expiresAt: Date.now() + Math.max(ttl * 1000 - RENEW_EARLY_MS, 1000) };
}
