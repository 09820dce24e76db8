// A metadata index of a rootfs: what a snapshot compares to find what an instruction changed.
// Content is not hashed: with nanosecond mtime and ctime from the kernel, any write, chmod, chown,
// rename or link shows as a changed ctime, which no userspace tool can set back.
import { lstatSync, readdirSync, readlinkSync, realpathSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { SnapshotError } from '../errors.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block';

export interface EntryMeta {
  readonly kind: EntryKind;
  /** Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly nlink: number;
  /** Device number of a char or block device. */
  readonly rdev: bigint;
  /** A symlink's target, verbatim. */
  readonly linkTarget: string | undefined;
}

/** Root-relative path (`etc/passwd`; the root itself is not indexed) -> metadata. */
export type TreeIndex = ReadonlyMap<string, EntryMeta>;

/**
 * Walks `root` (not following symlinks) and indexes everything but ignored paths.
 * Synchronous calls inside on purpose: a walk is hundreds of thousands of tiny syscalls, and a
 * thread-pool hop per call would make it several times slower.
 */
export async function scanTree(root: string, ignore: IgnoreList): Promise<TreeIndex> {
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
  } catch (err) {
    throw new SnapshotError(`cannot read the rootfs ${root}: ${(err as Error).message}`, { cause: err });
  }
  const index = new Map<string, EntryMeta>();
  const dirs: string[] = [''];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    const hostDir = dir === '' ? realRoot : join(realRoot, dir);
    let names: string[];
    try {
      names = readdirSync(hostDir);
    } catch (err) {
      // Gone since its parent was read (a RUN's daemon cleaning up): it simply is not there.
      if (isVanished(err)) continue;
      throw new SnapshotError(`cannot read /${dir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      if (ignore.isIgnored(rel)) continue;
      const host = join(hostDir, name);
      let st: BigIntStats;
      try {
        st = lstatSync(host, { bigint: true });
      } catch (err) {
        if (isVanished(err)) continue;
        throw new SnapshotError(`cannot stat /${rel}: ${(err as Error).message}`, { cause: err });
      }
      const kind = kindOf(st);
      index.set(rel, {
        kind,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: Number(st.size),
        mtimeNs: st.mtimeNs,
        ctimeNs: st.ctimeNs,
        dev: st.dev,
        ino: st.ino,
        nlink: Number(st.nlink),
        rdev: st.rdev,
        linkTarget: kind === 'symlink' ? readlinkSync(host) : undefined,
      });
      if (kind === 'dir') dirs.push(rel);
    }
  }
  return index;
}

function kindOf(st: BigIntStats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char';
  return 'block';
}

function isVanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
