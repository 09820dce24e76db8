// Credentials for registries, read from a docker `config.json` (as `docker login` writes it). The
// caller says which directory (the CLI resolves $DOCKER_CONFIG or /kaniko/.docker); this module reads
// no environment. Every secret found is registered in the build's SecretMask before it is returned.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { KilnError } from '../errors.js';
import type { SecretMask } from '../log/logger.js';
import { parseJsonBytes } from '../oci/json.js';
import { DOCKER_HUB_REGISTRY } from '../oci/reference.js';

export type Credential =
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm. */
  | { readonly kind: 'identity-token'; readonly token: string }
  /** A bearer token sent to the registry as is (`registrytoken`). */
  | { readonly kind: 'registry-token'; readonly token: string };

export const ANONYMOUS: Credential = { kind: 'anonymous' };

export interface Keychain {
  /** Credentials for a registry host as written in references (`index.docker.io` for Docker Hub). */
  resolve(registry: string): Promise<Credential>;
}

export const anonymousKeychain: Keychain = { resolve: async () => ANONYMOUS };

const authEntrySchema = z.looseObject({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
  registrytoken: z.string().optional(),
});
type AuthEntry = z.infer<typeof authEntrySchema>;

export const dockerConfigSchema = z.looseObject({
  auths: z.record(z.string(), authEntrySchema).optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
  credsStore: z.string().optional(),
});
export type DockerConfig = z.infer<typeof dockerConfigSchema>;

const helperOutputSchema = z.looseObject({
  Username: z.string().optional(),
  Secret: z.string(),
});

const HUB_ALIASES = ['index.docker.io', 'docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];

/** `https://host/v1/` and `host` name the same registry; compare lower-cased hosts without scheme or path. */
export function normalizeRegistryKey(key: string): string {
  let s = key.trim().toLowerCase();
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  if (s === 'docker.io' || s === 'registry-1.docker.io') s = DOCKER_HUB_REGISTRY;
  return s;
}

/** The keys a config may use for a registry, most specific first. */
function candidateKeys(registry: string): string[] {
  const host = normalizeRegistryKey(registry);
  return host === DOCKER_HUB_REGISTRY ? HUB_ALIASES : [registry, host];
}

/** The helpers kiln has built in (cloud-keychain.ts): undefined for a name it does not, which then runs as a binary. */
export type BuiltInHelpers = (name: string, registry: string) => Promise<Credential> | undefined;

export interface KeychainOptions {
  readonly runHelper?: CredentialHelperRunner;
  readonly builtIn?: BuiltInHelpers;
}

export interface CredentialHelperRunner {
  /** Runs `docker-credential-<name> get` with `serverUrl` on stdin and returns its stdout. */
  (name: string, serverUrl: string): Promise<string>;
}

const runCredentialHelper: CredentialHelperRunner = (name, serverUrl) =>
  new Promise((resolve, reject) => {
    const child = execFile(`docker-credential-${name}`, ['get'], { timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout) => {
      // The helper's stderr/stdout may echo a secret: say only which helper failed and how.
      if (err) reject(new KilnError('AUTH', `credential helper docker-credential-${name} failed: ${helperFailure(err)}`));
      else resolve(stdout);
    });
    child.stdin?.end(serverUrl);
  });

function helperFailure(err: Error & { code?: unknown }): string {
  if (err.code === 'ENOENT') return 'not found in PATH';
  if (typeof err.code === 'number') return `exit status ${err.code}`;
  return typeof err.code === 'string' ? err.code : 'failed';
}

/**
 * Reads `<dir>/config.json`. A missing file means anonymous access everywhere; an unreadable or invalid
 * one is an error (silently pulling anonymously would hide the cause of a later 401).
 */
export async function loadDockerConfigKeychain(
  dir: string,
  mask: SecretMask,
  opts: KeychainOptions = {},
): Promise<Keychain> {
  const path = join(dir, 'config.json');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return anonymousKeychain;
    throw new KilnError('AUTH', `reading ${path}: ${(err as Error).message}`, { cause: err });
  }
  return dockerConfigKeychain(parseJsonBytes(dockerConfigSchema, bytes, path), mask, opts);
}

