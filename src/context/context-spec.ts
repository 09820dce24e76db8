// What `--context` names, as kaniko reads it (pkg/buildcontext): a local directory (`dir://` or a plain
// path), a local tar archive or standard input (`tar://path`, `tar://stdin`), a git repository
// (`git://host/repo.git#ref#commit`), a tar archive over HTTPS, or an archive in a cloud's object store:
// `s3://BUCKET/KEY`, `gs://BUCKET/PATH`, `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH` (kaniko
// reads an https URL on an Azure Blob host as a blob, never as a plain download). With no KEY/PATH the
// object is `context.tar.gz`, as kaniko's GetBucketAndItem has it. Pure: fetching is fetch-context.ts.
import { ContextError } from '../errors.js';

export type ContextSpec =
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'tar'; readonly path: string }
  | { readonly kind: 'stdin' }
  | { readonly kind: 'git'; readonly repo: string; readonly ref: string | undefined; readonly commit: string | undefined }
  | { readonly kind: 'https'; readonly url: string }
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string }
  | { readonly kind: 'gcs'; readonly bucket: string; readonly object: string }
  | { readonly kind: 'azure'; readonly url: string; readonly account: string; readonly container: string; readonly blob: string };

/** kaniko's constants.ContextTar: the object a bucket-only context names. */
export const CONTEXT_TAR = 'context.tar.gz';

/** Azure Blob Storage hosts, as kaniko's util.ValidAzureBlobStorageHost lists them (public and sovereign clouds). */
const AZURE_BLOB_HOST = /^([a-z0-9]{3,24})\.blob\.core\.(windows\.net|chinacloudapi\.cn|cloudapi\.de|usgovcloudapi\.net)$/i;

/** `bucket/item` split as kaniko's util.GetBucketAndItem does: no item is context.tar.gz. */
function bucketAndItem(rest: string): [string, string] {
  const slash = rest.indexOf('/');
  if (slash < 0 || slash === rest.length - 1) return [slash < 0 ? rest : rest.slice(0, slash), CONTEXT_TAR];
  return [rest.slice(0, slash), rest.slice(slash + 1)];
}

function azureBlob(spec: string): ContextSpec | undefined {
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    return undefined;
  }
  const m = AZURE_BLOB_HOST.exec(u.hostname);
  if (m === null) return undefined;
  const [container = '', ...path] = u.pathname.replace(/^\/+/, '').split('/');
  const blob = path.map((p) => decodeURIComponent(p)).join('/');
  if (container === '' || blob === '') {
    throw new ContextError(`build context ${JSON.stringify(spec)}: expected https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`);
  }
  return { kind: 'azure', url: `${u.origin}${u.pathname}`, account: (m[1] as string).toLowerCase(), container, blob };
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

export function parseContextSpec(spec: string): ContextSpec {
  const scheme = SCHEME.exec(spec)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'dir', path: spec };
  const rest = spec.slice(scheme.length + 3);
  const shown = JSON.stringify(spec);
  if (rest === '') throw new ContextError(`build context ${shown}: nothing after ${scheme}://`);
  switch (scheme) {
    case 'dir':
      return { kind: 'dir', path: rest };
    case 'tar':
      return rest === 'stdin' ? { kind: 'stdin' } : { kind: 'tar', path: rest };
    case 'git': {
      const [repo = '', ref, commit, ...extra] = rest.split('#');
      if (repo === '' || extra.length > 0 || ref === '' || commit === '') {
        throw new ContextError(`build context ${shown}: expected git://HOST/REPO[#REF[#COMMIT]]`);
      }
      if (commit !== undefined && !/^[0-9a-f]{7,64}$/i.test(commit)) {
        throw new ContextError(`build context ${shown}: ${JSON.stringify(commit)} is not a commit id`);
      }
      return { kind: 'git', repo, ref, commit };
    }
    case 'https':
      return azureBlob(spec) ?? { kind: 'https', url: spec };
    case 's3':
    case 'gs': {
      const [bucket, item] = bucketAndItem(rest);
      if (bucket === '') throw new ContextError(`build context ${shown}: expected ${scheme}://BUCKET/PATH`);
      return scheme === 's3' ? { kind: 's3', bucket, key: item } : { kind: 'gcs', bucket, object: item };
    }
    default:
      throw new ContextError(`build context ${shown}: unknown scheme ${scheme}:// (dir://, tar://, git://, https://, s3:// and gs:// are supported)`);
  }
}

export interface GitOptions {
  /** A branch or tag to clone instead of the default branch (kaniko's `--git branch=`). */
  readonly branch: string | undefined;
  readonly singleBranch: boolean;
  readonly recurseSubmodules: boolean;
  readonly insecureSkipTls: boolean;
}

/** kaniko's `--git key=value,...` (repeatable): branch, single-branch, recurse-submodules, insecure-skip-tls. */
export function parseGitOptions(values: readonly string[]): GitOptions {
  let branch: string | undefined;
  let singleBranch = false;
  let recurseSubmodules = false;
  let insecureSkipTls = false;
  const bool = (key: string, v: string): boolean => {
    if (/^(true|1)$/i.test(v)) return true;
    if (/^(false|0)$/i.test(v)) return false;
    throw new ContextError(`--git ${key}=${v}: expected true or false`);
  };
  for (const pair of values.flatMap((v) => v.split(',')).filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    switch (key) {
      case 'branch':
        if (value === '') throw new ContextError('--git branch=: empty branch name');
        branch = value;
        break;
      case 'single-branch':
        singleBranch = bool(key, value);
        break;
      case 'recurse-submodules':
        recurseSubmodules = bool(key, value);
        break;
      case 'insecure-skip-tls':
        insecureSkipTls = bool(key, value);
        break;
      default:
        throw new ContextError(`--git ${pair}: unknown option (branch, single-branch, recurse-submodules, insecure-skip-tls)`);
    }
  }
  return { branch, singleBranch, recurseSubmodules, insecureSkipTls };
}
