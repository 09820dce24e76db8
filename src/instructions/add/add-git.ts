// ADD <git URL>: a repository's tree at a ref, copied into the destination as a directory's contents,
// after the Dockerfile reference ("Adding files from a Git repository") and BuildKit's dispatchCopy,
// dfgitutil.ParseGitRef and git source:
// - sources: `https://` or `http://` URLs whose path ends in `.git`, `git://...`, and `ssh://...` or
//   `user@host:path` (refused: ADD uses no SSH agent); `#ref`, `#ref:subdir` or `#:subdir`, and
//   the query form `?ref=|tag=|branch=|subdir=|checksum=|commit=|keep-git-dir=|submodules=`;
// - the ref is a branch, a tag, a full ref name or a commit (a hex prefix is enough); the default is
//   the remote's HEAD;
// - `--keep-git-dir` (or `?keep-git-dir`) keeps `.git`, else the copy has none;
// - `--checksum=<hex>` (or `?checksum=`) must be a prefix of the commit checked out, or of the
//   annotated tag's object: "expected checksum to match ..." otherwise;
// - credentials for http(s) remotes come from the `--secret`s BuildKit reads: GIT_AUTH_HEADER.<host>,
//   GIT_AUTH_TOKEN.<host>, GIT_AUTH_HEADER, GIT_AUTH_TOKEN (a token is sent as Basic
//   `x-access-token:<token>`), else from the URL's user info; sent as a header scoped to the remote's
//   origin through git's environment-configured http.<url>.extraHeader (src/git/run-git.ts).
// The clone is shallow (`--depth 1`) where the server allows it; a dumb-HTTP server does not, and gets a
// full fetch. Checked-out files are 0644, or 0755 when git marks them executable, whatever the umask.
import { lstat, readdir, chmod, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DockerfileError } from '../../errors.js';
import { DEFAULT_WAIT_LIMITS } from '../../registry/bounded-agent.js';
import { basicAuthorization, gitEnv, gitWaitConfig, runGit, type GitConfigEntry } from '../../git/run-git.js';
import type { SecretMask } from '../../log/logger.js';
import type { RunContext } from '../../log/run-context.js';
import type { InstructionSite } from '../handler.js';
import { readSecretValue, type SecretSource } from '../run/secret-source.js';

export interface GitSource {
  readonly transport: 'https' | 'http' | 'git' | 'ssh';
  /** What git is given: the URL without fragment and query (user info kept for now, see `fetchGitSource`). */
  readonly remote: string;
  /** The remote as messages show it: no user info. */
  readonly shown: string;
  /** `host[:port]`, for GIT_AUTH_TOKEN.<host>. */
  readonly host: string;
  readonly ref: string | undefined;
  readonly subdir: string | undefined;
  readonly checksum: string | undefined;
  readonly keepGitDir: boolean | undefined;
  readonly submodules: boolean | undefined;
}

