// Brings a `--context` that is not a local directory onto this machine, as kaniko's pkg/buildcontext
// does, and applies `--context-sub-path`:
// - `tar://PATH` and `tar://stdin`: a tar archive (gzip, zstd, bzip2, xz or plain, told by its first
//   bytes; kaniko reads gzip only) unpacked with the rootfs unpacker, so no entry lands outside the
//   directory; `.wh.` names are ordinary files here.
// - `https://...`: the same, streamed from the response (kaniko's HTTPSTar), never written whole first.
// - `s3://BUCKET/KEY`, `gs://BUCKET/PATH`, `https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH`: the
//   same, streamed from the vendor's SDK (src/cloud/, loaded only here), with its credentials chain.
// - `git://HOST/REPO[#REF[#COMMIT]]`: cloned with git over `GIT_PULL_METHOD` (https, or http), with
//   kaniko's GIT_USERNAME / GIT_PASSWORD / GIT_TOKEN and `--git` options. Credentials travel in an
//   environment-configured header: never in argv, the clone's .git/config, or a message.
import { createReadStream } from 'node:fs';
import { mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { posix, relative, resolve, sep } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import fetch from 'node-fetch';
import { detectCompression, type Compression } from '../blob/archive-sniff.js';
import { ChildProcessStream } from '../blob/child-process-stream.js';
import type { CloudCall } from '../cloud/cloud-api.js';
import { loadAws, loadAzure, loadGcp } from '../cloud/load.js';
import { ContextError, KilnError } from '../errors.js';
import { basicAuthorization, gitEnv, gitWaitConfig, runGit, type GitConfigEntry } from '../git/run-git.js';
import type { SecretMask } from '../log/logger.js';
import { DEFAULT_ARCHIVE_LIMITS, type RunContext } from '../log/run-context.js';
import { boundedAgents, DEFAULT_WAIT_LIMITS } from '../registry/bounded-agent.js';
import { IgnoreList } from '../rootfs/ignore-list.js';
import { unpackLayer } from '../rootfs/unpack.js';
import type { ContextSpec, GitOptions } from './context-spec.js';

export interface GitAuth {
  readonly username: string;
  readonly password: string;
}

export interface FetchContextOptions {
  readonly cwd: string;
  /** Where a fetched context goes: created, and must be empty (kaniko's /kaniko/buildcontext). */
  readonly into: string;
  /** `--context-sub-path`: the directory inside the context that is the build's context. */
  readonly subPath: string | undefined;
  /** Standard input, for `tar://stdin`. */
  readonly stdin: (() => Readable) | undefined;
  /** The environment git runs with (PATH, HOME, proxies, GIT_SSL_CAINFO, ...). */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  readonly git: GitOptions;
  readonly gitAuth: GitAuth | undefined;
  /** kaniko's GIT_PULL_METHOD: how `git://` repositories are reached. */
  readonly gitPullMethod: 'https' | 'http';
  /** Owner of unpacked entries when kiln may not chown (not root); undefined keeps the archive's. */
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
  readonly ctx: RunContext;
  readonly mask: SecretMask;
}

/** The host directory that is the build context (not yet checked to be one: openContext does that). */
export async function fetchContext(spec: ContextSpec, o: FetchContextOptions): Promise<string> {
  let dir: string;
  switch (spec.kind) {
    case 'dir':
      dir = resolve(o.cwd, spec.path);
      break;
    case 'tar':
    case 'stdin': {
      const path = spec.kind === 'tar' ? resolve(o.cwd, spec.path) : undefined;
      const what = path ?? 'standard input';
      if (path !== undefined) {
        const st = await stat(path).catch((err: unknown) => {
          throw new ContextError(`build context tar://${path}: ${(err as Error).message}`, { cause: err });
        });
        if (!st.isFile()) throw new ContextError(`build context tar://${path}: not a file`);
      }
      o.ctx.log.info(`Unpacking the build context from ${what}`);
      if (path === undefined && o.stdin === undefined) throw new ContextError('build context tar://stdin: standard input is not available');
      await unpackArchive(path !== undefined ? createReadStream(path) : (o.stdin as () => Readable)(), what, o);
      dir = o.into;
      break;
    }
    case 'https': {
      const shown = redactUrl(spec.url);
      o.ctx.log.info(`Retrieving the build context from ${shown}`);
      const res = await fetch(spec.url, { signal: o.ctx.signal, redirect: 'follow', agent: boundedAgents(o.ctx.waits ?? DEFAULT_WAIT_LIMITS) }).catch((err: unknown) => {
        throw new ContextError(`build context ${shown}: ${(err as Error).message}`, { cause: err });
      });
      if (!res.ok || res.body === null) throw new ContextError(`build context ${shown}: HTTP ${res.status} ${res.statusText}`);
      await unpackArchive(res.body as Readable, shown, o);
      dir = o.into;
      break;
    }
    case 's3':
    case 'gcs':
    case 'azure': {
      const shown = cloudUrl(spec);
      o.ctx.log.info(`Retrieving the build context from ${shown}`);
      const { body } = await openCloudObject(spec, shown, cloudCall(o));
      await unpackArchive(body, shown, o);
      dir = o.into;
      break;
    }
    case 'git':
      await cloneGit(spec, o);
      dir = o.into;
      break;
  }
  return o.subPath === undefined || o.subPath === '' ? dir : subDirectory(dir, o.subPath);
}

type CloudSpec = Extract<ContextSpec, { kind: 's3' | 'gcs' | 'azure' }>;

/** How messages name a cloud context: its URL without credentials or query. */
function cloudUrl(spec: CloudSpec): string {
  switch (spec.kind) {
    case 's3':
      return `s3://${spec.bucket}/${spec.key}`;
    case 'gcs':
      return `gs://${spec.bucket}/${spec.object}`;
    case 'azure':
      return redactUrl(spec.url);
  }
}

function cloudCall(o: FetchContextOptions): CloudCall {
  return {
    env: o.hostEnv,
    signal: o.ctx.signal,
    fail: (detail, cause) => new ContextError(`build context ${detail}`, cause === undefined ? {} : { cause }),
    secret: (value) => o.mask.add(value),
  };
}

async function openCloudObject(spec: CloudSpec, shown: string, call: CloudCall): Promise<{ body: Readable }> {
  switch (spec.kind) {
    case 's3':
      return (await loadAws()).openS3Object({ bucket: spec.bucket, key: spec.key, shown }, call);
    case 'gcs':
      return (await loadGcp()).openGcsObject({ bucket: spec.bucket, object: spec.object, shown }, call);
    case 'azure':
      return (await loadAzure()).openAzureBlob({ url: spec.url, account: spec.account, container: spec.container, blob: spec.blob, shown }, call);
  }
}

/** Largest Dockerfile fetched from a URL: real ones are kilobytes. */
const MAX_DOCKERFILE = 16 << 20;

/** kaniko's `--dockerfile http(s)://...`: the Dockerfile fetched from a URL (its context stays `--context`). */
export async function fetchDockerfile(url: string, ctx: RunContext): Promise<string> {
  const shown = redactUrl(url);
  const res = await fetch(url, { signal: ctx.signal, redirect: 'follow', agent: boundedAgents(ctx.waits ?? DEFAULT_WAIT_LIMITS) }).catch((err: unknown) => {
    throw new ContextError(`Dockerfile ${shown}: ${(err as Error).message}`, { cause: err });
  });
  if (!res.ok || res.body === null) throw new ContextError(`Dockerfile ${shown}: HTTP ${res.status} ${res.statusText}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as Readable) {
    size += (chunk as Buffer).length;
    if (size > MAX_DOCKERFILE) throw new ContextError(`Dockerfile ${shown}: larger than ${MAX_DOCKERFILE >> 20} MiB`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `dir`/`sub`, refused when `sub` climbs out of `dir` by name or through a symlink. */
async function subDirectory(dir: string, sub: string): Promise<string> {
  const clean = posix.normalize(sub.replace(/^\/+/, ''));
  if (clean === '..' || clean.startsWith('../')) throw new ContextError(`--context-sub-path ${JSON.stringify(sub)} leaves the build context`);
  const joined = resolve(dir, clean);
  let real: string;
  let realRoot: string;
  try {
    [real, realRoot] = await Promise.all([realpath(joined), realpath(dir)]);
  } catch (err) {
    throw new ContextError(`--context-sub-path ${JSON.stringify(sub)}: ${(err as Error).message}`, { cause: err });
  }
  const rel = relative(realRoot, real);
  if (rel === '..' || rel.startsWith(`..${sep}`)) throw new ContextError(`--context-sub-path ${JSON.stringify(sub)} leaves the build context through a symlink`);
  return real;
}

async function emptyTarget(into: string): Promise<void> {
  await mkdir(into, { recursive: true, mode: 0o755 });
  if ((await readdir(into)).length > 0) throw new ContextError(`cannot fetch the build context into ${into}: the directory is not empty`);
}

async function unpackArchive(source: Readable, what: string, o: FetchContextOptions): Promise<void> {
  await emptyTarget(o.into);
  const { compression, stream } = await sniff(source);
  try {
    await unpackLayer(o.into, decompressed(stream, compression, what), {
      ignore: IgnoreList.empty(),
      ctx: o.ctx,
      what: `build context ${what}`,
      whiteouts: false,
      limits: o.ctx.archiveLimits ?? DEFAULT_ARCHIVE_LIMITS,
      ...(o.owner !== undefined ? { owner: o.owner } : {}),
    });
  } catch (err) {
    if (err instanceof ContextError) throw err;
    throw new ContextError(`${err instanceof KilnError ? err.message : `build context ${what}: ${(err as Error).message}`}`, { cause: err });
  }
}

/** The archive's compression from its first bytes, and a stream that still yields those bytes. */
async function sniff(source: Readable): Promise<{ compression: Compression; stream: Readable }> {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const held: Buffer[] = [];
  let have = 0;
  while (have < 6) {
    const next = await it.next();
    if (next.done === true) break;
    held.push(next.value);
    have += next.value.length;
  }
  const compression = detectCompression(Buffer.concat(held));
  async function* replay(): AsyncGenerator<Buffer> {
    yield* held;
    for (;;) {
      const next = await it.next();
      if (next.done === true) return;
      yield next.value;
    }
  }
  return { compression, stream: Readable.from(replay(), { objectMode: false }) };
}

function decompressed(stream: Readable, compression: Compression, what: string): Readable {
  let filter: PassThrough | ReturnType<typeof createGunzip> | ChildProcessStream;
  switch (compression) {
    case 'none':
      return stream;
    case 'gzip':
      filter = createGunzip({ chunkSize: 256 * 1024 });
      break;
    default: {
      const command = compression === 'xz' ? 'xz' : compression;
      filter = new ChildProcessStream({
        command,
        args: ['-dc'],
        error: (detail, cause) => new ContextError(`build context ${what}: ${command} -dc: ${detail}`, { cause }),
      });
    }
  }
  stream.on('error', (err) => filter.destroy(err));
  return stream.pipe(filter);
}

async function cloneGit(spec: Extract<ContextSpec, { kind: 'git' }>, o: FetchContextOptions): Promise<void> {
  await emptyTarget(o.into);
  const url = `${o.gitPullMethod}://${spec.repo}`;
  // kaniko: `--git branch=` wins over the #ref of the context; either may be a branch or a tag.
  const ref = o.git.branch ?? spec.ref;
  const short = ref?.replace(/^refs\/(heads|tags)\//, '');
  const byName = ref !== undefined && (short !== ref || !ref.startsWith('refs/'));
  const config: GitConfigEntry[] = [];
  if (o.gitAuth !== undefined) config.push(['http.extraHeader', basicAuthorization(o.gitAuth.username, o.gitAuth.password, o.mask)]);
  if (o.git.insecureSkipTls) config.push(['http.sslVerify', 'false']);
  config.push(...gitWaitConfig(o.ctx.waits ?? DEFAULT_WAIT_LIMITS));
  const env = gitEnv(config);
  const git = async (args: string[]): Promise<void> => {
    await runGit(args, {
      hostEnv: o.hostEnv,
      env,
      signal: o.ctx.signal,
      mask: o.mask,
      error: (detail, cause) => new ContextError(`git ${args.filter((a) => a !== '--quiet').join(' ')}: ${detail}`, cause === undefined ? {} : { cause }),
    });
  };
  o.ctx.log.info(`Cloning the build context from ${url}${ref !== undefined ? ` (${ref})` : ''}`);
  await git([
    'clone',
    '--quiet',
    ...(byName && short !== undefined ? ['--branch', short] : []),
    ...(o.git.singleBranch ? ['--single-branch'] : []),
    ...(o.git.recurseSubmodules ? ['--recurse-submodules'] : []),
    '--',
    url,
    o.into,
  ]);
  if (ref !== undefined && !byName) {
    // Any other ref (refs/pull/1/head, refs/merge-requests/2/head): fetched and checked out detached.
    await git(['-C', o.into, 'fetch', '--quiet', 'origin', ref]);
    await git(['-C', o.into, 'checkout', '--quiet', '--detach', 'FETCH_HEAD']);
  }
  if (spec.commit !== undefined) await git(['-C', o.into, 'checkout', '--quiet', '--detach', spec.commit]);
  if (o.git.recurseSubmodules && (ref !== undefined && !byName || spec.commit !== undefined)) {
    await git(['-C', o.into, 'submodule', 'update', '--quiet', '--init', '--recursive']);
  }
}

/** A URL as messages show it: no user info, no query (pre-signed URLs carry credentials there). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return `${u.origin}${u.pathname}${u.search !== '' ? '?...' : ''}`;
  } catch {
    return url.replace(/\?.*$/, '?...');
  }
}
