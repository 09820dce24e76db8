// Folds a RUN's overlayfs upper dir into the stage rootfs (its lower dir), and records in a
// ChangeScope exactly which paths that touched: the snapshot then rescans those and nothing else.
//
// What the upper dir holds (Documentation/filesystems/overlayfs.rst):
// - a character device 0/0: a whiteout, the lower path is deleted (with everything under it);
// - a directory with `trusted.overlay.opaque=y`: it replaces the lower one, whose contents are hidden
//   ("x" on recent kernels only says whiteouts are inside: not opaque);
// - any other directory: merged with the lower one (its own metadata copied up), entries below it
//   are the changed ones;
// - anything else: the new state of that path (a new file, or a copy-up: written, chmod'ed, ...).
// The mount uses redirect_dir=off and metacopy=off, so no upper entry ever points back into a lower
// one for its data or its name (a renamed lower directory was copied by the RUN's `mv`, as on docker).
//
// Entries move with rename(2): same filesystem, no data copied. overlay's own `trusted.overlay.*`
// xattrs are stripped first so that nothing of the mount leaks into the rootfs.
import { lstatSync, readdirSync, renameSync, rmSync, type BigIntStats, lutimesSync, openSync, closeSync, fchownSync, fchmodSync, constants as fsConstants, readSync } from 'node:fs';
import { join } from 'node:path';
import { SnapshotError } from '../errors.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { nativeFs, type NativeFs } from '../rootfs/native-fs.js';
import type { ChangeScope } from './change-scope.js';

const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
const OPAQUE_XATTR = 'trusted.overlay.opaque';

interface DirTimes {
  readonly host: string;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
}

export async function mergeOverlayUpper(root: string, upper: string, ignore: IgnoreList, scope: ChangeScope): Promise<void> {
  const native = nativeFs();
  if (native === null) throw new SnapshotError('overlay snapshots need the native addon (native/kiln_native.c), which is not built');
  const dirTimes: DirTimes[] = [];
  mergeDir(native, root, upper, '', ignore, scope, dirTimes);
  // Directory times last, deepest first: moving entries into a directory moves its mtime.
  for (const d of dirTimes.reverse()) lutimesSync(d.host, nsToSeconds(d.atimeNs), nsToSeconds(d.mtimeNs));
  rmSync(upper, { recursive: true, force: true });
}

function mergeDir(native: NativeFs, root: string, upper: string, dir: string, ignore: IgnoreList, scope: ChangeScope, dirTimes: DirTimes[]): void {
  const upperDir = join(upper, dir);
  for (const name of readdirSync(upperDir)) {
    const rel = dir === '' ? name : `${dir}/${name}`;
    const u = join(upper, rel);
    const l = join(root, rel);
    const us = lstatSync(u, { bigint: true });
    if (us.isCharacterDevice() && us.rdev === 0n) {
      removeSparingIgnored(root, rel, ignore);
      scope.addTree(rel);
      continue;
    }
    stripOverlayXattrs(native, u, us);
    const ls = lstatOrNull(l);
    if (us.isDirectory()) {
      const opaque = native.lgetxattr(u, OPAQUE_XATTR)?.toString() === 'y';
      if (opaque) native.lremovexattr(u, OPAQUE_XATTR);
      if (ls?.isDirectory() === true && !opaque) {
        // A copy-up of a lower directory: its own metadata, then the changed entries below it.
        mergeDir(native, root, upper, rel, ignore, scope, dirTimes);
        applyDirMetadata(l, us, ls, dirTimes);
        scope.addEntry(rel);
        scope.rewritten.add(rel);
        continue;
      }
      if (ls !== null) removeSparingIgnored(root, rel, ignore);
      if (lstatOrNull(l) !== null) {
        // Ignored paths (mount points) kept the lower directory: fill it instead of replacing it.
        mergeDir(native, root, upper, rel, ignore, scope, dirTimes);
        applyDirMetadata(l, us, lstatOrNull(l) as BigIntStats, dirTimes);
        scope.addTree(rel);
        continue;
      }
      stripTree(native, u);
      renameSync(u, l);
      scope.addTree(rel);
      continue;
    }
    if (ls !== null && ls.isDirectory()) removeSparingIgnored(root, rel, ignore);
    else if (ls !== null && us.isFile() && ls.isFile() && sameRecordedMetadata(us, ls) && !sameContent(u, l, Number(us.size))) scope.forced.add(rel);
    renameSync(u, l);
    scope.addEntry(rel);
    scope.rewritten.add(rel);
  }
}

/** A copied-up file with the same metadata as the lower one is changed only if its bytes differ. */
function sameRecordedMetadata(a: BigIntStats, b: BigIntStats): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

function sameContent(a: string, b: string, size: number): boolean {
  const fa = openSync(a, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  const fb = openSync(b, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const ba = Buffer.allocUnsafe(1 << 16);
    const bb = Buffer.allocUnsafe(1 << 16);
    for (let off = 0; off < size; ) {
      const na = readSync(fa, ba, 0, ba.length, off);
      const nb = readSync(fb, bb, 0, bb.length, off);
      if (na !== nb || na === 0 || ba.compare(bb, 0, nb, 0, na) !== 0) return false;
      off += na;
    }
    return true;
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/** Gives the lower directory the upper one's owner and mode now, and its times at the end. */
function applyDirMetadata(host: string, us: BigIntStats, ls: BigIntStats, dirTimes: DirTimes[]): void {
  if (us.uid !== ls.uid || us.gid !== ls.gid || us.mode !== ls.mode) {
    const fd = openSync(host, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
    try {
      // chown first: it clears setgid, which chmod then sets.
      fchownSync(fd, Number(us.uid), Number(us.gid));
      fchmodSync(fd, Number(us.mode & 0o7777n));
    } finally {
      closeSync(fd);
    }
  }
  dirTimes.push({ host, atimeNs: us.atimeNs, mtimeNs: us.mtimeNs });
}

function stripOverlayXattrs(native: NativeFs, host: string, st: BigIntStats): void {
  if (st.isSymbolicLink()) return;
  for (const name of native.llistxattr(host)) {
    if (name.startsWith(OVERLAY_XATTR_PREFIX) && name !== OPAQUE_XATTR) native.lremovexattr(host, name);
  }
}

/** Strips overlay xattrs from a whole upper subtree about to be moved in as it is. */
function stripTree(native: NativeFs, host: string): void {
  for (const name of readdirSync(host)) {
    const child = join(host, name);
    const st = lstatSync(child, { bigint: true });
    stripOverlayXattrs(native, child, st);
    if (st.isDirectory()) {
      native.lremovexattr(child, OPAQUE_XATTR);
      stripTree(native, child);
    }
  }
}

/** `rm -rf`, sparing ignored paths under it (the sandbox's mount points). */
function removeSparingIgnored(root: string, rel: string, ignore: IgnoreList): void {
  if (ignore.isIgnored(rel)) return;
  const host = join(root, rel);
  if (!ignore.hasIgnoredUnder(rel)) {
    rmSync(host, { recursive: true, force: true });
    return;
  }
  const st = lstatOrNull(host);
  if (st === null || !st.isDirectory()) {
    rmSync(host, { recursive: true, force: true });
    return;
  }
  for (const child of readdirSync(host)) removeSparingIgnored(root, `${rel}/${child}`, ignore);
}

function lstatOrNull(host: string): BigIntStats | null {
  try {
    return lstatSync(host, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function nsToSeconds(ns: bigint): number {
  return Number(ns / 1000n) / 1e6;
}
