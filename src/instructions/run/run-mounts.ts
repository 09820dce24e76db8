// `RUN --mount=...` -> the mounts one RUN sees, after BuildKit's dispatchRunMounts
// (frontend/dockerfile/dockerfile2llb/convert_runmount.go) and the Dockerfile reference's "RUN --mount":
//   bind    a path of the context (default) or of `from=stage|image`, read-only unless `rw`, and then
//           writes go to a throwaway copy ("the written data is discarded");
//   cache   a directory kept under --mount-cache-dir between builds, keyed by `id` (default: the
//           target), created with `mode` (0755), `uid`/`gid` (0) and seeded from `from`/`source`;
//   tmpfs   an empty tmpfs;
//   secret  a `--secret` value as a file (`/run/secrets/<id>` unless `target`) and/or an env var (`env`),
//           mode 0400 uid 0 gid 0 by default; a missing secret fails only when `required`;
//   ssh     the `--ssh` agent of `id` (default `default`) as a socket at `target` (default
//           /run/buildkit/ssh_agent.N, N counting the RUN's ssh mounts), owned by `uid`/`gid` (0) with
//           `mode` (0600): a read-only relay to the agent (sandbox/ssh-agent-proxy.ts) that lives for this
//           RUN only; SSH_AUTH_SOCK names the first ssh mount unless the RUN's env sets it. An agent not
//           given with --ssh fails only when `required`.
// Every mount source lives outside the rootfs, so nothing a RUN writes into a mount reaches a layer;
// mount targets that did not exist are removed again by the sandbox.
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, posix } from 'node:path';
import type { Mount } from '../../dockerfile/instructions.js';
import { DockerfileError } from '../../errors.js';
import { cleanEntryName, resolveInRoot } from '../../rootfs/root-path.js';
import type { SandboxMount } from '../../sandbox/sandbox.js';
import { openAgentProxy } from '../../sandbox/ssh-agent-proxy.js';
import { holdCacheDir } from './cache-lock.js';
import { copyIntoRootfs } from '../copy/copy-files.js';
import { expand } from '../expand-in-stage.js';
import type { InstructionEnv } from '../handler.js';
import type { SecretSource } from './secret-source.js';
import { DEFAULT_SSH_ID } from './ssh-source.js';
import type { StageState } from '../stage-state.js';

/** What RUN --mount draws on, for the whole build. */

export interface PreparedMounts {
  readonly mounts: readonly SandboxMount[];
  /** Secrets exposed as environment variables (`env=`): for the RUN's process only, never the config. */
  readonly env: ReadonlyMap<string, string>;
  /** The first ssh mount's target: the RUN's SSH_AUTH_SOCK unless its ENV or ARGs set one. */
  readonly sshAuthSock: string | undefined;
  /** Deletes the per-RUN sources (secret files, copies) and releases cache locks. */
  release(): Promise<void>;
}

const SECRET_DIR = '/run/secrets';
/** Where BuildKit puts ssh mounts without a target. */
const SSH_DIR = '/run/buildkit';

