// Small file operations inside a rootfs that never leave it: every path goes through resolveInRoot,
// so a symlink planted in the image (`/etc -> /host/etc`) resolves inside the rootfs.
import { lstat, mkdir, chown, readFile } from 'node:fs/promises';
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

/**
 * `mkdir -p` of an absolute in-rootfs path. Directories it creates get mode 0755 and `owner`
 * (default root); existing ones are left as they are. Returns whether anything was created.
 */
export async function mkdirAllInRoot(root: string, absPath: string, owner?: Owner): Promise<boolean> {
  const parts = posix.normalize(absPath).split('/').filter((c) => c !== '' && c !== '.');
  let created = false;
  let rel = '';
  for (const part of parts) {
    rel = resolveInRoot(root, rel === '' ? part : `${rel}/${part}`);
    const host = join(root, rel);
    const st = await lstat(host).catch(() => undefined);
    if (st === undefined) {
      await mkdir(host, { mode: 0o755 });
      if (owner !== undefined && (owner.uid !== 0 || owner.gid !== 0)) await chown(host, owner.uid, owner.gid);
      created = true;
    } else if (!st.isDirectory()) {
      throw Object.assign(new Error(`/${rel} is not a directory`), { code: 'ENOTDIR' });
    }
  }
  return created;
}
