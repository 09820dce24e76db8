// The HTTP layer under the client: finds each registry's scheme and auth challenge once (a ping of
// /v2/), attaches credentials (Basic, or a bearer token cached per scope), answers a 401 by
// re-authenticating once, and retries network errors and 5xx with exponential backoff.
// All state (endpoints, tokens, sockets) belongs to one Transport, i.e. to one build.
import type { Agent as HttpAgent } from 'node:http';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import fetch, { type BodyInit, type RequestInit, type Response } from 'node-fetch';
import { KilnError, RegistryError } from '../errors.js';
import type { SecretMask } from '../log/logger.js';
import type { RunContext } from '../log/run-context.js';
import { BoundedHttpAgent, BoundedHttpsAgent, DEFAULT_WAIT_LIMITS } from './bounded-agent.js';
import { fetchBearerToken, type BearerToken } from './bearer-token.js';
import { preferredChallenge, type Challenge } from './challenge.js';
import { apiHost, schemesFor } from './endpoint.js';
import type { Credential, Keychain } from './keychain.js';
import { displayUrl, errorFromResponse, unreachableError } from './response-error.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

export interface TransportOptions {
  readonly ctx: RunContext;
  readonly keychain: Keychain;
  /** Tokens we are issued are registered here so no log line can print them. */
  readonly mask: SecretMask;
  /** Registries where plain http may be tried after https (kaniko's --insecure / --insecure-pull). */
  readonly insecure?: (registry: string) => boolean;
  /** Registries whose TLS certificate is not verified (kaniko's --skip-tls-verify). */
  readonly skipTlsVerify?: (registry: string) => boolean;
  /** Extra CA and client certificate for a registry (`--registry-certificate`, `--registry-client-cert`). */
  readonly tls?: (registry: string) => RegistryTls | undefined;
  /** Extra attempts after the first for network errors and 5xx. */
  readonly retries?: number;
  /** Delay before the first retry; doubled for each next one. */
  readonly retryDelayMs?: number;
  readonly userAgent?: string;
  /**
   * Where the registries' pings are remembered: one cache shared by the pull and the push client of a
   * build means a registry both pull from and push to is pinged once (keyed by everything that can
   * change a ping's answer: the schemes allowed and whether TLS is verified).
   */
  readonly endpoints?: EndpointCache;
}

/** PEM bytes, already read (see tls-files.ts), so a bad path fails before any request. */
export interface RegistryTls {
  /** A CA trusted for this registry in addition to the system's. */
  readonly ca?: Buffer | undefined;
  /** Client certificate and key for mutual TLS. */
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RegistryRequest {
  readonly registry: string;
  readonly method: HttpMethod;
  /** `/v2/...` relative to the registry, or an absolute URL it handed us (an upload Location). */
  readonly path: string;
  /** Token scopes this request needs, e.g. `repository:library/alpine:pull`. */
  readonly scopes: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  /** Opens the body anew for every attempt, so a retry never sends a half-read stream. */
  readonly body?: () => Promise<BodyInit>;
  /** Statuses the caller handles; anything else becomes a RegistryError. */
  readonly ok: readonly number[];
  /** Overrides the transport's retry count (0 when the caller retries a larger sequence itself). */
  readonly retries?: number;
}

export interface Endpoint {
  /** `https://host` or `http://host`. */
  readonly base: string;
  challenge: Challenge | undefined;
}

/** Registries' pings by key (see TransportOptions.endpoints). */
export type EndpointCache = Map<string, Promise<Endpoint>>;

/** What one scheme's `GET /v2/` gave. */
type PingResult = { readonly endpoint: Endpoint } | { readonly error: RegistryError };

export class Transport {
  readonly #opts: TransportOptions;
  readonly #endpoints: EndpointCache;
  readonly #tokens = new Map<string, Promise<BearerToken>>();
  readonly #credentials = new Map<string, Promise<Credential>>();
  // Every socket, token servers' and storage hosts' included, has bounded waits (bounded-agent.ts).
  readonly #httpAgent: BoundedHttpAgent;
  readonly #httpsAgent: BoundedHttpsAgent;
  readonly #httpsNoVerifyAgent: BoundedHttpsAgent;
  /** Agents for hosts with their own TLS settings (a CA, a client certificate), made on first use. */
  readonly #hostAgents = new Map<string, BoundedHttpsAgent>();
  readonly userAgent: string;

