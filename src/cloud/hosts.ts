// Which registry hosts belong to a cloud whose credential helper kiln has built in (registry/cloud-keychain.ts).
// Pure, in the main bundle: telling a host needs none of the SDKs (aws.ts, gcp.ts, azure.ts), which load only for a
// host that matches.

/** `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]` (and the ISO partitions), as amazon-ecr-credential-helper reads it. */
const ECR_HOST = /^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-z0-9][a-z0-9-_]*)\.(amazonaws\.com(\.cn)?|on\.aws|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$/i;

export interface EcrHost {
  readonly account: string;
  readonly region: string;
  readonly fips: boolean;
}

function withoutPort(host: string): string {
  return host.toLowerCase().replace(/:\d+$/, '');
}

export function parseEcrHost(host: string): EcrHost | undefined {
  const m = ECR_HOST.exec(withoutPort(host));
  if (m === null) return undefined;
  return { account: m[1] as string, fips: m[2] !== undefined, region: m[3] as string };
}

/** Container Registry (`gcr.io`, `*.gcr.io`) and Artifact Registry (`*-docker.pkg.dev`), as docker-credential-gcr serves. */
export function isGoogleRegistryHost(host: string): boolean {
  const h = withoutPort(host);
  return h === 'gcr.io' || h.endsWith('.gcr.io') || h.endsWith('-docker.pkg.dev');
}

/** `NAME.azurecr.io` and the sovereign clouds' suffixes, as docker-credential-acr-env serves. */
export function isAcrHost(host: string): boolean {
  return /^[a-z0-9-]+\.azurecr\.(io|cn|us)$|^[a-z0-9-]+\.azurecr\.microsoftazure\.de$/.test(withoutPort(host));
}

export type CloudHelper = 'ecr-login' | 'gcr' | 'acr-env';

/** The built-in helper a credHelpers/credsStore name means (`gcloud` is Cloud SDK's name for the same login). */
export function builtInHelper(name: string): CloudHelper | undefined {
  switch (name) {
    case 'ecr-login':
      return 'ecr-login';
    case 'gcr':
    case 'gcloud':
      return 'gcr';
    case 'acr-env':
      return 'acr-env';
    default:
      return undefined;
  }
}

/** The built-in helper for a registry host nothing is configured for. */
export function helperForHost(host: string): CloudHelper | undefined {
  if (parseEcrHost(host) !== undefined) return 'ecr-login';
  if (isGoogleRegistryHost(host)) return 'gcr';
  if (isAcrHost(host)) return 'acr-env';
  return undefined;
}
