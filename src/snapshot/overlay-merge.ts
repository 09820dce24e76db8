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
// The mount uses metacopy=off, so no upper entry points back into a lower one for its data. It uses
// redirect_dir=on, so that rename(2) of a lower directory works as on a plain filesystem (with it off
// the kernel answers EXDEV and only programs that fall back to copying, as mv does, get by): such a
// directory is upper-only with `trusted.overlay.redirect` naming its lower one, which the merge moves
// to the new name before applying the upper entries below it.
//
// Entries move with rename(2): same filesystem, no data copied. overlay's own `trusted.overlay.*`
// xattrs are stripped first so that nothing of the mount leaks into the rootfs.
//
// Hardlinks: the mount has index=on, so a RUN sees a lower file's names as one inode after a copy-up
// (writing one name shows in the others, as on a plain filesystem). overlayfs then keeps that upper
// inode in `work/index/` too. Renaming such an upper file over its lower name would give that name a
// new inode and leave the lower file's other names (not in the upper dir) with the old data, so an
// indexed inode is written into the lower inode in place instead (data, owner, mode, capability,
// times), and its other upper names are linked to it. One whose lower name is gone (`mv`, or `ln`
// then `rm`) is found among the multiply-linked lower files the upper dir deletes, by the inode
// number its index name (the lower file handle) holds; the rootfs then matches what the walk
// strategy sees.
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  linkSync,
  mkdirSync,
  lstatSync,
  lutimesSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
  type BigIntStats,
} from 'node:fs';
import { join } from 'node:path';
import { SnapshotError } from '../errors.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { nativeFs, type NativeFs } from '../rootfs/native-fs.js';
import type { ChangeScope } from './change-scope.js';

const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const CAPABILITY_XATTR = 'security.capability';
const REDIRECT_XATTR = 'trusted.overlay.redirect';

interface DirTimes {
  readonly host: string;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
}

/** Copied-up multiply-linked lower files (overlayfs's index), by upper inode number. */
interface IndexedInode {
  /** The lower inode's number, as its file handle (the index entry's name) holds it, when readable. */
  readonly lowerIno: bigint | undefined;
  /** Upper paths of this inode. */
  readonly paths: string[];
  /** Host path of the lower inode the upper one is written into; set once found. */
  target?: string;
  /** Whether the data has been written into the target. */
  written?: boolean;
}

interface Merge {
  readonly native: NativeFs;
  readonly root: string;
  readonly upper: string;
  readonly ignore: IgnoreList;
  readonly scope: ChangeScope;
  readonly dirTimes: DirTimes[];
  readonly indexed: Map<bigint, IndexedInode>;
  /** Extra links made to keep lower inodes reachable until the merge is done. */
  readonly keep: string[];
  /** Renamed lower directories (redirect_dir): upper path -> where the lower directory waits. */
  readonly redirects: Map<string, string>;
}

export async function mergeOverlayUpper(root: string, upper: string, ignore: IgnoreList, scope: ChangeScope): Promise<void> {
  const native = nativeFs();
  if (native === null) throw new SnapshotError('overlay snapshots need the native addon (native/kiln_native.c), which is not built');
  const m: Merge = { native, root, upper, ignore, scope, dirTimes: [], indexed: readIndex(upper), keep: [], redirects: new Map() };
  try {
    findRedirects(m);
    if (m.indexed.size > 0) findLowerInodes(m);
    mergeDir(m, '');
  } finally {
    for (const k of m.keep) rmSync(k, { recursive: true, force: true });
  }
  // Directory times last, deepest first: moving entries into a directory moves its mtime.
  for (const d of m.dirTimes.reverse()) lutimesSync(d.host, nsToSeconds(d.atimeNs), nsToSeconds(d.mtimeNs));
  rmSync(upper, { recursive: true, force: true });
}

/**
 * The index of the mount whose upper dir is `upper` (overlay-run.ts puts `work` beside it): each
 * regular file there is a hard link of a copied-up upper inode, named by the lower file handle in hex.
 */
function readIndex(upper: string): Map<bigint, IndexedInode> {
  const out = new Map<bigint, IndexedInode>();
  const index = join(upper, '..', 'work', 'index');
  if (!existsSync(index)) return out;
  for (const name of readdirSync(index)) {
    const st = lstatSync(join(index, name), { bigint: true });
    if (st.isFile()) out.set(st.ino, { lowerIno: inoOfHandle(name), paths: [] });
  }
  return out;
}

