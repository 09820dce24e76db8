// Mount points for a RUN's own mounts (RUN --mount, heredoc scripts). A target that does not exist in
// the rootfs must be created for the mount to sit on, and must not end up in the layer: after the run,
// every stub kiln created that is still empty is removed and its parent's times put back, as BuildKit's
// executor.MountStubsCleaner does. Kiln creates them itself, as root, because a non-root USER's bwrap
// could not create them in a root-owned rootfs.
//
// Putting the times back is not enough for a directory that was there before (the container's /run,
// parent of /run/.containerenv, under a secret's /run/secrets/ID): its ctime moved, which no one can set
// back, and a snapshot that compares ctimes would record it. So removal also says which parents the RUN
// left alone (the same entries as kiln left them, mtime untouched until kiln removed its stub), and the
// snapshotter does not count kiln's own stamps on those (Snapshotter.markStubParents).
import { lstat, mkdir, open, readdir, rmdir, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxError } from '../errors.js';
import { resolveInRoot } from '../rootfs/root-path.js';

/** Paths bwrap mounts its own filesystems on: a target below them needs no stub in the rootfs. */
const SANDBOX_OWNED = ['dev', 'proc'];

export interface StubRequest {
  /** Absolute path inside the rootfs. */
  readonly target: string;
  /** Whether a directory (else a file) is mounted there. */
  readonly dir: boolean;
}

interface CreatedStub {
  readonly root: string;
  /** Root-relative path of the stub. */
  readonly rel: string;
  readonly host: string;
  readonly parentHost: string;
  /** The parent's times before the stub was made (ns). */
  readonly parentAtimeNs: bigint;
  readonly parentMtimeNs: bigint;
  /** The parent as kiln left it once the stub was made: its mtime (ns) and its entries' names. */
  readonly madeMtimeNs: bigint;
  readonly madeNames: string;
}

export interface MountStubs {
  /** Each request's target with symlinks resolved inside the rootfs: what bwrap is told to mount on. */
  readonly targets: readonly string[];
  /**
   * Removes the stubs that are still empty, last created first, restoring their parents' times.
   * Resolves with the root-relative parents (`''`: the root) that only kiln's stubs changed.
   */
  remove(): Promise<readonly string[]>;
}

export async function createMountStubs(root: string, requests: readonly StubRequest[]): Promise<MountStubs> {
  const created: CreatedStub[] = [];
  const targets: string[] = [];
  const stubs: MountStubs = { targets, remove: () => removeStubs(created) };
  try {
    for (const r of requests) {
      const rel = resolveInRoot(root, r.target.replace(/^\/+/, ''));
      if (rel === '') throw new SandboxError(`cannot mount over / (mount target ${r.target})`);
      targets.push(`/${rel}`);
      if (SANDBOX_OWNED.some((d) => rel === d || rel.startsWith(`${d}/`))) continue;
      const parts = rel.split('/');
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const host = join(root, ...parts.slice(0, i + 1));
        const st = await lstat(host).catch(() => undefined);
        if (st !== undefined) {
          const wantDir = !last || r.dir;
          if (wantDir && !st.isDirectory()) throw new SandboxError(`mount target ${r.target}: /${parts.slice(0, i + 1).join('/')} is not a directory`);
          if (!wantDir && st.isDirectory()) throw new SandboxError(`mount target ${r.target} is a directory, but a file is mounted there`);
          continue;
        }
        const parentHost = join(root, ...parts.slice(0, i));
        const pst = await lstat(parentHost, { bigint: true });
        if (last && !r.dir) {
          // O_EXCL with no symlink at the path (it was just found missing): never writes through a link.
          const fh = await open(host, 'wx', 0o644);
          await fh.close();
        } else {
          await mkdir(host, { mode: 0o755 });
        }
        const made = await parentState(parentHost);
        created.push({ root, rel: parts.slice(0, i + 1).join('/'), host, parentHost, parentAtimeNs: pst.atimeNs, parentMtimeNs: pst.mtimeNs, madeMtimeNs: made.mtimeNs, madeNames: made.names });
      }
    }
  } catch (err) {
    await removeStubs(created);
    throw err;
  }
  return stubs;
}

async function removeStubs(created: CreatedStub[]): Promise<readonly string[]> {
  const untouched = new Set<string>();
  const touched = new Set<string>();
  while (created.length > 0) {
    const s = created.pop() as CreatedStub;
    const parentRel = s.rel.includes('/') ? s.rel.slice(0, s.rel.lastIndexOf('/')) : '';
    // A stub left in place (the RUN filled or replaced it) is a change of its parent too.
    const alone = await removeStub(s).catch(() => false);
    if (alone && !touched.has(parentRel)) untouched.add(parentRel);
    else {
      touched.add(parentRel);
      untouched.delete(parentRel);
    }
  }
  return [...untouched];
}

/** Removes one stub if it is still kiln's empty one; true when the RUN left its parent alone. */
async function removeStub(s: CreatedStub): Promise<boolean> {
  // The RUN may have swapped a parent for a symlink: touch the stub only if its path still leads to
  // it inside the rootfs without following anything, so nothing outside the rootfs is ever touched.
  if (resolveInRoot(s.root, s.rel) !== s.rel) return false;
  const st = await lstat(s.host).catch(() => undefined);
  if (st === undefined) return false;
  // A stub the RUN replaced or filled is the RUN's own change and stays, as with BuildKit.
  if (st.isDirectory()) {
    if ((await readdir(s.host)).length !== 0) return false;
  } else if (!st.isFile() || st.size !== 0) {
    return false;
  }
  const now = await parentState(s.parentHost);
  const alone = now.mtimeNs === s.madeMtimeNs && now.names === s.madeNames;
  if (st.isDirectory()) await rmdir(s.host);
  else await unlink(s.host);
  // Left alone by the RUN: as before the stub. Else the RUN's own last change stays, and the removal
  // itself does not move the mtime past it.
  if (alone) await utimes(s.parentHost, nsToSeconds(s.parentAtimeNs), nsToSeconds(s.parentMtimeNs));
  else await utimes(s.parentHost, nsToSeconds(now.atimeNs), nsToSeconds(now.mtimeNs));
  return alone;
}

async function parentState(dir: string): Promise<{ mtimeNs: bigint; atimeNs: bigint; names: string }> {
  const st = await lstat(dir, { bigint: true });
  const names = (await readdir(dir)).sort().join('\0');
  return { mtimeNs: st.mtimeNs, atimeNs: st.atimeNs, names };
}

/** Node sets times from seconds as a double: microseconds survive, the rest of a nanosecond stamp may not. */
function nsToSeconds(ns: bigint): number {
  return Number(ns / 1000n) / 1e6;
}
