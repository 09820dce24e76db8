// Applies one layer tar onto an existing root directory the way docker and containerd do: entries are
// created with their recorded mode, owner and times, whiteouts delete what lower layers put there, and
// an entry replaces whatever of another type stood at its path.
//
// Safety: no entry ever touches anything outside the root.
// - A name (or hardlink target) whose `..` climbs above the root is refused with an UnpackError naming
//   the entry, as docker's archive package does: a layer written by a sane tool never has one.
// - Symlinks already in the rootfs (from lower layers or earlier entries) are followed the way
//   securejoin follows them, as if the root were `/`: `lib -> /usr/lib` then `lib/x` writes
//   `<root>/usr/lib/x`, and a link pointing "outside" is clamped inside. Only the parent of an entry is
//   resolved; the entry itself is replaced, never written through (files are opened O_NOFOLLOW|O_EXCL).
// - This assumes nothing else modifies the rootfs while a layer is applied.
//
// Not applied: character and block devices (a build cannot create them without CAP_MKNOD on a real
// device cgroup, and images never need them: /dev is the runtime's), FIFOs (Node has no mkfifo), and
// extended attributes / file capabilities (Node has no setxattr). Each skip is logged at debug level.
// Metadata of the root directory itself (`./` entries) is left alone: in container mode the root is `/`.
//
// The per-entry syscalls are synchronous on purpose: a layer is tens of thousands of tiny operations,
// and a thread-pool round trip for each made unpacking ten times slower than GNU tar. File bytes still
// stream from the tar with backpressure.
import {
  closeSync,
  constants as fsConstants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type Header } from 'tar-stream';
