// A metadata index of a rootfs: what a snapshot compares to find what an instruction changed.
// Content is not hashed: with nanosecond mtime and ctime from the kernel, any write, chmod, chown,
// rename, link or setxattr (file capabilities) shows as a changed ctime, which no userspace tool can
// set back. Capabilities themselves are read only for the files a layer records (layer-tar.ts): one
// getxattr per entry made the walk four times slower.
//
// Two readers produce the same index: the native addon's `walkTree` (the whole walk in one call, its
// statx calls spread over a few threads, the records packed in one buffer: the fastest measured,
// docs/snapshots.md) and a JS fallback (readdirSync + bigint lstatSync) for when the addon is not
// built. Synchronous calls on purpose: a walk is hundreds of thousands of tiny syscalls, and a
// thread-pool hop per call makes it several times slower.
import { lstatSync, readdirSync, readlinkSync, realpathSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { SnapshotError } from '../errors.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { decodeWalkRecords, nativeFs, type NativeFs } from '../rootfs/native-fs.js';

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
  /**
   * Birth time (statx btime; 0 when unknown): a directory removed and re-created is told from the old
   * one by it even when the filesystem hands out the same inode number again (ext4 does).
   */
  readonly birthNs: bigint;
  /** A symlink's target, verbatim. */
  readonly linkTarget: string | undefined;
}

/** Root-relative path (`etc/passwd`; the root itself is not indexed) -> metadata. */
export type TreeIndex = ReadonlyMap<string, EntryMeta>;

export interface ScanOptions {
  /** `js` forces the fallback reader (measurements, tests); default: native when built. */
  readonly reader?: 'native' | 'js';
}

/** Walks `root` (not following symlinks) and indexes everything but ignored paths. */
export async function scanTree(root: string, ignore: IgnoreList, opts: ScanOptions = {}): Promise<TreeIndex> {
  const index = new Map<string, EntryMeta>();
  scanInto(index, realRoot(root), '', ignore, true, readerFor(opts));
  return index;
}

/**
 * Indexes part of a rootfs into `into`: each of `trees` with everything under it, each of `entries`
 * alone (a directory without its children). Missing or ignored paths are simply absent.
 */
export function scanScope(root: string, ignore: IgnoreList, trees: Iterable<string>, entries: Iterable<string>, into: Map<string, EntryMeta>, opts: ScanOptions = {}): void {
  const real = realRoot(root);
  const reader = readerFor(opts);
  for (const rel of entries) statOne(into, real, rel, ignore, reader);
  for (const rel of trees) {
    const meta = statOne(into, real, rel, ignore, reader);
    if (meta?.kind === 'dir') scanInto(into, real, rel, ignore, true, reader);
  }
}

export function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch (err) {
    throw new SnapshotError(`cannot read the rootfs ${root}: ${(err as Error).message}`, { cause: err });
  }
}

function readerFor(opts: ScanOptions): NativeFs | null {
  return opts.reader === 'js' ? null : nativeFs();
}

/** Indexes the children of `start` (and with `recursive`, everything below). */
function scanInto(index: Map<string, EntryMeta>, realRoot: string, start: string, ignore: IgnoreList, recursive: boolean, native: NativeFs | null): void {
  if (native !== null && recursive) {
    walkNative(index, realRoot, start, ignore, native);
    return;
  }
  const dirs: string[] = [start];
  for (let dir = dirs.pop(); dir !== undefined; dir = dirs.pop()) {
    const hostDir = dir === '' ? realRoot : join(realRoot, dir);
    const prefix = dir === '' ? '' : `${dir}/`;
    let names: string[];
    try {
      names = readdirSync(hostDir);
    } catch (err) {
      if (isVanished(err)) continue;
      throw new SnapshotError(`cannot read /${dir}: ${(err as Error).message}`, { cause: err });
    }
    for (const name of names) {
      const rel = prefix + name;
      if (ignore.isIgnored(rel)) continue;
      const meta = lstatMeta(join(hostDir, name), rel);
      if (meta === undefined) continue;
      index.set(rel, meta);
      if (recursive && meta.kind === 'dir') dirs.push(rel);
    }
  }
}

/**
 * The native walk: the addon leaves out the ignore list's entries itself (walked paths are already
 * normalized, and an ignored directory is never entered, so an exact match is the list's own test).
 */
function walkNative(index: Map<string, EntryMeta>, realRoot: string, start: string, ignore: IgnoreList, native: NativeFs): void {
  let buf: ArrayBuffer;
  try {
    buf = native.walkTree(realRoot, start, ignore.entries.map((e) => e.slice(1)));
  } catch (err) {
    throw new SnapshotError(`cannot read /${start}: ${(err as Error).message}`, { cause: err });
  }
  decodeWalkRecords(buf, (path, mode, uid, gid, nlink, size, mtimeNs, ctimeNs, dev, ino, rdev, birthNs, linkTarget) => {
    index.set(path, { kind: kindOfMode(mode), mode: mode & 0o7777, uid, gid, size, mtimeNs, ctimeNs, dev, ino, nlink, rdev, birthNs, linkTarget });
  });
}

function statOne(into: Map<string, EntryMeta>, realRoot: string, rel: string, ignore: IgnoreList, native: NativeFs | null): EntryMeta | undefined {
  if (rel === '' || ignore.isIgnored(rel)) return undefined;
  const meta = lstatMeta(join(realRoot, rel), rel);
  if (meta !== undefined) into.set(rel, meta);
  return meta;
}

/** One path's metadata, or undefined when it does not exist. */
function lstatMeta(host: string, rel: string): EntryMeta | undefined {
  let st: BigIntStats;
  try {
    st = lstatSync(host, { bigint: true });
  } catch (err) {
    if (isVanished(err)) return undefined;
    throw new SnapshotError(`cannot stat /${rel}: ${(err as Error).message}`, { cause: err });
  }
  const kind = kindOfMode(Number(st.mode));
  return {
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
    birthNs: st.birthtimeNs,
    linkTarget: kind === 'symlink' ? readlinkSync(host) : undefined,
  };
}

export function kindOfMode(mode: number): EntryKind {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    case 0o020000:
      return 'char';
    default:
      return 'block';
  }
}

function isVanished(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
