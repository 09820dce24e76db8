// Resolves a Dockerfile USER (`name`, `uid`, `name:group`, `uid:gid`) against the stage's own
// /etc/passwd and /etc/group, as docker does: a name must exist; a bare uid missing from passwd
// runs with gid 0; a user's primary group comes from passwd unless a group is given.
import { UsageError } from '../errors.js';
import type { RunUser } from './sandbox.js';

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f[0] && Number.isInteger(uid) && Number.isInteger(gid)) out.push({ name: f[0], uid, gid, home: f[5] ?? '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = Number(f[2]);
    if (f[0] && Number.isInteger(gid)) out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}

const NUMERIC = /^\d+$/;

/** llb's parseUID: `root` is 0 without a lookup, else a decimal id. */
function fastId(s: string): number | undefined {
  if (s === 'root') return 0;
  return NUMERIC.test(s) ? Number(s) : undefined;
}

/**
 * A RUN's identity from USER, as BuildKit's executor resolves it (executor/oci GetUser, then
 * moby/sys/user GetExecUser): `uid:gid` (either may be `root`) is taken as it is; otherwise the user is
 * looked up (by uid when numeric; a uid missing from passwd runs with gid 0), a `:group` part sets the
 * gid, and without one a user found in passwd gets the groups of /etc/group that list it. No USER is
 * uid 0 looked up the same way (0:0 when the image has no passwd). `root` is uid 0 even without a
 * passwd entry, as BuildKit's WORKDIR and COPY --chown read it. `passwd`/`group` are the file
 * contents, or undefined when the image has none.
 */
export function resolveUser(spec: string, passwd: string | undefined, group: string | undefined): RunUser {
  const isDefault = spec === '';
  const [userPart = '', groupPart] = (isDefault ? '0' : spec).split(':', 2);
  if (groupPart !== undefined) {
    const uid = fastId(userPart);
    const gid = fastId(groupPart);
    if (uid !== undefined && gid !== undefined) return { uid, gid, groups: [gid] };
  }
  if (userPart === '' && (groupPart === undefined || groupPart === '')) return { uid: 0, gid: 0, groups: [0] };
  const users = parsePasswd(passwd ?? '');
  let uid: number;
  let gid: number;
  let matched: string | undefined;
  const byName = NUMERIC.test(userPart) ? undefined : users.find((e) => e.name === userPart);
  const numeric = NUMERIC.test(userPart) ? Number(userPart) : userPart === 'root' && byName === undefined ? 0 : undefined;
  if (numeric !== undefined) {
    const u = users.find((e) => e.uid === numeric);
    uid = numeric;
    gid = u?.gid ?? 0;
    matched = u?.name;
  } else if (byName !== undefined) {
    uid = byName.uid;
    gid = byName.gid;
    matched = byName.name;
  } else if (userPart === '') {
    uid = 0;
    gid = 0;
  } else {
    throw new UsageError(`unable to find user ${userPart}: no matching entries in passwd file`);
  }
  const groups = parseGroup(group ?? '');
  if (groupPart !== undefined && groupPart !== '') {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((e) => e.name === groupPart);
      if (g !== undefined) gid = g.gid;
      else if (groupPart === 'root') gid = 0;
      else throw new UsageError(`unable to find group ${groupPart}: no matching entries in group file`);
    }
    return { uid, gid, groups: [gid] };
  }
  const list = [gid];
  if (matched !== undefined) {
    for (const g of groups) if (g.members.includes(matched) && !list.includes(g.gid)) list.push(g.gid);
  }
  return { uid, gid, groups: list };
}
