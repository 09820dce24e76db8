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

/** `passwd`/`group` are the file contents, or undefined when the image has none. */
export function resolveUser(spec: string, passwd: string | undefined, group: string | undefined): RunUser {
  const [userPart = '', groupPart] = spec.split(':', 2);
  if (userPart === '') return { uid: 0, gid: 0 };
  const users = parsePasswd(passwd ?? '');
  let uid: number;
  let gid: number;
  if (NUMERIC.test(userPart)) {
    uid = Number(userPart);
    gid = users.find((u) => u.uid === uid)?.gid ?? 0;
  } else {
    const u = users.find((e) => e.name === userPart);
    if (u === undefined) throw new UsageError(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = u.uid;
    gid = u.gid;
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (NUMERIC.test(groupPart)) gid = Number(groupPart);
    else {
      const g = parseGroup(group ?? '').find((e) => e.name === groupPart);
      if (g === undefined) throw new UsageError(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }
  return { uid, gid };
}