import { VerifyingStream } from '../blob/digesting.js';
import { KilnError, UnpackError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { Digest } from '../oci/digest.js';
import type { IgnoreList } from './ignore-list.js';
import { cleanEntryName, resolveInRoot, resolveParentInRoot } from './root-path.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './whiteout.js';

export interface UnpackOptions {
  readonly ignore: IgnoreList;
  readonly ctx?: RunContext;
  /** When given, the uncompressed stream must hash to it or the unpack fails with DigestMismatchError. */
  readonly expectedDiffId?: Digest;
  /** How messages name the layer (e.g. its digest). */
  readonly what?: string;
}

export interface UnpackStats {
  readonly entries: number;
  readonly files: number;
  readonly directories: number;
  readonly symlinks: number;
  readonly hardlinks: number;
  readonly whiteouts: number;
  readonly opaqueWhiteouts: number;
  /** Entries on the ignore list. */
  readonly ignored: number;
  /** Devices, FIFOs and unknown types, not applied (see the module comment). */
  readonly skipped: number;
  /** Bytes of regular file content written. */
  readonly bytes: number;
}

/** tar-stream's decoded header, with the PAX records it keeps typed as what they are. */
type PaxHeaders = Omit<Header, 'pax'> & { readonly pax?: Readonly<Record<string, string>> | null };

/** One entry as tar-stream's extractor yields it: its header and its bytes. */
interface Entry extends AsyncIterable<Buffer> {
  readonly header: Header;
}

const CREATE_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

export async function unpackLayer(root: string, tar: Readable, opts: UnpackOptions): Promise<UnpackStats> {
  const applier = new LayerApplier(await realpath(root), opts);
  const extract = tarExtract();
  // The pipeline's outcome is kept as a value so that it is never an unhandled rejection while the
  // entries are still being applied.
  const piped: Promise<{ err: unknown } | undefined> = (
    opts.expectedDiffId === undefined
      ? pipeline(tar, extract)
      : pipeline(tar, new VerifyingStream(opts.what ?? 'layer', opts.expectedDiffId), extract)
  ).then(
    () => undefined,
    (err: unknown) => ({ err }),
  );
  let failure: unknown;
  try {
    // streamx's typings omit the async iterator its Readable has; the cast names what it yields.
    for await (const entry of extract) await applier.apply(entry as unknown as Entry);
  } catch (err) {
    failure = err;
  }
  const pipeFailure = await piped;
  // A digest mismatch explains everything that follows from it (a truncated or corrupt tar).
  if (pipeFailure !== undefined && (failure === undefined || pipeFailure.err instanceof KilnError)) failure = pipeFailure.err;
  if (failure !== undefined) {
    if (failure instanceof KilnError) throw failure;
    throw new UnpackError(`${opts.what ?? 'layer'}: ${errorText(failure)}`, { cause: failure });
  }
  applier.finish();
  return applier.stats();
}

interface DirTime {
  readonly rel: string;
  readonly atime: number;
  readonly mtime: number;
}

class LayerApplier {
  readonly #root: string;
  readonly #ignore: IgnoreList;
  readonly #ctx: RunContext | undefined;
  readonly #what: string;
  /** Resolved root-relative paths this layer created: an opaque whiteout keeps these. */
  readonly #unpacked = new Set<string>();
  /** Directory times are set last: writing their children would move them again. */
  readonly #dirTimes: DirTime[] = [];
  readonly #counts = { entries: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, whiteouts: 0, opaqueWhiteouts: 0, ignored: 0, skipped: 0, bytes: 0 };

  constructor(root: string, opts: UnpackOptions) {
    this.#root = root;
    this.#ignore = opts.ignore;
    this.#ctx = opts.ctx;
    this.#what = opts.what ?? 'layer';
  }

  stats(): UnpackStats {
    return { ...this.#counts };
  }

  async apply(entry: Entry): Promise<void> {
    this.#ctx?.signal.throwIfAborted();
    this.#counts.entries++;
    const h = entry.header as PaxHeaders;
    try {
      await this.#apply(entry, h);
      // Skipped entries still have bytes the extractor must get past before the next header.
      await drain(entry);
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new UnpackError(`${this.#what}: entry ${JSON.stringify(h.name)}: ${errorText(err)}`, { cause: err });
    }
  }

  async #apply(entry: Entry, h: PaxHeaders): Promise<void> {
    const name = cleanEntryName(h.name);
    if (name === null) throw this.#refuse(h, 'its path climbs out of the root');
    if (name === '') {
      if (h.type !== 'directory') throw this.#refuse(h, 'only a directory can stand at the root');
      return;
    }
    if (this.#ignore.isIgnored(name)) return this.#skipIgnored(h);
    // Resolve the parent through the symlinks now in the rootfs; the last component is the entry itself.
    const rel = resolveParentInRoot(this.#root, name);
    if (this.#ignore.isIgnored(rel)) return this.#skipIgnored(h);
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    const base = rel.slice(slash + 1);

    if (base === OPAQUE_WHITEOUT) {
      this.#counts.opaqueWhiteouts++;
      this.#emptyExceptUnpacked(parent);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const victim = join2(parent, base.slice(WHITEOUT_PREFIX.length));
      if (this.#ignore.isIgnored(victim)) return this.#skipIgnored(h);
      this.#counts.whiteouts++;
      this.#remove(victim);
      return;
    }

    if (parent !== '') mkdirSync(this.#host(parent), { recursive: true, mode: 0o755 });
    const host = this.#host(rel);
    switch (h.type) {
      case 'file':
      case 'contiguous-file':
        this.#clear(rel, false);
        await this.#writeFile(host, entry, h);
        this.#counts.files++;
        break;
      case 'directory':
        if (!this.#clear(rel, true)) mkdirSync(host, { mode: 0o700 });
        this.#setDirMetadata(rel, h);
        this.#counts.directories++;
        break;
      case 'symlink':
        this.#clear(rel, false);
        symlinkSync(h.linkname ?? '', host);
        lchownTo(host, h);
        lutimesSync(host, ...times(h));
        this.#counts.symlinks++;
        break;
      case 'link':
        if (!this.#hardlink(rel, h)) return;
        this.#counts.hardlinks++;
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo':
      default:
        this.#counts.skipped++;
        this.#ctx?.log.debug({ entry: h.name, type: h.type }, 'not unpacking special file');
        return;
    }
    this.#unpacked.add(rel);
  }

  /** Sets the directory times recorded while unpacking, each on the directory still at that path. */
  finish(): void {
    for (const d of this.#dirTimes.reverse()) {
      // A later entry may have replaced the directory or one of its parents (by a symlink, even):
      // re-resolve, and touch it only if the path still leads to it without following anything.
      if (resolveParentInRoot(this.#root, d.rel) !== d.rel) continue;
      const st = lstatOrNull(this.#host(d.rel));
      if (st === null || !st.isDirectory()) continue;
      lutimesSync(this.#host(d.rel), d.atime, d.mtime);
    }
  }

  #host(rel: string): string {
    return join(this.#root, rel);
  }

  #refuse(h: PaxHeaders, why: string): UnpackError {
    return new UnpackError(`${this.#what}: refusing entry ${JSON.stringify(h.name)}: ${why}`);
  }

  #skipIgnored(h: PaxHeaders): void {
    this.#counts.ignored++;
    this.#ctx?.log.debug({ entry: h.name }, 'not unpacking ignored path');
  }

  /**
   * Makes room at `rel` for a new entry: an existing directory stays if the new entry is a directory
   * too (it keeps its contents and takes the entry's metadata); anything else is removed.
   * Returns whether a directory was kept.
   */
  #clear(rel: string, keepDir: boolean): boolean {
    const st = lstatOrNull(this.#host(rel));
    if (st === null) return false;
    if (keepDir && st.isDirectory()) return true;
    this.#remove(rel);
    return false;
  }

  /** `rm -rf` of `rel`, sparing ignored paths below it (mount points must not be emptied). */
  #remove(rel: string): void {
    if (!this.#ignore.hasIgnoredUnder(rel)) {
      rmSync(this.#host(rel), { recursive: true, force: true });
      return;
    }
    const st = lstatOrNull(this.#host(rel));
    if (st === null) return;
    if (!st.isDirectory()) throw new UnpackError(`${this.#what}: cannot remove /${rel}: an ignored path lies under it`);
    for (const child of readdirSync(this.#host(rel))) {
      const childRel = join2(rel, child);
      if (!this.#ignore.isIgnored(childRel)) this.#remove(childRel);
    }
  }

  /** An opaque whiteout: everything in `dir` that this layer did not put there goes. */
  #emptyExceptUnpacked(dir: string): void {
    const st = lstatOrNull(this.#host(dir));
    if (st === null || !st.isDirectory()) return;
    for (const child of readdirSync(this.#host(dir))) {
      const childRel = join2(dir, child);
      if (this.#ignore.isIgnored(childRel)) continue;
      if (!this.#unpacked.has(childRel)) {
        this.#remove(childRel);
        continue;
      }
      const childSt = lstatOrNull(this.#host(childRel));
      if (childSt?.isDirectory() === true) this.#emptyExceptUnpacked(childRel);
    }
  }

  async #writeFile(host: string, entry: Entry, h: PaxHeaders): Promise<void> {
    const fd = openSync(host, CREATE_FILE, 0o600);
    try {
      for await (const chunk of entry) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        this.#counts.bytes += chunk.length;
      }
      // chown first: it clears setuid/setgid, which chmod then sets.
      const { uid, gid } = owner(h);
      fchownSync(fd, uid, gid);
      fchmodSync(fd, modeOf(h));
      futimesSync(fd, ...times(h));
    } finally {
      closeSync(fd);
    }
  }

  #setDirMetadata(rel: string, h: PaxHeaders): void {
    const host = this.#host(rel);
    // The path was just created or checked to be a directory (not a symlink): O_NOFOLLOW makes sure.
    const fd = openSync(host, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
    try {
      const { uid, gid } = owner(h);
      fchownSync(fd, uid, gid);
      fchmodSync(fd, modeOf(h));
    } finally {
      closeSync(fd);
    }
    const [atime, mtime] = times(h);
    this.#dirTimes.push({ rel, atime, mtime });
  }

  /**
   * A hardlink entry: the target is another path of this rootfs, named root-relative. Its parent is
   * resolved like an entry's; the target itself is linked as it is (link(2) does not follow symlinks).
   * The shared inode keeps the metadata of the entry that created it. Returns false when skipped.
   */
  #hardlink(rel: string, h: PaxHeaders): boolean {
    const targetName = cleanEntryName(h.linkname ?? '');
    if (targetName === null || targetName === '') throw this.#refuse(h, `its link target ${JSON.stringify(h.linkname)} is outside the root`);
    if (this.#ignore.isIgnored(targetName)) {
      this.#skipIgnored(h);
      return false;
    }
    const target = resolveParentInRoot(this.#root, targetName);
    if (this.#ignore.isIgnored(target)) {
      this.#skipIgnored(h);
      return false;
    }
    if (target === rel) return false;
    const st = lstatOrNull(this.#host(target));
    if (st === null) throw this.#refuse(h, `its link target ${JSON.stringify(h.linkname)} does not exist`);
    if (st.isDirectory()) throw this.#refuse(h, `its link target ${JSON.stringify(h.linkname)} is a directory`);
    this.#clear(rel, false);
    linkSync(this.#host(target), this.#host(rel));
    return true;
  }
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function modeOf(h: PaxHeaders): number {
  return (h.mode ?? 0o644) & 0o7777;
}

/** uid/gid, from the PAX records when present (they hold values too large for the octal fields). */
function owner(h: PaxHeaders): { uid: number; gid: number } {
  const paxUid = h.pax?.['uid'];
  const paxGid = h.pax?.['gid'];
  return {
    uid: paxUid !== undefined ? Number.parseInt(paxUid, 10) : (h.uid ?? 0),
    gid: paxGid !== undefined ? Number.parseInt(paxGid, 10) : (h.gid ?? 0),
  };
}

/** [atime, mtime] in seconds, with the sub-second precision of PAX records when present. */
function times(h: PaxHeaders): [number, number] {
  const paxMtime = h.pax?.['mtime'];
  const mtime = paxMtime !== undefined ? Number.parseFloat(paxMtime) : (h.mtime?.getTime() ?? 0) / 1000;
  const paxAtime = h.pax?.['atime'];
  const atime = paxAtime !== undefined ? Number.parseFloat(paxAtime) : mtime;
  return [atime, mtime];
}

function lchownTo(host: string, h: PaxHeaders): void {
  const { uid, gid } = owner(h);
  lchownSync(host, uid, gid);
}

function lstatOrNull(host: string): Stats | null {
  try {
    return lstatSync(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

async function drain(entry: Entry): Promise<void> {
  for await (const _ of entry) {
    // discard
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