const SCHEME = /^([a-zA-Z0-9]+):\/\//;
const SCP_LIKE = /^([^@/\s]+)@([^:/\s]+):([^#]+)(?:#(.*))?$/s;

/** Whether ADD takes `src` as a git repository (BuildKit's isGitSource), malformed or not. */
export function isGitSource(src: string): boolean {
  try {
    return parseGitSource(src, { file: '', line: 0, source: '' }) !== undefined;
  } catch {
    return true;
  }
}

/**
 * The git repository `src` names, or undefined when it names none (a local path, or an http URL not
 * ending in `.git`). A git source that is malformed (a bad query) is a DockerfileError.
 */
export function parseGitSource(src: string, site: InstructionSite): GitSource | undefined {
  const scheme = SCHEME.exec(src)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    const m = SCP_LIKE.exec(src);
    if (m === null) return undefined;
    const remote = `${m[1] ?? ''}@${m[2] ?? ''}:${m[3] ?? ''}`;
    return { transport: 'ssh', remote, shown: remote, host: m[2] ?? '', ...fragmentOf(m[4] ?? ''), checksum: undefined, keepGitDir: undefined, submodules: undefined };
  }
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'git' && scheme !== 'ssh') return undefined;
  let u: URL;
  try {
    u = new URL(src);
  } catch {
    if (scheme === 'http' || scheme === 'https') return undefined;
    throw new DockerfileError(`invalid git URL ${src}`, site);
  }
  if ((scheme === 'http' || scheme === 'https') && !u.pathname.endsWith('.git')) return undefined;
  const bare = new URL(u.toString());
  bare.hash = '';
  bare.search = '';
  const shownUrl = new URL(bare.toString());
  shownUrl.username = '';
  shownUrl.password = '';
  const base = {
    transport: scheme,
    remote: bare.toString(),
    shown: shownUrl.toString(),
    host: u.host,
    ...fragmentOf(decode(u.hash.replace(/^#/, ''))),
    checksum: undefined,
    keepGitDir: undefined,
    submodules: undefined,
  } satisfies GitSource;
  return withQuery(base, u.searchParams, (why) => new DockerfileError(`git URL ${base.shown}: ${why}`, site));
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** `ref`, `ref:subdir` or `:subdir`. */
function fragmentOf(fragment: string): { ref: string | undefined; subdir: string | undefined } {
  const colon = fragment.indexOf(':');
  const ref = colon < 0 ? fragment : fragment.slice(0, colon);
  const subdir = colon < 0 ? '' : fragment.slice(colon + 1);
  return { ref: ref === '' ? undefined : ref, subdir: subdir === '' ? undefined : subdir };
}

/** dfgitutil's loadQuery: the query form of the ref, subdir, checksum and switches. */
function withQuery(g: GitSource, query: URLSearchParams, fail: (why: string) => DockerfileError): GitSource {
  let { ref, subdir, checksum, keepGitDir, submodules } = g;
  let tag: string | undefined;
  let branch: string | undefined;
  const bool = (k: string, v: string | undefined): boolean => {
    if (v === undefined) return true;
    const b = { '1': true, t: true, T: true, true: true, TRUE: true, True: true, '0': false, f: false, F: false, false: false, FALSE: false, False: false }[v];
    if (b === undefined) throw fail(`invalid ${k} value: ${JSON.stringify(v)}`);
    return b;
  };
  for (const k of new Set(query.keys())) {
    const values = query.getAll(k);
    if (values.length > 1) throw fail(`query ${JSON.stringify(k)} has multiple values`);
    const v = values[0] === '' ? undefined : values[0];
    if (v === undefined && k !== 'submodules' && k !== 'keep-git-dir') throw fail(`query ${JSON.stringify(k)} has no value`);
    switch (k) {
      case 'ref':
        if (ref !== undefined && ref !== v) throw fail(`ref conflicts: ${JSON.stringify(ref)} vs ${JSON.stringify(v)}`);
        ref = v;
        break;
      case 'tag':
        tag = v;
        break;
      case 'branch':
        branch = v;
        break;
      case 'subdir':
        if (subdir !== undefined && subdir !== v) throw fail(`subdir conflicts: ${JSON.stringify(subdir)} vs ${JSON.stringify(v)}`);
        subdir = v;
        break;
      case 'checksum':
      case 'commit':
        checksum = v;
        break;
      case 'keep-git-dir':
        keepGitDir = bool(k, v);
        break;
      case 'submodules':
        submodules = bool(k, v);
        break;
      default:
        throw fail(`unexpected query ${JSON.stringify(k)}`);
    }
  }
  if (tag !== undefined) {
    const full = tag.startsWith('refs/tags/') ? tag : `refs/tags/${tag}`;
    if (ref !== undefined && ref !== full) throw fail(`ref conflicts: ${JSON.stringify(ref)} vs ${JSON.stringify(full)}`);
    ref = full;
  }
  if (branch !== undefined) {
    if (tag !== undefined) throw fail('branch conflicts with tag');
    const full = branch.startsWith('refs/heads/') ? branch : `refs/heads/${branch}`;
    if (ref !== undefined && ref !== full) throw fail(`ref conflicts: ${JSON.stringify(ref)} vs ${JSON.stringify(full)}`);
    ref = full;
  }
  if (checksum !== undefined && ref === undefined) ref = checksum;
  return { ...g, ref, subdir, checksum, keepGitDir, submodules };
}

/** `--checksum` of a git source: a commit's hex name or a prefix of it. */
export function parseGitChecksum(spec: string, site: InstructionSite): string {
  if (!/^[0-9a-fA-F]{1,64}$/.test(spec)) throw new DockerfileError(`invalid checksum ${JSON.stringify(spec)}: expected hex commit hash`, site);
  return spec.toLowerCase();
}

export interface FetchGitOptions {
  /** An empty directory under the build's work dir; the clone goes to `<into>/repo`. */
  readonly into: string;
  readonly checksum: string | undefined;
  readonly keepGitDir: boolean;
  readonly secrets: ReadonlyMap<string, SecretSource>;
  readonly mask: SecretMask;
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  readonly ctx: RunContext;
  readonly site: InstructionSite;
}

/** Clones `g` at its ref into `o.into`; resolves with the host directory whose contents ADD copies. */
export async function fetchGitSource(g: GitSource, o: FetchGitOptions): Promise<string> {
  const fail = (detail: string, cause?: unknown): DockerfileError => new DockerfileError(`git clone ${g.shown}: ${detail}`, o.site, cause === undefined ? {} : { cause });
  if (g.transport === 'ssh') {
    throw new DockerfileError(`${g.shown}: ssh git sources are not supported in ADD (no SSH agent is used there); use an https:// URL`, o.site);
  }
  const { remote, config } = await credentials(g, o);
  const env = gitEnv([...config, ...gitWaitConfig(o.ctx.waits ?? DEFAULT_WAIT_LIMITS)]);
  const repo = join(o.into, 'repo');
  const git = (args: readonly string[]): Promise<string> => runGit(args, { hostEnv: o.hostEnv, env, signal: o.ctx.signal, mask: o.mask, error: fail });
  /** `fetch --depth 1`, or a full fetch where the server cannot do shallow ones (dumb HTTP). */
  const fetch = async (refspecs: readonly string[], shallow: boolean): Promise<void> => {
    const run = (depth: string[]): Promise<string> => git(['-C', repo, 'fetch', '--quiet', '--no-tags', ...depth, remote, ...refspecs]);
    if (!shallow) {
      await run([]);
      return;
    }
    await run(['--depth', '1']).catch(async (err: unknown) => {
      if (!(err instanceof DockerfileError) || !/shallow/i.test(err.detail)) throw err;
      await run([]);
    });
  };

  o.ctx.log.info(`Cloning ${g.shown}${g.ref !== undefined ? ` (${g.ref})` : ''}`);
  await git(['init', '--quiet', repo]);
  const refs = parseLsRemote(await git(['ls-remote', remote]));
  const ref = g.ref ?? 'HEAD';
  const named = [ref, `refs/heads/${ref}`, `refs/tags/${ref}`].find((r) => refs.has(r));
  let tagObject: string | undefined;
  if (named !== undefined) {
    const branch = named.startsWith('refs/heads/') ? named.slice('refs/heads/'.length) : undefined;
    const local = branch !== undefined ? `refs/remotes/origin/${branch}` : named.startsWith('refs/tags/') ? named : undefined;
    await fetch([local !== undefined ? `+${named}:${local}` : named], true);
    if (named.startsWith('refs/tags/')) tagObject = (await git(['-C', repo, 'rev-parse', 'FETCH_HEAD'])).trim();
    if (branch !== undefined && o.keepGitDir) await git(['-C', repo, 'checkout', '--quiet', '-B', branch, local ?? 'FETCH_HEAD']);
    else await git(['-C', repo, 'checkout', '--quiet', '--detach', 'FETCH_HEAD']);
  } else if (/^[0-9a-fA-F]{4,64}$/.test(ref)) {
    // A commit: fetched by name where the server allows it, else found among all branches and tags.
    let fetched = false;
    if (ref.length === 40 || ref.length === 64) fetched = await fetch([ref], true).then(() => true, () => false);
    if (!fetched) await fetch(['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'], false);
    const commit = await git(['-C', repo, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).catch(() => '');
    if (commit.trim() === '') throw fail(`commit ${JSON.stringify(ref)} not found`);
    await git(['-C', repo, 'checkout', '--quiet', '--detach', commit.trim()]);
  } else {
    throw fail(`ref ${JSON.stringify(ref)} not found (no branch, tag or commit of that name)`);
  }

  const commit = (await git(['-C', repo, 'rev-parse', 'HEAD'])).trim();
  const checksum = o.checksum ?? g.checksum;
  if (checksum !== undefined && !commit.startsWith(checksum) && !(tagObject?.startsWith(checksum) ?? false)) {
    throw new DockerfileError(`expected checksum to match ${checksum}, got ${tagObject !== undefined ? `${tagObject} or ` : ''}${commit}`, o.site);
  }
  if (g.submodules !== false && (await lstat(join(repo, '.gitmodules')).catch(() => undefined))?.isFile() === true) {
    const update = (depth: string[]): Promise<string> => git(['-C', repo, 'submodule', 'update', '--quiet', '--init', '--recursive', ...depth]);
    await update(['--depth', '1']).catch(async (err: unknown) => {
      if (!(err instanceof DockerfileError) || !/shallow/i.test(err.detail)) throw err;
      await update([]);
    });
  }
  o.ctx.log.debug({ commit, remote: g.shown }, 'checked out git source');
  if (o.keepGitDir) await git(['-C', repo, 'remote', 'add', 'origin', g.shown]);
  else await rm(join(repo, '.git'), { recursive: true, force: true });
  await normalizeModes(repo, true);
  return g.subdir === undefined ? repo : subdirectory(repo, g.subdir, fail);
}

/** `git ls-remote` output -> ref name -> object name. */
function parseLsRemote(out: string): Map<string, string> {
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [oid, name] = line.split('\t');
    if (oid !== undefined && name !== undefined && !name.endsWith('^{}')) refs.set(name, oid);
  }
  return refs;
}

/** The remote git is given (user info taken out) and the configuration carrying the credentials. */
async function credentials(g: GitSource, o: FetchGitOptions): Promise<{ remote: string; config: GitConfigEntry[] }> {
  if (g.transport !== 'https' && g.transport !== 'http') return { remote: g.remote, config: [] };
  const u = new URL(g.remote);
  const scope = `http.${u.protocol}//${u.host}/.extraHeader`;
  // BuildKit's order: a header before a token, a host's own before the general one.
  for (const [id, isHeader] of [[`GIT_AUTH_HEADER.${g.host}`, true], [`GIT_AUTH_TOKEN.${g.host}`, false], ['GIT_AUTH_HEADER', true], ['GIT_AUTH_TOKEN', false]] as const) {
    const source = o.secrets.get(id);
    if (source === undefined) continue;
    const raw = await readSecretValue(source).catch((err: unknown) => {
      throw new DockerfileError(`secret ${id}: ${(err as Error).message}`, o.site, { cause: err });
    });
    const value = raw?.toString('utf8').trim();
    if (value === undefined || value === '') continue;
    o.mask.add(value);
    const header = isHeader ? `Authorization: ${value}` : basicAuthorization('x-access-token', value, o.mask);
    return { remote: g.shown, config: [[scope, header]] };
  }
  if (u.username !== '' || u.password !== '') {
    const header = basicAuthorization(decode(u.username), decode(u.password), o.mask);
    return { remote: g.shown, config: [[scope, header]] };
  }
  return { remote: g.remote, config: [] };
}

/** The checkout's sub directory `sub`, every component a real directory inside the repository. */
async function subdirectory(repo: string, sub: string, fail: (detail: string) => DockerfileError): Promise<string> {
  const clean = posix.normalize(`/${sub}`).replace(/^\/+/, '').replace(/\/+$/, '');
  if (clean === '' || clean === '.') return repo;
  let at = repo;
  for (const part of clean.split('/')) {
    if (part === '..' || part === '.git') throw fail(`subdir ${JSON.stringify(sub)} not found`);
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (st === undefined) throw fail(`subdir ${JSON.stringify(sub)} not found`);
    if (!st.isDirectory()) throw fail(`subdir ${JSON.stringify(sub)} is not a directory`);
  }
  return at;
}

/** Git keeps only "executable or not": files 0644/0755 and directories 0755, whatever the umask was. */
async function normalizeModes(dir: string, top: boolean): Promise<void> {
  await chmod(dir, 0o755);
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    if (top && ent.name === '.git') continue;
    const p = join(dir, ent.name);
    if (ent.isDirectory()) await normalizeModes(p, false);
    else if (ent.isFile()) await chmod(p, ((await stat(p)).mode & 0o100) !== 0 ? 0o755 : 0o644);
  }
}