export async function prepareRunMounts(mounts: readonly Mount[], state: StageState, e: InstructionEnv): Promise<PreparedMounts> {
  const support = e.runMounts;
  const out: SandboxMount[] = [];
  const env = new Map<string, string>();
  const cleanups: Array<() => Promise<void>> = [];
  let scratch: string | undefined;
  const scratchDir = async (): Promise<string> => {
    if (scratch === undefined) {
      await mkdir(support.scratchDir, { recursive: true, mode: 0o755 });
      const dir = await mkdtemp(join(support.scratchDir, 'run-'));
      // Traversable, not listable: a non-root RUN's bwrap must reach the sources it binds.
      await chmod(dir, 0o711);
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      scratch = dir;
    }
    return scratch;
  };
  let n = 0;
  let sshMounts = 0;
  let sshAuthSock: string | undefined;
  const freshDir = async (name: string): Promise<string> => {
    const dir = join(await scratchDir(), `${name}-${n++}`);
    await mkdir(dir, { mode: 0o755 });
    return dir;
  };
  const release = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  const fail = (detail: string, cause?: unknown): never => {
    throw new DockerfileError(detail, e.site, cause === undefined ? undefined : { cause });
  };
  const targetOf = (raw: string): string => {
    const t = expand(raw, state, e);
    // BuildKit: a relative target is relative to the WORKDIR.
    const abs = posix.resolve(state.config.WorkingDir || '/', t);
    if (abs === '/') fail(`invalid mount target "${t}"`);
    return abs;
  };

  try {
    for (const m of mounts) {
      switch (m.type) {
        case 'ssh': {
          // BuildKit (llb.ExecOp): targets default by position and SSH_AUTH_SOCK names the first,
          // whether or not an optional agent is there.
          const index = sshMounts++;
          const target = targetOf(m.target ?? `${SSH_DIR}/ssh_agent.${index}`);
          sshAuthSock ??= target;
          const id = m.id === undefined ? DEFAULT_SSH_ID : expand(m.id, state, e);
          const agent = support.sshAgents.get(id);
          if (agent === undefined) {
            if (m.required) fail(`no SSH key ${JSON.stringify(id)} forwarded from the client: pass one with --ssh ${id}=/path/to/agent.sock or key files${id === DEFAULT_SSH_ID ? ' (--ssh default: $SSH_AUTH_SOCK)' : ''}`);
            e.ctx.log.debug({ id }, 'ssh agent not provided; mount skipped');
            break;
          }
          const proxy = await openAgentProxy(
            { path: join(await scratchDir(), `ssh-${n++}.sock`), agent, uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o600 },
            e.ctx,
          );
          cleanups.push(() => proxy.close());
          out.push({ kind: 'bind', source: proxy.path, target, readOnly: true });
          break;
        }
        case 'tmpfs':
          out.push({ kind: 'tmpfs', target: targetOf(m.target), ...(m.size === undefined ? {} : { size: m.size }) });
          break;
        case 'bind': {
          const target = targetOf(m.target);
          const src = await bindSource(m.from, m.source === undefined ? '/' : expand(m.source, state, e), e, fail);
          if (m.readOnly && !src.needsCopy) {
            out.push({ kind: 'bind', source: src.host, target, readOnly: true });
            break;
          }
          // rw (writes are discarded) or a context path holding .dockerignore'd files: a private copy.
          const copy = await copyForMount(src, await freshDir('bind'), e);
          out.push({ kind: 'bind', source: copy, target, readOnly: m.readOnly });
          break;
        }
        case 'cache': {
          const target = targetOf(m.target);
          const id = m.id === undefined ? target : expand(m.id, state, e);
          const dir = join(support.cacheDir, cacheDirName(id));
          await mkdir(support.cacheDir, { recursive: true, mode: 0o755 });
          const hold = await holdCacheDir(dir, m.sharing, () => freshDir('cache'), e.ctx.signal);
          cleanups.push(() => hold.release());
          if (await createCacheDir(hold.dir, m)) {
            e.ctx.log.debug({ id, dir: hold.dir }, 'created cache mount directory');
            if (m.from !== undefined) {
              const seed = await bindSource(m.from, m.source === undefined ? '/' : expand(m.source, state, e), e, fail);
              await copyContents(seed, hold.dir, e);
            }
          }
          out.push({ kind: 'bind', source: hold.dir, target, readOnly: m.readOnly });
          break;
        }
        case 'secret': {
          const id = m.id !== undefined ? expand(m.id, state, e) : m.target !== undefined ? posix.basename(expand(m.target, state, e)) : '';
          const source = support.secrets.get(id);
          const value = source === undefined ? undefined : await readSecret(source, id, fail);
          if (value === undefined) {
            if (m.required) fail(`secret ${id} not found: pass it with --secret id=${id},src=PATH or --secret id=${id},env=VAR`);
            e.ctx.log.debug({ id }, 'secret not provided; mount skipped');
            break;
          }
          support.mask.add(value.toString('utf8'));
          support.mask.add(value.toString('utf8').trim());
          if (m.env !== undefined) env.set(expand(m.env, state, e), value.toString('utf8'));
          if (m.env === undefined || m.target !== undefined) {
            const target = targetOf(m.target ?? `${SECRET_DIR}/${id}`);
            const file = join(await scratchDir(), `secret-${n++}`);
            await writeFile(file, value, { mode: 0o400, flag: 'wx' });
            await chown(file, m.uid ?? 0, m.gid ?? 0);
            await chmod(file, m.mode ?? 0o400);
            out.push({ kind: 'bind', source: file, target, readOnly: true });
          }
          break;
        }
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { mounts: out, env, sshAuthSock, release };
}

/** A cache id as one safe file name: `/` and a leading `.` are escaped, so no id names another path. */
export function cacheDirName(id: string): string {
  return encodeURIComponent(id).replace(/^\./, '%2E');
}

async function createCacheDir(dir: string, m: Extract<Mount, { type: 'cache' }>): Promise<boolean> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  await chown(dir, m.uid ?? 0, m.gid ?? 0);
  await chmod(dir, m.mode ?? 0o755);
  return true;
}

interface BindSource {
  /** Host directory the source path is inside (the context, or a stage or image rootfs). */
  readonly root: string;
  /** Root-relative path (`''` for the root). */
  readonly rel: string;
  readonly host: string;
  readonly stats: Stats;
  readonly fromContext: boolean;
  /** A context path with .dockerignore'd files below it: bind a filtered copy, never the directory. */
  readonly needsCopy: boolean;
}

async function bindSource(from: string | undefined, source: string, e: InstructionEnv, fail: (d: string, c?: unknown) => never): Promise<BindSource> {
  const cleaned = cleanEntryName(source);
  if (cleaned === null) return fail(`mount source ${JSON.stringify(source)} is outside the ${from === undefined ? 'build context' : `--from ${from}`}`);
  if (from === undefined) {
    let rel = cleaned;
    if (rel !== '') {
      const found = await e.context.resolveSource(rel, e.site);
      if (found.length !== 1) fail(`mount source ${JSON.stringify(source)} must name one path of the build context`);
      rel = found[0] as string;
    }
    const host = rel === '' ? e.context.dir : join(e.context.dir, rel);
    const stats = await lstat(host);
    // resolveSource hands back a symlink that leaves the context as the link itself: binding it would
    // let the kernel follow it out of the context.
    if (stats.isSymbolicLink()) fail(`mount source ${JSON.stringify(source)} is a symlink out of the build context`);
    const needsCopy = stats.isDirectory() && (await hasExcluded(host, rel, e));
    return { root: e.context.dir, rel, host, stats, fromContext: true, needsCopy };
  }
  const root = await e.fromRootfs(from);
  const rel = resolveInRoot(root, cleaned);
  const host = rel === '' ? root : join(root, rel);
  const stats = await lstat(host).catch((err: unknown) => fail(`mount source ${JSON.stringify(source)} not found in ${from}`, err));
  return { root, rel, host, stats, fromContext: false, needsCopy: false };
}

/** Whether .dockerignore leaves out anything under a context directory. */
async function hasExcluded(host: string, rel: string, e: InstructionEnv): Promise<boolean> {
  for (const d of await readdir(host, { withFileTypes: true })) {
    const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
    if (e.context.isExcluded(childRel, d.isDirectory())) return true;
    if (d.isDirectory() && !d.isSymbolicLink() && (await hasExcluded(join(host, d.name), childRel, e))) return true;
  }
  return false;
}

/** Copies a bind source into `dir`; returns what to mount (the dir, or the copied file in it). */
async function copyForMount(src: BindSource, dir: string, e: InstructionEnv): Promise<string> {
  await copyContents(src, dir, e);
  if (!src.stats.isDirectory()) return join(dir, posix.basename(src.rel));
  await chown(dir, src.stats.uid, src.stats.gid);
  await chmod(dir, src.stats.mode & 0o7777);
  return dir;
}

/** The source's contents (a directory's entries, or the file itself) into `dir`, owners and modes kept. */
async function copyContents(src: BindSource, dir: string, e: InstructionEnv): Promise<void> {
  await copyIntoRootfs({
    sourceRoot: src.root,
    sources: [src.rel],
    multiple: false,
    destRoot: dir,
    dest: '/',
    owner: 'preserve',
    chmod: undefined,
    excluded: src.fromContext ? (rel, isDir) => e.context.isExcluded(rel, isDir) : () => false,
    site: e.site,
  });
}

async function readSecret(source: SecretSource, id: string, fail: (d: string, c?: unknown) => never): Promise<Buffer | undefined> {
  switch (source.kind) {
    case 'env':
      return source.value === undefined ? undefined : Buffer.from(source.value, 'utf8');
    case 'file':
      // The path is the user's own --secret flag, not the Dockerfile's: read it as given.
      return readFile(source.path).catch((err: unknown) => fail(`secret ${id}: cannot read ${source.path}: ${(err as Error).message}`, err));
  }
}