  constructor(opts: TransportOptions) {
    this.#opts = opts;
    this.userAgent = opts.userAgent ?? 'kiln';
    this.#endpoints = opts.endpoints ?? new Map();
    const waits = opts.ctx.waits ?? DEFAULT_WAIT_LIMITS;
    this.#httpAgent = new BoundedHttpAgent(waits, { keepAlive: true });
    this.#httpsAgent = new BoundedHttpsAgent(waits, { keepAlive: true });
    this.#httpsNoVerifyAgent = new BoundedHttpsAgent(waits, { keepAlive: true, rejectUnauthorized: false });
  }

  get ctx(): RunContext {
    return this.#opts.ctx;
  }

  get retries(): number {
    return this.#opts.retries ?? 2;
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
    this.#httpsNoVerifyAgent.destroy();
    for (const a of this.#hostAgents.values()) a.destroy();
  }

  /** The agent for a URL, chosen per request so redirects to storage hosts get their own TLS rules. */
  readonly #agentFor = (url: URL): HttpAgent => {
    if (url.protocol === 'http:') return this.#httpAgent;
    const skipVerify = this.#opts.skipTlsVerify?.(url.host) === true;
    const tls = this.#opts.tls?.(url.host);
    if (tls === undefined) return skipVerify ? this.#httpsNoVerifyAgent : this.#httpsAgent;
    let agent = this.#hostAgents.get(url.host);
    if (agent === undefined) {
      agent = new BoundedHttpsAgent(this.#opts.ctx.waits ?? DEFAULT_WAIT_LIMITS, {
        keepAlive: true,
        rejectUnauthorized: !skipVerify,
        // Node's `ca` replaces the bundled roots; kaniko adds the registry's CA to the system pool.
        ...(tls.ca !== undefined ? { ca: [...rootCertificates, tls.ca.toString('utf8')] } : {}),
        ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
        ...(tls.key !== undefined ? { key: tls.key } : {}),
      });
      this.#hostAgents.set(url.host, agent);
    }
    return agent;
  };

