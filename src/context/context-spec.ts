// What `--context` names, as kaniko reads it (pkg/buildcontext): a local directory (`dir://` or a plain
// path), a local tar archive or standard input (`tar://path`, `tar://stdin`), a git repository
// (`git://host/repo.git#ref#commit`) or a tar archive over HTTPS. Pure: fetching is fetch-context.ts.
import { ContextError } from '../errors.js';

export type ContextSpec =
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'tar'; readonly path: string }
  | { readonly kind: 'stdin' }
  | { readonly kind: 'git'; readonly repo: string; readonly ref: string | undefined; readonly commit: string | undefined }
  | { readonly kind: 'https'; readonly url: string };

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/** Cloud storage contexts need their vendors' SDKs and credentials chains, which kiln does not carry. */
const CLOUD = new Set(['gs', 's3']);

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
      return { kind: 'https', url: spec };
    default:
      if (CLOUD.has(scheme)) {
        throw new ContextError(
          `build context ${shown}: ${scheme}:// contexts are not supported by kiln; download the archive and pass tar://PATH (or tar://stdin)`,
        );
      }
      throw new ContextError(`build context ${shown}: unknown scheme ${scheme}:// (dir://, tar://, git:// and https:// are supported)`);
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
