// Resolves USER and --chown names against the stage's own account files.
import { readFileInRoot } from '../rootfs/in-root.js';
import type { RunUser } from '../sandbox/sandbox.js';
import { parsePasswd, resolveUser } from '../sandbox/user-database.js';

export async function resolveUserInRoot(root: string, spec: string | undefined): Promise<RunUser> {
  if (spec === undefined || spec === '') return { uid: 0, gid: 0 };
  return resolveUser(spec, await readFileInRoot(root, '/etc/passwd'), await readFileInRoot(root, '/etc/group'));
}

/** The home directory docker gives a RUN as $HOME when the image sets none. */
export async function homeOf(root: string, uid: number): Promise<string> {
  const passwd = await readFileInRoot(root, '/etc/passwd');
  return parsePasswd(passwd ?? '').find((u) => u.uid === uid)?.home ?? '/';
}

/**
 * `--chown` as BuildKit reads it: `user`, `user:group`, `uid:gid`. A user with no group keeps gid = the
 * user's primary group when it is a name, and gid = uid when it is a number.
 */
export async function resolveChown(root: string, spec: string): Promise<RunUser> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  if (/^\d+$/.test(userPart) && (groupPart === undefined || groupPart === '')) {
    return { uid: Number(userPart), gid: Number(userPart) };
  }
  return resolveUser(spec, await readFileInRoot(root, '/etc/passwd'), await readFileInRoot(root, '/etc/group'));
}
