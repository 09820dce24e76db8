// The clouds' registry logins without their helper binaries: what kaniko's image gets from
// docker-credential-ecr-login, -gcr and -acr-env, done in-process through the vendors' SDKs (src/cloud/,
// loaded on first use only). Two ways in, as in kaniko:
// - a config.json `credHelpers`/`credsStore` naming `ecr-login`, `gcr`/`gcloud` or `acr-env`
//   (keychain.ts asks `builtInLogin` before looking for a binary), and
// - a registry host of ECR, GCR/Artifact Registry or ACR that nothing else had credentials for
//   (`withCloudRegistries`): there a failure is no error, just anonymous access, as kaniko's keychains
//   fall through (public images on gcr.io and pkg.dev need no login).
import type { CloudCall, CloudRegistryLogin } from '../cloud/cloud-api.js';
import { loadAws, loadAzure, loadGcp } from '../cloud/load.js';
import { KilnError } from '../errors.js';
import type { SecretMask } from '../log/logger.js';
import type { RunContext } from '../log/run-context.js';
import { builtInHelper, helperForHost, type CloudHelper } from '../cloud/hosts.js';
import { ANONYMOUS, normalizeRegistryKey, type BuiltInHelpers, type Credential, type Keychain } from './keychain.js';

export interface CloudLoginOptions {
  /** The environment the SDKs take their settings from (AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS, AZURE_*). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly ctx: RunContext;
  readonly mask: SecretMask;
}

/** A login for `registry` by the built-in helper; a failure is a one-line KilnError('AUTH'). */
export async function builtInLogin(helper: CloudHelper, registry: string, o: CloudLoginOptions): Promise<Credential> {
  const host = normalizeRegistryKey(registry);
  const call: CloudCall = {
    env: o.env,
    signal: o.ctx.signal,
    fail: (detail, cause) => new KilnError('AUTH', `credential helper ${helper} (built in): ${detail}`, cause === undefined ? {} : { cause }),
    secret: (v) => o.mask.add(v),
  };
  let login: CloudRegistryLogin;
  switch (helper) {
    case 'ecr-login':
      login = await (await loadAws()).ecrLogin(host, call);
      break;
    case 'gcr':
      login = await (await loadGcp()).gcrLogin(host, call);
      break;
    case 'acr-env':
      login = await (await loadAzure()).acrLogin(host, call);
      break;
  }
  return login;
}

/** After `inner`, the cloud's own login for its registry hosts; anonymous when it cannot get one. */
export function withCloudRegistries(inner: Keychain, o: CloudLoginOptions): Keychain {
  const cached = new Map<string, Promise<Credential>>();
  return {
    async resolve(registry: string): Promise<Credential> {
      const cred = await inner.resolve(registry);
      if (cred.kind !== 'anonymous') return cred;
      const helper = helperForHost(normalizeRegistryKey(registry));
      if (helper === undefined) return cred;
      const key = normalizeRegistryKey(registry);
      let login = cached.get(key);
      if (login === undefined) {
        login = builtInLogin(helper, registry, o).catch((err: unknown) => {
          o.ctx.log.debug(`${(err as Error).message}; pulling ${key} anonymously`);
          return cred;
        });
        cached.set(key, login);
      }
      return login;
    },
  };
}

/** keychain.ts's `builtIn`: the cloud helpers' names; a host that is not the helper's cloud gets nothing from it (as the binaries say "credentials not found"). */
export function cloudHelpers(o: CloudLoginOptions): BuiltInHelpers {
  return (name, registry) => {
    const helper = builtInHelper(name);
    if (helper === undefined) return undefined;
    if (helperForHost(normalizeRegistryKey(registry)) !== helper) return Promise.resolve(ANONYMOUS);
    return builtInLogin(helper, registry, o);
  };
}
