// Turns a list of changes into a layer tar, streamed: entries are sorted, each changed path comes with
// its parent directories (current metadata), as kaniko and overlayfs copy-up do, and whiteouts say what
// is gone. File bytes are read from the rootfs while the tar is consumed, with backpressure.
// Headers come from ustar.ts (byte for byte what tar-stream wrote); small entries are gathered into
// ~1 MiB chunks, so a layer of many small files costs a few syscalls per file and no per-entry streams.
// File capabilities (`security.capability`) of the files recorded travel as PAX records, written by
// pax-header.ts (binary values, which string-valued records cannot hold).
import { closeSync, constants as fsConstants, openSync, read as readCb, readSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { SnapshotError } from '../errors.js';
import { nativeFs } from '../rootfs/native-fs.js';
import { CAPABILITY_XATTR, XATTR_PAX_PREFIX } from '../rootfs/pax-records.js';
import { OPAQUE_WHITEOUT, whiteoutName } from '../rootfs/whiteout.js';
import type { Change } from './diff.js';
import { withPaxRecords } from './pax-header.js';
import type { EntryMeta, TreeIndex } from './tree-index.js';
import { BLOCK, END_OF_ARCHIVE, headerBlocks, type UstarHeader } from './ustar.js';

/** What one tar entry is made from: a path of the rootfs, or a whiteout marker. */
type TarItem = { readonly kind: 'path'; readonly meta: EntryMeta } | { readonly kind: 'whiteout' };

/** Largest uid/gid the octal header fields hold; beyond it the value travels in a PAX record. */
const MAX_OCTAL_ID = 0o777777;

export interface LayerTarOptions {
  /** `--reproducible`: every entry's mtime is the epoch, so the same files give the same bytes any day. */
  readonly reproducible?: boolean;
  /** Only paths it accepts are written, parents included (a delta layer: see SnapshotterOptions.delta). */
  readonly within?: (path: string) => boolean;
}

/**
 * The layer tar for `changes`, reading current file contents under `root`. `after` looks up the
 * index the changes were computed against (their metadata and parents come from it).
 */
export function writeChangesTar(root: string, changes: readonly Change[], after: Pick<TreeIndex, 'get'>, opts: LayerTarOptions = {}): Readable {
  const within = opts.within;
  const items = collectItems(within === undefined ? changes : changes.filter((c) => within(c.path)), after, within);
  // Pulled as fast as the consumer reads: the generator runs only when more bytes are wanted.
  return Readable.from(produce(root, items, opts.reproducible ?? false), { objectMode: false });
}

function collectItems(changes: readonly Change[], after: Pick<TreeIndex, 'get'>, within: ((path: string) => boolean) | undefined): Map<string, TarItem> {
  const items = new Map<string, TarItem>();
  const addWithParents = (path: string): void => {
    for (let p = path; p !== ''; p = parentOf(p)) {
      if (items.has(p) || (within !== undefined && !within(p))) break;
      const meta = after.get(p);
      if (meta === undefined) throw new SnapshotError(`/${p} changed but is missing from the index`);
      items.set(p, { kind: 'path', meta });
    }
  };
  const addParents = (path: string): void => {
    const parent = parentOf(path);
    if (parent !== '') addWithParents(parent);
  };
  for (const c of changes) {
    switch (c.kind) {
      case 'added':
      case 'modified':
        addWithParents(c.path);
        break;
      case 'deleted':
        items.set(join2(parentOf(c.path), whiteoutName(baseOf(c.path))), { kind: 'whiteout' });
        addParents(c.path);
        break;
      case 'opaque':
        items.set(join2(c.path, OPAQUE_WHITEOUT), { kind: 'whiteout' });
        addWithParents(c.path);
        break;
    }
  }
  return new Map([...items.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Entries are gathered up to this many bytes before they are handed on. */
const CHUNK = 1 << 20;

async function* produce(root: string, items: ReadonlyMap<string, TarItem>, reproducible: boolean): AsyncGenerator<Buffer> {
  // Without the addon capabilities cannot be read (Node has no getxattr): layers then carry none.
  const native = nativeFs();
  // Later paths of an inode become hardlink entries to the first path written in this layer.
  const firstPathOfInode = new Map<string, string>();
  // Entries are written straight into a chunk: headers copied in, small files read into it in place.
  let out = Buffer.allocUnsafe(CHUNK + SMALL_FILE + 2 * BLOCK);
  let pos = 0;
  const add = (b: Buffer): void => {
    if (pos + b.length > out.length) {
      // Only a capability's PAX entry or a long name makes an entry this big: grow for it.
      const bigger = Buffer.allocUnsafe(pos + b.length + CHUNK);
      out.copy(bigger, 0, 0, pos);
      out = bigger;
    }
    b.copy(out, pos);
    pos += b.length;
  };
  const take = (): Buffer => {
    // The consumer keeps what it was handed until it is compressed: a fresh chunk for what follows.
    const done = out.subarray(0, pos);
    out = Buffer.allocUnsafe(CHUNK + SMALL_FILE + 2 * BLOCK);
    pos = 0;
    return done;
  };
  for (const [path, item] of items) {
    if (pos >= CHUNK) yield take();
    if (item.kind === 'whiteout') {
      add(headerBlocks({ name: path, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtimeSeconds: 0 }));
      continue;
    }
    const m = item.meta;
    const base = { mode: m.mode, uid: m.uid, gid: m.gid, mtimeSeconds: reproducible ? 0 : (Number(m.mtimeNs / 1_000_000n) / 1000) | 0, ...largeIds(m) };
    switch (m.kind) {
      case 'dir':
        add(headerBlocks({ ...base, name: `${path}/`, type: 'directory', size: 0 }));
        break;
      case 'symlink':
        add(headerBlocks({ ...base, name: path, type: 'symlink', size: 0, linkname: m.linkTarget ?? '' }));
        break;
      case 'fifo':
        add(headerBlocks({ ...base, name: path, type: 'fifo', size: 0 }));
        break;
      case 'char':
      case 'block':
        add(headerBlocks({ ...base, name: path, type: m.kind === 'char' ? 'character-device' : 'block-device', size: 0, ...deviceNumbers(m.rdev) }));
        break;
      case 'socket':
        // A socket is a running process's, not content: no tar type exists for it.
        break;
      case 'file': {
        const host = join(root, path);
        // Only files a layer records get here, so reading their capability costs one getxattr per
        // changed file, not one per file of the rootfs (tree-index.ts). A hardlink entry carries it
        // too: unpackers apply a link entry's metadata to the shared inode, and its chown clears it.
        const capability = native?.lgetxattr(host, CAPABILITY_XATTR) ?? null;
        if (m.nlink > 1) {
          const key = `${m.dev}:${m.ino}`;
          const first = firstPathOfInode.get(key);
          if (first !== undefined) {
            const header: UstarHeader = { ...base, name: path, type: 'link', linkname: first, size: 0 };
            add(capability === null ? headerBlocks(header) : withCapability(header, m, capability));
            break;
          }
          firstPathOfInode.set(key, path);
        }
        const header: UstarHeader = { ...base, name: path, type: 'file', size: m.size };
        add(capability === null ? headerBlocks(header) : withCapability(header, m, capability));
        if (m.size <= SMALL_FILE) {
          if (pos + m.size + BLOCK > out.length) yield take();
          readSmallFile(host, path, m.size, out, pos);
          pos += m.size;
        } else {
          yield take();
          yield* readLargeFile(host, path, m.size);
        }
        const rest = m.size % BLOCK;
        if (rest !== 0) {
          // Room is there: a chunk keeps a block spare beyond every small file it takes.
          if (pos + BLOCK - rest > out.length) yield take();
          out.fill(0, pos, pos + BLOCK - rest);
          pos += BLOCK - rest;
        }
        break;
      }
    }
  }
  add(END_OF_ARCHIVE);
  yield take();
}

/**
 * The PAX `x` entry that carries `capability` (binary, which string-valued records would corrupt),
 * then the entry's own header, which needs no records of its own after it (pax-header.ts).
 */
function withCapability(header: UstarHeader, m: EntryMeta, capability: Buffer): Buffer {
  const entry = { name: header.name, uid: m.uid, gid: m.gid, ...(header.linkname !== undefined ? { linkname: header.linkname } : {}) };
  const { paxEntry, header: plain } = withPaxRecords(header, entry, [[XATTR_PAX_PREFIX + CAPABILITY_XATTR, capability]], header.mtimeSeconds);
  return Buffer.concat([paxEntry, headerBlocks(plain)]);
}

/**
 * Files up to this size are read in one synchronous call: most files of a rootfs are small, and a
 * stream with its thread-pool reads per file cost ten times the read itself. Memory stays bounded by
 * this size (and the chunk); larger files stream.
 */
const SMALL_FILE = 1 << 20;

/** Reads a small file into `buf` at `at`; the size recorded at scan time must still hold. */
function readSmallFile(host: string, path: string, size: number, buf: Buffer, at: number): void {
  const fd = openForLayer(host, path);
  try {
    let bytes = 0;
    for (let n = -1; n !== 0 && bytes < size; bytes += n) n = readSync(fd, buf, at + bytes, size - bytes, bytes);
    if (bytes !== size) throw changedSize(path, size, bytes);
  } finally {
    closeSync(fd);
  }
}

const readAt = promisify(readCb);

/** A large file's bytes in 1 MiB reads off the event loop; the recorded size must still hold. */
async function* readLargeFile(host: string, path: string, size: number): AsyncGenerator<Buffer> {
  const fd = openForLayer(host, path);
  try {
    let bytes = 0;
    while (bytes < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - bytes));
      const { bytesRead } = await readAt(fd, buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      bytes += bytesRead;
      yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    }
    if (bytes !== size) throw changedSize(path, size, bytes);
    // More bytes than recorded: the entry would lie about its size.
    const probe = Buffer.allocUnsafe(1);
    if ((await readAt(fd, probe, 0, 1, size)).bytesRead !== 0) throw changedSize(path, size, size + 1);
  } finally {
    closeSync(fd);
  }
}

function openForLayer(host: string, path: string): number {
  try {
    return openSync(host, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw new SnapshotError(`cannot read /${path}: ${(err as Error).message}`, { cause: err });
  }
}

function changedSize(path: string, size: number, bytes: number): SnapshotError {
  return new SnapshotError(`/${path} changed size while the layer was written (${size} -> ${bytes}${bytes > size ? '+' : ''} bytes)`);
}

function largeIds(m: EntryMeta): { pax?: Record<string, string> } {
  if (m.uid <= MAX_OCTAL_ID && m.gid <= MAX_OCTAL_ID) return {};
  return { pax: { uid: String(m.uid), gid: String(m.gid) } };
}

/** Linux's split of dev_t into major and minor (glibc's gnu_dev_major/minor). */
function deviceNumbers(rdev: bigint): { devmajor: number; devminor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { devmajor: Number(major), devminor: Number(minor) };
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}
