// Mount points for a RUN's own mounts (RUN --mount, heredoc scripts). A target that does not exist in
// the rootfs must be created for the mount to sit on, and must not end up in the layer: after the run,
// every stub kiln created that is still empty is removed and its parent's times put back, as BuildKit's
// executor.MountStubsCleaner does. Kiln creates them itself, as root, because a non-root USER's bwrap
// could not create them in a root-owned rootfs.
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
  readonly parentAtime: Date;
  readonly parentMtime: Date;
}

export interface MountStubs {
  /** Each request's target with symlinks resolved inside the rootfs: what bwrap is told to mount on. */
  readonly targets: readonly string[];
  /** Removes the stubs that are still empty, last created first, restoring their parents' times. */
  remove(): Promise<void>;
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
        const pst = await lstat(parentHost);
        if (last && !r.dir) {
          // O_EXCL with no symlink at the path (it was just found missing): never writes through a link.
          const fh = await open(host, 'wx', 0o644);
          await fh.close();
        } else {
          await mkdir(host, { mode: 0o755 });
        }
        created.push({ root, rel: parts.slice(0, i + 1).join('/'), host, parentHost, parentAtime: pst.atime, parentMtime: pst.mtime });
      }
    }
  } catch (err) {
    await removeStubs(created);
    throw err;
  }
  return stubs;
}

async function removeStubs(created: CreatedStub[]): Promise<void> {
  while (created.length > 0) {
    const s = created.pop() as CreatedStub;
    // The RUN may have swapped a parent for a symlink: touch the stub only if its path still leads to
    // it inside the rootfs without following anything, so nothing outside the rootfs is ever touched.
    try {
      if (resolveInRoot(s.root, s.rel) !== s.rel) continue;
      const st = await lstat(s.host).catch(() => undefined);
      if (st === undefined) continue;
      if (st.isDirectory()) {
        if ((await readdir(s.host)).length !== 0) continue;
        await rmdir(s.host);
      } else if (st.isFile() && st.size === 0) {
        await unlink(s.host);
      } else {
        continue;
      }
      await utimes(s.parentHost, s.parentAtime, s.parentMtime);
    } catch {
      // A stub the RUN replaced or filled is the RUN's own change and stays, as with BuildKit.
    }
  }
}