  /** Runs `fn` with up to `retries` extra attempts on retryable RegistryErrors, backing off exponentially. */
  async withRetry<T>(what: string, retries: number, fn: () => Promise<T>): Promise<T> {
    const base = this.#opts.retryDelayMs ?? 200;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const retryable = err instanceof RegistryError && err.retryable;
        if (!retryable || attempt >= retries || this.ctx.signal.aborted) throw err;
        const delay = base * 2 ** attempt;
        this.ctx.log.debug(`retrying ${what} in ${delay}ms after: ${err.message}`);
        await sleep(delay, undefined, { signal: this.ctx.signal });
      }
    }
  }

  /** Sends a request, authenticating as needed; returns the response when its status is in `req.ok`. */
  async request(req: RegistryRequest): Promise<Response> {
    return this.withRetry(`${req.method} ${req.path}`, req.retries ?? this.retries, () => this.#attempt(req));
  }

  async #attempt(req: RegistryRequest): Promise<Response> {
    const endpoint = await this.#endpoint(req.registry);
    const url = new URL(req.path, endpoint.base);
    const registryOrigin = new URL(endpoint.base).origin;
    const sameOrigin = url.origin === registryOrigin;
    for (let reauth = 0; ; reauth++) {
      const headers: Record<string, string> = { 'User-Agent': this.userAgent, ...req.headers };
      // Never hand our credentials to a host the registry redirected us to (e.g. blob storage).
      const authorization = sameOrigin ? await this.#authorization(req.registry, endpoint, req.scopes) : undefined;
      if (authorization !== undefined) headers['Authorization'] = authorization;
      const init: RequestInit = {
        method: req.method,
        headers,
        signal: this.ctx.signal,
        agent: this.#agentFor,
        // Registries serve layers as they are; never let fetch gunzip a gzip layer on the way.
        compress: false,
        // Redirects are followed below, where we decide which hop may see the credentials.
        redirect: 'manual',
      };
      if (req.body !== undefined) init.body = await req.body();
      let res: Response;
      let at = url;
      try {
        ({ res, url: at } = await this.#fetchFollowing(url, init, registryOrigin, authorization));
      } catch (err) {
        // A body stream that failed (a local read error, a source blob's digest mismatch) is the
        // real cause, not the network. But node-fetch's pipeline also destroys the body with the
        // socket's own error when the connection breaks mid-upload: that one is the network's.
        const bodyError = init.body instanceof Readable ? init.body.errored : null;
        discardBody(init.body);
        if (bodyError !== null && bodyError !== undefined && !isNetworkError(bodyError, err)) throw bodyError;
        if (this.ctx.signal.aborted) throw err;
        if (err instanceof RegistryError) throw err;
        throw unreachableError(req.registry, at, err);
      }
      if (res.status === 401 && reauth === 0 && at.origin === registryOrigin && !req.ok.includes(401)) {
        // Our token may have expired or lack a scope; the 401 says what the registry wants now.
        const challenge = preferredChallenge(res.headers.get('www-authenticate'));
        if (challenge !== undefined) {
          res.body?.resume();
          discardBody(init.body);
          endpoint.challenge = challenge;
          this.#forgetTokens(req.registry, req.scopes);
          continue;
        }
      }
      if (req.ok.includes(res.status)) return res;
      discardBody(init.body);
      throw await errorFromResponse(req.method, at, res);
    }
  }

  /**
   * fetch, following redirects of GET and HEAD (blob downloads are often sent to a storage host). The
   * Authorization header goes only to the registry's own origin (scheme, host and port): a storage URL
   * is pre-signed, and a token must never reach a host the registry merely pointed at.
   */
  async #fetchFollowing(
    first: URL,
    init: RequestInit,
    registryOrigin: string,
    authorization: string | undefined,
  ): Promise<{ res: Response; url: URL }> {
    let url = first;
    for (let hop = 0; ; hop++) {
      const res = await fetch(url, init);
      this.ctx.log.debug(`${init.method ?? 'GET'} ${url.origin}${url.pathname} -> ${res.status}`);
      const location = res.headers.get('location');
      const followable = (init.method === 'GET' || init.method === 'HEAD') && REDIRECTS.has(res.status) && location !== null;
      if (!followable) return { res, url };
      res.body?.resume();
      if (hop >= MAX_REDIRECTS) {
        throw new RegistryError(`${init.method} ${displayUrl(first)}: more than ${MAX_REDIRECTS} redirects`, { url: displayUrl(first) });
      }
      url = new URL(location, url);
      const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
      delete headers['Authorization'];
      if (url.origin === registryOrigin && authorization !== undefined) headers['Authorization'] = authorization;
      init = { ...init, headers };
    }
  }

  /** The scheme and challenge of a registry, found once by `GET /v2/`. */
  #endpoint(registry: string): Promise<Endpoint> {
    const schemes = schemesFor(registry, this.#opts.insecure?.(registry) === true);
    const key = `${registry} ${schemes.join(',')} ${this.#opts.skipTlsVerify?.(apiHost(registry)) === true ? 'no-verify' : 'verify'}`;
    let p = this.#endpoints.get(key);
    if (p === undefined) {
      p = this.#ping(registry, schemes);
      this.#endpoints.set(key, p);
      // A failed ping is not remembered: the next attempt (a retry) pings again.
      p.catch(() => this.#endpoints.delete(key));
    }
    return p;
  }

  /**
   * Every allowed scheme is asked at once, as go-containerregistry does (pingParallel), and the first
   * in order that answers as a registry wins: https whenever it answers, plain http only when https
   * failed. One round trip instead of two for a plain-http registry, where https fails fast.
   */
  async #ping(registry: string, schemes: readonly ('https' | 'http')[]): Promise<Endpoint> {
    const attempts = schemes.map((scheme) => this.#pingScheme(registry, scheme));
    // Those not awaited below (an earlier scheme won, or threw) must not reject unhandled.
    for (const a of attempts) a.catch(() => undefined);
    let lastError: RegistryError | undefined;
    for (const a of attempts) {
      const r = await a;
      if ('endpoint' in r) {
        this.ctx.log.debug(`registry ${registry} speaks ${new URL(r.endpoint.base).protocol.slice(0, -1)}${r.endpoint.challenge ? `, auth ${r.endpoint.challenge.scheme}` : ''}`);
        return r.endpoint;
      }
      // An answer (a 5xx, a proxy's error page) says more than a failed connection: it is the error we report.
      if (lastError === undefined || (lastError.status === undefined && r.error.status !== undefined)) lastError = r.error;
    }
    throw lastError ?? new RegistryError(`unable to reach registry ${registry}`, { retryable: true });
  }

  /** One scheme's `GET /v2/`; throws only what no other scheme can help with (an untrusted certificate). */
  async #pingScheme(registry: string, scheme: 'https' | 'http'): Promise<PingResult> {
    const base = `${scheme}://${apiHost(registry)}`;
    const url = new URL('/v2/', base);
    try {
      const res = await fetch(url, {
        headers: { 'User-Agent': this.userAgent },
        signal: this.ctx.signal,
        agent: this.#agentFor,
        redirect: 'manual',
      });
      // Not a registry answering: the next scheme may be.
      if (res.status !== 200 && res.status !== 401) return { error: await errorFromResponse('GET', url, res) };
      res.body?.resume();
      const challenge = res.status === 401 ? preferredChallenge(res.headers.get('www-authenticate')) : undefined;
      return { endpoint: { base, challenge } };
    } catch (err) {
      if (this.ctx.signal.aborted) throw err;
      const e = unreachableError(registry, url, err);
      // The server speaks TLS but we do not trust it: plain http cannot help, and its error would hide this one.
      if (isCertificateError(err)) throw new RegistryError(`${e.message} (give its CA with --registry-certificate, or use --skip-tls-verify-registry)`, { retryable: false, url: e.url ?? '' }, { cause: err });
      return { error: e };
    }
  }

  #credential(registry: string): Promise<Credential> {
    let p = this.#credentials.get(registry);
    if (p === undefined) {
      p = this.#opts.keychain.resolve(registry);
      this.#credentials.set(registry, p);
    }
    return p;
  }

  async #authorization(registry: string, endpoint: Endpoint, scopes: readonly string[]): Promise<string | undefined> {
    const challenge = endpoint.challenge;
    if (challenge === undefined) return undefined;
    const cred = await this.#credential(registry);
    switch (challenge.scheme) {
      case 'basic':
        if (cred.kind !== 'basic') return undefined;
        return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      case 'bearer': {
        if (cred.kind === 'registry-token') return `Bearer ${cred.token}`;
        const wanted = withChallengeScope(scopes, challenge);
        const token = await this.#token(registry, wanted, () =>
          fetchBearerToken({
            registry,
            challenge,
            scopes: wanted,
            credential: cred,
            userAgent: this.userAgent,
            signal: this.ctx.signal,
            agent: this.#agentFor,
          }),
        );
        return `Bearer ${token}`;
      }
      default:
        return undefined;
    }
  }

  /**
   * A token for the scopes, from the cache when one is still valid. Requests in flight share one fetch,
   * so parallel blob uploads ask the token service once.
   */
  async #token(registry: string, scopes: readonly string[], fetchToken: () => Promise<BearerToken>): Promise<string> {
    // A push token (`pull,push`) also serves pulls of the same repository.
    const keys = [tokenKey(registry, scopes), tokenKey(registry, scopes.map((s) => s.replace(/:pull$/, ':pull,push')))];
    for (const key of keys) {
      const cached = this.#tokens.get(key);
      if (cached === undefined) continue;
      try {
        const t = await cached;
        if (t.expiresAt > Date.now()) return t.value;
      } catch {
        // The fetch this request joined failed; it is forgotten below and fetched again.
      }
    }
    const key = tokenKey(registry, scopes);
    const p = fetchToken().then((t) => {
      this.#opts.mask.add(t.value);
      return t;
    });
    this.#tokens.set(key, p);
    p.catch(() => {
      if (this.#tokens.get(key) === p) this.#tokens.delete(key);
    });
    return (await p).value;
  }

  #forgetTokens(registry: string, scopes: readonly string[]): void {
    this.#tokens.delete(tokenKey(registry, scopes));
    this.#tokens.delete(tokenKey(registry, scopes.map((s) => s.replace(/:pull$/, ':pull,push'))));
  }
}

