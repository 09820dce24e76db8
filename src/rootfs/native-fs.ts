// kiln's native addon (native/kiln_native.c, built by node-gyp at install time): extended attributes,
// mkfifo, and a whole-tree lstat walker (one call, a few threads) for fast walks. Node.js has no API for the first
// two, and its per-entry lstat is what makes a JS walk slow. When the addon is not built, callers fall
// back (a JS walk; capabilities and FIFOs are then skipped with a debug log, overlay snapshots off).
import { createRequire } from 'node:module';

export interface NativeFs {
  /** The attribute's bytes, or null when it is not set (or the filesystem has no xattrs). */
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** Removes the attribute; no error when it is not set. */
  lremovexattr(path: string, name: string): void;
  /** Creates a FIFO; fails with EEXIST on any existing path (never follows a symlink). */
  mkfifo(path: string, mode: number): void;
  /** Every entry of `dir` with its lstat, packed (see `decodeDirRecords`); null when `dir` is gone. */
  lstatDir(dir: string, xattrName?: string): ArrayBuffer | null;
  /**
   * Everything under `start` (root-relative, `''` for `root` itself) with its lstat, in one call on
   * `threads` threads (default: the online CPUs, at most 4), leaving out the `ignored` root-relative
   * paths and what lies under them. Packed: see `decodeWalkRecords`.
   */
  walkTree(root: string, start: string, ignored: readonly string[], threads?: number): ArrayBuffer;
}

/** The build output, relative to this file in both src/rootfs (tests) and dist/rootfs (the CLI). */
const ADDON = '../../build/Release/kiln_native.node';

let loaded: { readonly addon: NativeFs | null } | undefined;

/**
 * The addon, or null when it was not built. Loaded once: a native module cannot be unloaded, so
 * this is a constant of the process, like an import.
 */
export function nativeFs(): NativeFs | null {
  if (loaded === undefined) {
    try {
      loaded = { addon: createRequire(import.meta.url)(ADDON) as NativeFs };
    } catch {
      loaded = { addon: null };
    }
  }
  return loaded.addon;
}

/** One directory entry as `lstatDir` packs it. */
export interface DirRecord {
  readonly name: string;
  /** `st_mode`, type bits included. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly size: number;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly rdev: bigint;
  /** Birth time (statx btime), 0 when the filesystem does not record it. */
  readonly birthNs: bigint;
  /** A symlink's target, verbatim. */
  readonly linkTarget: string | undefined;
  /** The requested xattr's value, when asked for and set. */
  readonly xattr: Buffer | undefined;
}

const HEADER = 88;
const NO_XATTR = 0xffffffff;

/** Decodes `lstatDir`'s records (layout in native/kiln_native.c), calling `each` per entry. */
export function decodeDirRecords(buf: ArrayBuffer, each: (r: DirRecord) => void): void {
  const q = new BigUint64Array(buf);
  const w = new Uint32Array(buf);
  const bytes = Buffer.from(buf);
  for (let off = 0; off < buf.byteLength; ) {
    const q0 = off / 8;
    const w0 = off / 4;
    const len = w[w0 + 14] as number;
    const nameLen = w[w0 + 19] as number;
    const linkLen = w[w0 + 20] as number;
    const xLen = w[w0 + 21] as number;
    const mode = w[w0 + 15] as number;
    const nameStart = off + HEADER;
    const linkStart = nameStart + nameLen;
    const xStart = linkStart + linkLen;
    each({
      name: bytes.toString('utf8', nameStart, linkStart),
      mode,
      uid: w[w0 + 16] as number,
      gid: w[w0 + 17] as number,
      nlink: w[w0 + 18] as number,
      size: Number(q[q0] as bigint),
      mtimeNs: q[q0 + 1] as bigint,
      ctimeNs: q[q0 + 2] as bigint,
      dev: q[q0 + 3] as bigint,
      ino: q[q0 + 4] as bigint,
      rdev: q[q0 + 5] as bigint,
      birthNs: q[q0 + 6] as bigint,
      linkTarget: (mode & 0o170000) === 0o120000 ? bytes.toString('utf8', linkStart, xStart) : undefined,
      xattr: xLen === NO_XATTR ? undefined : Buffer.from(bytes.subarray(xStart, xStart + xLen)),
    });
    off += len;
  }
}

/** Record size and header of `walkTree`'s buffer (native/tree-walk.h). */
const WALK_HEADER = 24;
const WALK_RECORD = 88;

