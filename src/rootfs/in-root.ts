// Small file operations inside a rootfs that never leave it: every path goes through resolveInRoot,
// so a symlink planted in the image (`/etc -> /host/etc`) resolves inside the rootfs.
import { chownSync, lstatSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { resolveInRoot } from './root-path.js';

/** Host path of an absolute in-rootfs path, all symlinks resolved inside the root. */
export function hostPathInRoot(root: string, absPath: string): string {
  return join(root, resolveInRoot(root, absPath.replace(/^\/+/, '')));
}

/** Reads a file of the rootfs, or undefined when it does not exist. */
export async function readFileInRoot(root: string, absPath: string): Promise<string | undefined> {
  try {
    return await readFile(hostPathInRoot(root, absPath), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
    throw err;
  }
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** What `mkdirAllInRootSync` did: whether it created anything, and where the directory resolved to. */
export interface DirInRoot {
  readonly created: boolean;
  /** Root-relative path of the directory (`''` for the root), every symlink on the way resolved. */
  readonly resolved: string;
}

/**
 * `mkdir -p` of an absolute in-rootfs path. Directories it creates get mode 0755 and `owner`
 * (default root); existing ones are left as they are. Returns whether anything was created.
 */
export async function mkdirAllInRoot(root: string, absPath: string, owner?: Owner): Promise<boolean> {
  return mkdirAllInRootSync(root, absPath, owner).created;
}

/**
 * `mkdirAllInRoot`, synchronous, also returning the resolved directory (a real directory, no symlink
 * among its components). Synchronous for the reason resolveInRoot is: a few lstat/mkdir calls cost less
 * than a thread-pool round trip each.
 */
export function mkdirAllInRootSync(root: string, absPath: string, owner?: Owner): DirInRoot {
  const parts = posix.normalize(absPath).split('/').filter((c) => c !== '' && c !== '.');
  let created = false;
  let rel = '';
  for (const part of parts) {
    rel = resolveInRoot(root, rel === '' ? part : `${rel}/${part}`);
    const host = join(root, rel);
    // Every earlier component was checked to be a directory, so ENOENT is the only "missing" here.
    const st = lstatSync(host, { throwIfNoEntry: false });
    if (st === undefined) {
      mkdirSync(host, { mode: 0o755 });
      if (owner !== undefined && (owner.uid !== 0 || owner.gid !== 0)) chownSync(host, owner.uid, owner.gid);
      created = true;
    } else if (!st.isDirectory()) {
      throw Object.assign(new Error(`/${rel} is not a directory`), { code: 'ENOTDIR' });
    }
  }
  return { created, resolved: rel };
}