/**
 * The inode number in an overlayfs file handle (struct ovl_fb: version, magic 0xfb, len, flags, type,
 * 16-byte uuid, then the lower filesystem's fid). ext4 and most filesystems encode FILEID_INO32_GEN
 * as [ino, generation]; tmpfs as [generation, ino low, ino high] (3 words). Undefined otherwise.
 */
function inoOfHandle(hex: string): bigint | undefined {
  if (!/^([0-9a-f]{2})+$/.test(hex)) return undefined;
  const b = Buffer.from(hex, 'hex');
  if (b.length < 21 + 8 || b[1] !== 0xfb) return undefined;
  const fid = b.subarray(21);
  if (fid.length === 8) return BigInt(fid.readUInt32LE(0));
  if (fid.length === 12) return BigInt(fid.readUInt32LE(4)) | (BigInt(fid.readUInt32LE(8)) << 32n);
  return undefined;
}

/**
 * Finds, for every indexed upper inode, the lower inode it was copied up from: one of its upper
 * names whose lower file is multiply linked, else a multiply-linked lower file the upper dir deletes
 * with the inode number of its handle (kept reachable by a link beside the upper dir until the end).
 */
function findLowerInodes(m: Merge): void {
  const deleted = new Map<bigint, string>();
  const visit = (dir: string): void => {
    for (const name of readdirSync(join(m.upper, dir))) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const us = lstatSync(join(m.upper, rel), { bigint: true });
      if (us.isDirectory()) {
        visit(rel);
        continue;
      }
      const lowerHost = lowerHostOf(m, rel);
      const l = lstatOrNull(lowerHost);
      if (us.isCharacterDevice() && us.rdev === 0n) {
        if (l !== null && l.isFile() && l.nlink > 1n) deleted.set(l.ino, lowerHost);
        continue;
      }
      const ix = m.indexed.get(us.ino);
      if (ix === undefined || !us.isFile()) continue;
      ix.paths.push(rel);
      if (ix.target === undefined && l !== null && l.isFile() && l.nlink > 1n && (ix.lowerIno === undefined || ix.lowerIno === l.ino)) ix.target = keepLink(m, lowerHost);
    }
  };
  visit('');
  for (const ix of m.indexed.values()) {
    if (ix.target !== undefined || ix.lowerIno === undefined) continue;
    const gone = deleted.get(ix.lowerIno);
    if (gone !== undefined) ix.target = keepLink(m, gone);
  }
}