/** A keychain over an already parsed docker config. */
export function dockerConfigKeychain(
  config: DockerConfig,
  mask: SecretMask,
  opts: KeychainOptions = {},
): Keychain {
  const runHelper = opts.runHelper ?? runCredentialHelper;
  // Register every secret up front, so none can leak even via a path that never resolves it.
  for (const entry of Object.values(config.auths ?? {})) registerEntrySecrets(entry, mask);

  const auths = new Map<string, AuthEntry>();
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    // Exact keys win over normalised ones: set normalised first, then exact.
    const norm = normalizeRegistryKey(key);
    if (!auths.has(norm)) auths.set(norm, entry);
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) auths.set(key, entry);

  const helpers = new Map<string, string>();
  for (const [key, name] of Object.entries(config.credHelpers ?? {})) helpers.set(normalizeRegistryKey(key), name);

  return {
    async resolve(registry: string): Promise<Credential> {
      const host = normalizeRegistryKey(registry);
      const helper = helpers.get(host) ?? config.credsStore;
      if (helper !== undefined && helper !== '') {
        const serverUrl = host === DOCKER_HUB_REGISTRY ? 'https://index.docker.io/v1/' : registry;
        const fromHelper = (await opts.builtIn?.(helper, registry)) ?? (await fromCredentialHelper(runHelper, helper, serverUrl, mask));
        // A creds store that knows nothing of this registry falls through to `auths` (as docker does).
        if (fromHelper.kind !== 'anonymous' || helpers.has(host)) return fromHelper;
      }
      for (const key of candidateKeys(registry)) {
        const entry = auths.get(key) ?? auths.get(normalizeRegistryKey(key));
        if (entry !== undefined) return credentialFromEntry(entry, key);
      }
      return ANONYMOUS;
    },
  };
}

async function fromCredentialHelper(
  runHelper: CredentialHelperRunner,
  name: string,
  serverUrl: string,
  mask: SecretMask,
): Promise<Credential> {
  let stdout: string;
  try {
    stdout = await runHelper(name, serverUrl);
  } catch (err) {
    // Helpers exit non-zero with "credentials not found" for unknown registries: anonymous, as docker does.
    if (err instanceof KilnError && /exit status/.test(err.message)) return ANONYMOUS;
    throw err;
  }
  const out = parseJsonBytes(helperOutputSchema, Buffer.from(stdout), `docker-credential-${name} output`);
  mask.add(out.Secret);
  if (out.Username === '<token>') return { kind: 'identity-token', token: out.Secret };
  if (out.Username === undefined || out.Username === '') return ANONYMOUS;
  return { kind: 'basic', username: out.Username, password: out.Secret };
}

function registerEntrySecrets(entry: AuthEntry, mask: SecretMask): void {
  mask.add(entry.auth);
  mask.add(entry.password);
  mask.add(entry.identitytoken);
  mask.add(entry.registrytoken);
  if (entry.auth !== undefined) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) mask.add(decoded.slice(colon + 1));
  }
}

function credentialFromEntry(entry: AuthEntry, key: string): Credential {
  if (entry.registrytoken !== undefined && entry.registrytoken !== '') {
    return { kind: 'registry-token', token: entry.registrytoken };
  }
  if (entry.identitytoken !== undefined && entry.identitytoken !== '') {
    return { kind: 'identity-token', token: entry.identitytoken };
  }
  if (entry.auth !== undefined && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new KilnError('AUTH', `docker config: auth for ${key} is not base64 of user:password`);
    return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) {
    return { kind: 'basic', username: entry.username, password: entry.password };
  }
  return ANONYMOUS;
}

/** `CI_REGISTRY`, `CI_REGISTRY_USER` and `CI_REGISTRY_PASSWORD`, as GitLab CI sets them for a job. */
export interface GitLabCiCredentials {
  /** The registry as GitLab writes it: `registry.gitlab.com`, `gitlab.example.com:5050`, or a URL. */
  readonly registry: string;
  readonly username: string;
  readonly password: string;
}

/** The host name of a registry key or URL, without scheme, port or path. */
function hostNameOf(registry: string): string {
  const host = normalizeRegistryKey(registry);
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon >= 0 ? host.slice(0, colon) : host;
}

/**
 * kaniko's built-in GitLab helper (docker-credential-gitlabci): when the docker config has nothing for
 * a registry whose host name is CI_REGISTRY's, the job's CI_REGISTRY_USER/PASSWORD are used. It comes
 * after config.json, as in kaniko's multi-keychain, so an explicit `docker login` entry wins.
 */
export function withGitLabCi(inner: Keychain, ci: GitLabCiCredentials | undefined, mask: SecretMask): Keychain {
  if (ci === undefined) return inner;
  mask.add(ci.password);
  const host = hostNameOf(ci.registry);
  return {
    async resolve(registry: string): Promise<Credential> {
      const cred = await inner.resolve(registry);
      if (cred.kind !== 'anonymous' || hostNameOf(registry) !== host) return cred;
      return { kind: 'basic', username: ci.username, password: ci.password };
    },
  };
}