/**
 * Decodes `walkTree`'s buffer, calling `each` per entry with the record's fields as arguments (no
 * intermediate object: this runs 100,000 times per walk of a typical rootfs).
 */
export function decodeWalkRecords(
  buf: ArrayBuffer,
  each: (path: string, mode: number, uid: number, gid: number, nlink: number, size: number, mtimeNs: bigint, ctimeNs: bigint, dev: bigint, ino: bigint, rdev: bigint, birthNs: bigint, linkTarget: string | undefined) => void,
): void {
  const head = new BigUint64Array(buf, 0, 3);
  const count = Number(head[0] as bigint);
  const strings = Number(head[1] as bigint);
  const q = new BigUint64Array(buf, WALK_HEADER, (count * WALK_RECORD) / 8);
  const w = new Uint32Array(buf, WALK_HEADER, (count * WALK_RECORD) / 4);
  const bytes = Buffer.from(buf, strings);
  // All ASCII (the usual rootfs): decode the table once and slice it, byte offsets being character
  // offsets; one toString per string costs more than the rest of a record's decoding.
  const table = head[2] === 1n ? bytes.toString('latin1') : undefined;
  const str = table === undefined ? (a: number, b: number) => bytes.toString('utf8', a, b) : (a: number, b: number) => table.slice(a, b);
  // Most entries share their device, and devices are rarely set: reuse those bigints, not allocate.
  let dev = 0n;
  let devLo = 0;
  let devHi = 0;
  for (let i = 0; i < count; i++) {
    const q0 = i * (WALK_RECORD / 8);
    const w0 = i * (WALK_RECORD / 4);
    const mode = w[w0 + 14] as number;
    const pathStart = w[w0 + 18] as number;
    const pathEnd = pathStart + (w[w0 + 19] as number);
    const linkLen = w[w0 + 20] as number;
    if (w[w0 + 6] !== devLo || w[w0 + 7] !== devHi) {
      devLo = w[w0 + 6] as number;
      devHi = w[w0 + 7] as number;
      dev = q[q0 + 3] as bigint;
    }
    each(
      str(pathStart, pathEnd),
      mode,
      w[w0 + 15] as number,
      w[w0 + 16] as number,
      w[w0 + 17] as number,
      Number(q[q0] as bigint),
      q[q0 + 1] as bigint,
      q[q0 + 2] as bigint,
      dev,
      q[q0 + 4] as bigint,
      w[w0 + 10] === 0 && w[w0 + 11] === 0 ? 0n : (q[q0 + 5] as bigint),
      q[q0 + 6] as bigint,
      (mode & 0o170000) === 0o120000 ? str(pathEnd, pathEnd + linkLen) : undefined,
    );
  }
}

/**
 * `walkTree`'s buffer opened for field-by-field reads, without decoding anything: record `i`'s fields
 * are `words[i * WALK_WORDS + k]` at the u32 offsets of native/tree-walk.h (a u64 field is two words,
 * low first). What a snapshot keeps as its baseline: comparing words costs no allocation, where a
 * decoded record costs an object and five bigints.
 */
export interface WalkView {
  readonly count: number;
  readonly words: Uint32Array;
  readonly quads: BigUint64Array;
  /** The string table's bytes `[start, end)`. */
  str(start: number, end: number): string;
}

/** u32 words per record, and the word offsets of the fields a snapshot reads. */
export const WALK_WORDS = WALK_RECORD / 4;
export const W = {
  size: 0,
  mtime: 2,
  ctime: 4,
  dev: 6,
  ino: 8,
  rdev: 10,
  birth: 12,
  mode: 14,
  uid: 15,
  gid: 16,
  nlink: 17,
  pathStart: 18,
  pathLen: 19,
  linkLen: 20,
} as const;

export function walkView(buf: ArrayBuffer): WalkView {
  const head = new BigUint64Array(buf, 0, 3);
  const count = Number(head[0] as bigint);
  const strings = Number(head[1] as bigint);
  const bytes = Buffer.from(buf, strings);
  // As in decodeWalkRecords: an all-ASCII table is decoded once and sliced.
  const table = head[2] === 1n ? bytes.toString('latin1') : undefined;
  return {
    count,
    words: new Uint32Array(buf, WALK_HEADER, count * WALK_WORDS),
    quads: new BigUint64Array(buf, WALK_HEADER, (count * WALK_RECORD) / 8),
    str: table === undefined ? (a, b) => bytes.toString('utf8', a, b) : (a, b) => table.slice(a, b),
  };
}