const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function isCertificateError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CERTIFICATE_ERRORS.has(code);
}

/** Releases a request body stream the server did not (fully) read, e.g. an open layer file. */
/** Socket-level error codes: a request body destroyed with one of these failed because the connection did. */
const NETWORK_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

/** Whether a request body's error is the connection's (as node-fetch passes it on), not the body's own. */
function isNetworkError(bodyError: Error, fetchError: unknown): boolean {
  if (bodyError instanceof KilnError) return false;
  const code = (bodyError as NodeJS.ErrnoException).code;
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  return fetchError instanceof Error && (fetchError as NodeJS.ErrnoException).code !== undefined && (fetchError as NodeJS.ErrnoException).code === code;
}

function discardBody(body: RequestInit['body']): void {
  if (body instanceof Readable && !body.destroyed) body.destroy();
}

/** Adds the scope a 401 asked for (e.g. `insufficient_scope`) to the ones we meant to request. */
function withChallengeScope(scopes: readonly string[], challenge: Challenge): readonly string[] {
  const extra = challenge.params['scope'];
  if (extra === undefined || extra === '') return scopes;
  const all = new Set(scopes);
  for (const s of extra.split(' ')) if (s !== '') all.add(s);
  return [...all];
}

function tokenKey(registry: string, scopes: readonly string[]): string {
  return `${registry} ${[...scopes].sort().join(' ')}`;
}