function hasRedirectUnder(m: Merge, rel: string): boolean {
  if (m.redirects.size === 0) return false;
  const prefix = `${rel}/`;
  for (const k of m.redirects.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

/** A link to a lower inode beside the upper dir: reachable whatever the merge moves or deletes. */
function keepLink(m: Merge, host: string): string {
  const keep = join(m.upper, '..', `kiln-keep-${m.keep.length}`);
  linkSync(host, keep);
  m.keep.push(keep);
  return keep;
}

/** Where the lower file of upper path `rel` is now: inside a renamed directory set aside, or at `rel`. */
function lowerHostOf(m: Merge, rel: string): string {
  for (let p = rel; ; ) {
    const kept = m.redirects.get(p);
    if (kept !== undefined) return kept + rel.slice(p.length);
    const slash = p.lastIndexOf('/');
    if (slash < 0) return join(m.root, rel);
    p = p.slice(0, slash);
  }
}

/**
 * Directories the RUN renamed (redirect_dir=on: the upper dir names its lower one in
 * trusted.overlay.redirect, absolute from the layer root or relative to the parent's lower dir). Each
 * lower directory is set aside beside the upper dir before anything is deleted (its old name is a
 * whiteout), deepest first, and put at its new name when the merge reaches it.
 */
function findRedirects(m: Merge): void {
  const found: Array<{ rel: string; source: string }> = [];
  const visit = (dir: string, lowerOfDir: string | null): void => {
    for (const name of readdirSync(join(m.upper, dir))) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const u = join(m.upper, rel);
      if (!lstatSync(u).isDirectory()) continue;
      const redirect = m.native.lgetxattr(u, REDIRECT_XATTR)?.toString();
      const opaque = m.native.lgetxattr(u, OPAQUE_XATTR)?.toString() === 'y';
      let lower: string | null;
      if (redirect !== undefined && redirect !== '') {
        lower = redirect.startsWith('/') ? redirect.replace(/^\/+/, '') : lowerOfDir === null ? null : lowerOfDir === '' ? redirect : `${lowerOfDir}/${redirect}`;
        if (lower !== null) found.push({ rel, source: lower });
      } else {
        lower = opaque || lowerOfDir === null ? null : lowerOfDir === '' ? name : `${lowerOfDir}/${name}`;
      }
      visit(rel, lower);
    }
  };
  visit('', '');
  found.sort((a, b) => b.source.split('/').length - a.source.split('/').length);
  for (const { rel, source } of found) {
    if (source.split('/').includes('..')) continue;
    const host = join(m.root, source);
    if (lstatOrNull(host)?.isDirectory() !== true) continue;
    const kept = join(m.upper, '..', `kiln-keep-${m.keep.length}`);
    renameSync(host, kept);
    m.keep.push(kept);
    m.redirects.set(rel, kept);
  }
}

/**
 * An upper name of an indexed inode: the lower inode gets the upper one's data and metadata (once),
 * and this name links to it. False when the lower inode is unknown (the name is renamed in as usual).
 */
function mergeIndexed(m: Merge, rel: string, u: string, us: BigIntStats): boolean {
  const ix = m.indexed.get(us.ino);
  if (ix === undefined || ix.target === undefined || !us.isFile()) return false;
  const l = join(m.root, rel);
  if (!ix.written) {
    writeInPlace(m.native, u, ix.target, us);
    ix.written = true;
  }
  const ls = lstatOrNull(l);
  const target = lstatSync(ix.target, { bigint: true });
  if (ls === null || ls.ino !== target.ino || ls.dev !== target.dev) {
    if (ls !== null) removeSparingIgnored(m.root, rel, m.ignore);
    linkSync(ix.target, l);
  }
  rmSync(u, { force: true });
  m.scope.addEntry(rel);
  return true;
}

/** Writes a copied-up file's bytes, owner, mode, capability and times into the lower inode. */
function writeInPlace(native: NativeFs, from: string, to: string, us: BigIntStats): void {
  const src = openSync(from, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  const dst = openSync(to, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let off = 0;
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, off);
      if (n === 0) break;
      for (let w = 0; w < n; ) w += writeSync(dst, buf, w, n - w, off + w);
      off += n;
    }
    ftruncateSync(dst, off);
    // chown first: it clears setuid/setgid and the capability, which chmod and the xattr then set.
    fchownSync(dst, Number(us.uid), Number(us.gid));
    fchmodSync(dst, Number(us.mode & 0o7777n));
    const cap = native.lgetxattr(from, CAPABILITY_XATTR);
    if (cap !== null) native.lsetxattr(to, CAPABILITY_XATTR, cap);
    else native.lremovexattr(to, CAPABILITY_XATTR);
    futimesSync(dst, nsToSeconds(us.atimeNs), nsToSeconds(us.mtimeNs));
  } finally {
    closeSync(src);
    closeSync(dst);
  }
}

function mergeDir(m: Merge, dir: string): void {
  const { native, root, upper, ignore, scope, dirTimes } = m;
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
      const kept = m.redirects.get(rel);
      if (kept !== undefined) {
        // A renamed lower directory: it takes its new name, then the upper entries below it apply.
        if (ls !== null) removeSparingIgnored(root, rel, ignore);
        renameSync(kept, l);
        mergeDir(m, rel);
        applyDirMetadata(l, us, lstatSync(l, { bigint: true }), dirTimes);
        scope.addTree(rel);
        continue;
      }
      const opaque = native.lgetxattr(u, OPAQUE_XATTR)?.toString() === 'y';
      if (opaque) native.lremovexattr(u, OPAQUE_XATTR);
      if (ls?.isDirectory() === true && !opaque) {
        // A copy-up of a lower directory: its own metadata, then the changed entries below it.
        mergeDir(m, rel);
        applyDirMetadata(l, us, ls, dirTimes);
        scope.addEntry(rel);
        scope.rewritten.add(rel);
        continue;
      }
      if (ls !== null) removeSparingIgnored(root, rel, ignore);
      if (lstatOrNull(l) !== null) {
        // Ignored paths (mount points) kept the lower directory: fill it instead of replacing it.
        mergeDir(m, rel);
        applyDirMetadata(l, us, lstatOrNull(l) as BigIntStats, dirTimes);
        scope.addTree(rel);
        continue;
      }
      if (hasRedirectUnder(m, rel)) {
        // A new directory holding renamed lower ones (and the whiteouts of what they lost): merged
        // entry by entry into an empty directory, not moved in as it is.
        mkdirSync(l, { mode: 0o700 });
        mergeDir(m, rel);
        applyDirMetadata(l, us, lstatSync(l, { bigint: true }), dirTimes);
        scope.addTree(rel);
        continue;
      }
      stripTree(native, u);
      renameSync(u, l);
      scope.addTree(rel);
      continue;
    }
    if (m.indexed.size > 0 && mergeIndexed(m, rel, u, us)) continue;
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
