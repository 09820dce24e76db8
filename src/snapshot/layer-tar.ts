// Turns a list of changes into a layer tar, streamed: entries are sorted, each changed path comes with
// its parent directories (current metadata), as kaniko and overlayfs copy-up do, and whiteouts say what
// is gone. File bytes are read from the rootfs while the tar is consumed, with backpressure.
// File capabilities (`security.capability`) of the files recorded travel as PAX records, written by
// pax-header.ts because tar-stream's own records cannot hold binary values.
import { closeSync, constants as fsConstants, createReadStream, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack as tarPack, type Header, type Pack } from 'tar-stream';
import { SnapshotError } from '../errors.js';
import { nativeFs } from '../rootfs/native-fs.js';
import { CAPABILITY_XATTR, XATTR_PAX_PREFIX } from '../rootfs/pax-records.js';
import { OPAQUE_WHITEOUT, whiteoutName } from '../rootfs/whiteout.js';
import type { Change } from './diff.js';
import { withPaxRecords } from './pax-header.js';
import type { EntryMeta, TreeIndex } from './tree-index.js';

/** What one tar entry is made from: a path of the rootfs, or a whiteout marker. */
type TarItem = { readonly kind: 'path'; readonly meta: EntryMeta } | { readonly kind: 'whiteout' };

/**
 * File type bits, added to the permission bits in `mode`: tar-stream replaces a falsy mode with its
 * default (0644/0755), which would turn a mode-0000 file (RHEL's /etc/shadow) readable. The type bits
 * keep the value truthy and the header encoder masks them off (it writes `mode & 0o7777`).
 */
const S_IFMT = { file: 0o100000, dir: 0o040000, symlink: 0o120000, fifo: 0o010000, char: 0o020000, block: 0o060000, socket: 0o140000 } as const;

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
  const pack = tarPack();
  void produce(pack, root, items, opts.reproducible ?? false).catch((err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))));
  // A Node Readable over tar-stream's streamx one: pulls as fast as the consumer reads.
  return Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
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

async function produce(pack: Pack, root: string, items: ReadonlyMap<string, TarItem>, reproducible: boolean): Promise<void> {
  // Without the addon capabilities cannot be read (Node has no getxattr): layers then carry none.
  const native = nativeFs();
  // Later paths of an inode become hardlink entries to the first path written in this layer.
  const firstPathOfInode = new Map<string, string>();
  for (const [path, item] of items) {
    if (item.kind === 'whiteout') {
      await addEntry(pack, { name: path, type: 'file', size: 0, mode: S_IFMT.file, uid: 0, gid: 0, mtime: new Date(0) });
      continue;
    }
    const m = item.meta;
    const base = { mode: S_IFMT[m.kind] | m.mode, uid: m.uid, gid: m.gid, mtime: new Date(reproducible ? 0 : Number(m.mtimeNs / 1_000_000n)) };
    const pax = largeIds(m);
    switch (m.kind) {
      case 'dir':
        await addEntry(pack, { ...base, ...pax, name: `${path}/`, type: 'directory' });
        break;
      case 'symlink':
        await addEntry(pack, { ...base, ...pax, name: path, type: 'symlink', linkname: m.linkTarget ?? '' });
        break;
      case 'fifo':
        await addEntry(pack, { ...base, ...pax, name: path, type: 'fifo' });
        break;
      case 'char':
      case 'block':
        await addEntry(pack, { ...base, ...pax, name: path, type: m.kind === 'char' ? 'character-device' : 'block-device', ...deviceNumbers(m.rdev) });
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
            const header: HeaderArg = { ...base, ...pax, name: path, type: 'link', linkname: first, size: 0 };
            if (capability === null) await addEntry(pack, header);
            else await addEntry(pack, withCapability(pack, header, m, capability));
            break;
          }
          firstPathOfInode.set(key, path);
        }
        const header = { ...base, ...pax, name: path, type: 'file' as const, size: m.size };
        await addFile(pack, capability === null ? header : withCapability(pack, header, m, capability), host);
        break;
      }
    }
  }
  pack.finalize();
}

/**
 * Writes the PAX `x` entry that carries `capability` (binary, which tar-stream's own PAX records would
 * corrupt) and returns the header to write the entry itself with. tar-stream gives no entry but a file
 * a body, so the encoded `x` entry goes into the pack's output as it is: every earlier entry has been
 * written (each is awaited) and the next starts after, so the bytes land between the two.
 */
function withCapability<H extends HeaderArg>(pack: Pack, header: H, m: EntryMeta, capability: Buffer): H {
  const entry = { name: header.name, uid: m.uid, gid: m.gid, ...(header.linkname != null ? { linkname: header.linkname } : {}) };
  const { paxEntry, header: plain } = withPaxRecords(header, entry, [[XATTR_PAX_PREFIX + CAPABILITY_XATTR, capability]]);
  pack.push(paxEntry);
  return plain;
}

function addEntry(pack: Pack, header: Header | HeaderArg): Promise<void> {
  return new Promise((resolve, reject) => {
    // An empty body ends the entry: without one, a `file` entry (a whiteout) waits for bytes forever.
    pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
  });
}

type HeaderArg = Partial<Header> & Pick<Header, 'name'>;

/**
 * Files up to this size are read in one synchronous call and handed to the packer whole: most files of
 * a rootfs are small, and a stream with its thread-pool reads per file cost ten times the read itself.
 * Memory stays bounded by this size; larger files stream.
 */
const SMALL_FILE = 1 << 20;

/** Writes one file's bytes into its entry; the size recorded at scan time must still hold. */
async function addFile(pack: Pack, header: HeaderArg & { size: number }, host: string): Promise<void> {
  let fd: number;
  try {
    fd = openSync(host, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    throw new SnapshotError(`cannot read /${header.name}: ${(err as Error).message}`, { cause: err });
  }
  try {
    if (header.size <= SMALL_FILE) {
      const buf = Buffer.allocUnsafe(header.size);
      let bytes = 0;
      for (let n = -1; n !== 0 && bytes < header.size; bytes += n) n = readSync(fd, buf, bytes, header.size - bytes, bytes);
      if (bytes !== header.size) throw changedSize(header, bytes);
      await new Promise<void>((resolve, reject) => {
        pack.entry(header, buf, (err) => (err ? reject(err) : resolve()));
      });
      return;
    }
    let done: (err?: Error | null) => void = () => {};
    const written = new Promise<void>((resolve, reject) => {
      done = (err) => (err ? reject(err) : resolve());
    });
    const sink = pack.entry(header, (err) => done(err));
    let bytes = 0;
    for await (const chunk of createReadStream('', { fd, start: 0, end: header.size - 1, autoClose: false }) as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (!sink.write(chunk)) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
    }
    if (bytes !== header.size) {
      const err = changedSize(header, bytes);
      sink.destroy(err);
      throw err;
    }
    sink.end(null);
    await written;
  } finally {
    closeSync(fd);
  }
}

function changedSize(header: HeaderArg & { size: number }, bytes: number): SnapshotError {
  return new SnapshotError(`/${header.name} changed size while the layer was written (${header.size} -> ${bytes} bytes)`);
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
