// Resolves USER and --chown names against the stage's own account files.
import { readFileInRoot } from '../rootfs/in-root.js';
import type { RunUser } from '../sandbox/sandbox.js';
import { parsePasswd, resolveUser } from '../sandbox/user-database.js';

/** A RUN's uid, gid and groups for the stage's USER (no USER: root, with root's groups). */
export async function resolveUserInRoot(root: string, spec: string | undefined): Promise<RunUser> {
  const s = spec ?? '';
  // `uid:gid` needs no lookup (BuildKit's fast path), so a stage without /etc/passwd reads nothing.
  if (/^(\d+|root):(\d+|root)$/.test(s)) return resolveUser(s, undefined, undefined);
  return resolveUser(s, await readFileInRoot(root, '/etc/passwd'), await readFileInRoot(root, '/etc/group'));
}

/** The home directory docker gives a RUN as $HOME when the image sets none. */
export async function homeOf(root: string, uid: number): Promise<string> {
  const passwd = await readFileInRoot(root, '/etc/passwd');
  return parsePasswd(passwd ?? '').find((u) => u.uid === uid)?.home ?? '/';
}

/**
 * `--chown` as BuildKit reads it: `user`, `user:group`, `uid:gid`. A user with no group keeps gid = the
 * user's primary group when it is a name, and gid = uid when it is a number (or `root`). WORKDIR
 * creates its directories with the same owner (BuildKit's dispatchWorkdir: Mkdir with llb.WithUser).
 */
export async function resolveChown(root: string, spec: string): Promise<RunUser> {
  const [userPart = '', groupPart] = spec.split(':', 2);
  // llb.WithUser: `root` or a number is a uid (no lookup), and with no group the gid is that uid.
  const id = userPart === 'root' ? 0 : /^\d+$/.test(userPart) ? Number(userPart) : undefined;
  if (id !== undefined && (groupPart === undefined || groupPart === '')) {
    return { uid: id, gid: id };
  }
  return resolveUser(spec, await readFileInRoot(root, '/etc/passwd'), await readFileInRoot(root, '/etc/group'));
}
