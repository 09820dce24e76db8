// The uid and gid maps of a non-root RUN's user namespace, written by kiln (root) instead of bwrap:
// sandbox mode's road where kiln-isolate could not be linked statically (chroot-sandbox.ts; with a
// static helper a non-root RUN has no user namespace at all).
//
// Why: bwrap, started unprivileged as the RUN's user, maps only that uid and its primary gid into the
// namespace it makes, so the supplementary groups kiln gives the RUN (setpriv, before bwrap) grant
// access but read as the overflow gid inside: `id` prints `2000(extra)` as `65534(nogroup)`, where
// docker build (no user namespace: BuildKit's runc spec sets AdditionalGids) prints the real ids.
// With `--userns-block-fd` and `--info-fd`, bwrap tells kiln the namespace's first process and waits;
// kiln, holding CAP_SETUID/CAP_SETGID in the parent namespace, writes the maps, then lets it go on.
//
// What is mapped: the RUN's uid, each of its groups to itself, and the namespace's 0 to 4294967294
// ((uid_t)-2, an id no file is owned by): bwrap mounts a devpts under /dev, which the kernel refuses
// where 0 is unmapped (setuid bwrap maps 0 to the overflow id 65534 for it; that one owns files, such
// as what an image chowned to nobody, which would then read as root's). Nothing is mapped that the RUN
// does not already hold on the host, so the namespace's owner (the RUN's uid) gains no id through it
// that owns anything. What is not mapped (root's files, other users') reads as 65534 inside, as it
// did with bwrap's own maps (docs/status.md: issue 12). An id list holding (uid_t)-2 itself gets no
// maps of kiln's (bwrap's own, as before).
import type { Readable, Writable } from 'node:stream';
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { SandboxError } from '../errors.js';
import type { RunUser } from './sandbox.js';

/** What the namespace's 0 is outside: (uid_t)-2, the highest valid id, which owns no file. */
const ROOT_OUTSIDE = 4294967294;

export interface UserNamespaceMaps {
  /** /proc/PID/uid_map text: `inside outside count` lines. */
  readonly uidMap: string;
  readonly gidMap: string;
}

/**
 * The maps for a non-root RUN whose group list holds more than its primary gid; undefined when bwrap's
 * own maps already show every id (no supplementary group), for root (no user namespace), or when
 * (uid_t)-2 is one of the RUN's own ids (it could not stand for 0 then).
 */
export function userNamespaceMaps(user: RunUser): UserNamespaceMaps | undefined {
  const groups = [...new Set([user.gid, ...(user.groups ?? [user.gid])])];
  if (user.uid === 0 || groups.length === 1) return undefined;
  if (user.uid === ROOT_OUTSIDE || groups.includes(ROOT_OUTSIDE)) return undefined;
  const gidLines = groups.map((g) => `${g} ${g} 1`);
  // A group list holding gid 0 maps it to itself: the RUN holds it already.
  if (!groups.includes(0)) gidLines.push(`0 ${ROOT_OUTSIDE} 1`);
  return { uidMap: `${user.uid} ${user.uid} 1\n0 ${ROOT_OUTSIDE} 1\n`, gidMap: `${gidLines.join('\n')}\n` };
}

/** What bwrap writes on its --info-fd (JSON; only the pid of the namespace's first process is read). */
const bwrapInfoSchema = z.object({ 'child-pid': z.number().int().positive() });

/**
 * The parent side of the handshake: reads bwrap's info (until bwrap closes it), writes the maps of
 * the process it names, then writes the byte bwrap's --userns-block-fd waits for. bwrap ending before
 * it said anything (a bad argument, a failed exec) resolves quietly: its exit status tells the rest.
 */
export async function writeMapsWhenAsked(info: Readable, block: Writable, maps: UserNamespaceMaps): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of info) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') {
    block.end();
    return;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const got = bwrapInfoSchema.safeParse(parsed);
  if (!got.success) {
    block.end();
    throw new SandboxError(`bwrap's --info-fd output is not what kiln reads: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const pid = got.data['child-pid'];
  try {
    // uid_map and gid_map can each be written once; setgroups stays allowed (the writer is privileged).
    await writeFile(`/proc/${pid}/uid_map`, maps.uidMap);
    await writeFile(`/proc/${pid}/gid_map`, maps.gidMap);
  } catch (err) {
    block.end();
    throw new SandboxError(`cannot write the RUN's user namespace maps (/proc/${pid}): ${(err as Error).message}`, { cause: err });
  }
  block.end('x');
}
