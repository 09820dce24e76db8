// Applies one layer tar onto an existing root directory the way docker and containerd do: entries are
// created with their recorded mode, owner and times, whiteouts delete what lower layers put there, and
// an entry replaces whatever of another type stood at its path.
//
// Safety: no entry ever touches anything outside the root.
// - A name (or hardlink target) whose `..` climbs above the root is refused with an EntryRefusedError
//   naming the entry, as docker's archive package does: a layer written by a sane tool never has one.
// - Symlinks already in the rootfs (from lower layers or earlier entries) are followed the way
//   securejoin follows them, as if the root were `/`: `lib -> /usr/lib` then `lib/x` writes
//   `<root>/usr/lib/x`, and a link pointing "outside" is clamped inside. Only the parent of an entry is
//   resolved; the entry itself is replaced, never written through (files are opened O_NOFOLLOW|O_EXCL).
// - With `within` (an archive extracted into a directory of the rootfs, as ADD does), names and
//   hardlink targets are taken relative to that directory, and an entry whose `..` climbs out of it, or
//   whose parent resolves outside it through a symlink, is refused: docker's archive.Untar "breakout".
//   Symlinks are still followed as if the root were `/`; `within` only bounds where entries land.
// - This assumes nothing else modifies the rootfs while a layer is applied.
//
// Applied as docker does: regular files, directories, symlinks, hardlinks (whose header metadata is
// applied to the shared inode, as docker's archive package does), FIFOs (through the native addon's
// mkfifo), and the `security.capability` xattr of files and hardlinks (PAX `SCHILY.xattr.`, binary,
// set after the chown that would clear it). Not applied: character and block devices (a build cannot
// create them without CAP_MKNOD on a real device cgroup, and images never need them: /dev is the
// runtime's), other xattrs, and unknown entry types (tar has no socket type). Each skip is logged at
// debug level; without the addon, FIFOs and capabilities are skipped too. Metadata of the root
// directory itself (`./` entries) is left alone: in container mode the root is `/`.
//
// Speed (docs/snapshots.md has the numbers): a layer is tens of thousands of tiny operations, so
// - the per-entry syscalls are synchronous (a thread-pool round trip for each made unpacking ten times
//   slower than GNU tar), and entries are applied while the chunk that holds them is parsed
//   (tar-reader.ts), with no stream or promise per entry; file bytes still stream with backpressure;
// - parents resolved through the rootfs are cached (see `#parents`), so an entry costs no lstat of its
//   ancestors, and entries are created first and only checked on EEXIST.
import {
  chmodSync,
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
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { KilnError, UnpackError } from '../errors.js';
import type { ArchiveLimits, RunContext } from '../log/run-context.js';
import type { Digest } from '../oci/digest.js';
import type { IgnoreList } from './ignore-list.js';
import { nativeFs, type NativeFs } from './native-fs.js';
import { CAPABILITY_XATTR, XATTR_PAX_PREFIX } from './pax-records.js';
import { cleanEntryName, resolveInRoot, resolveParentInRoot } from './root-path.js';
import { linkTargetProblem, pathLimitProblem, shortenLongRuns, shortName } from './name-limits.js';
import type { TarEntrySink, TarHeader } from './tar-reader.js';
import { OPAQUE_WHITEOUT, WHITEOUT_PREFIX } from './whiteout.js';

export interface UnpackOptions {
  readonly ignore: IgnoreList;
  readonly ctx?: RunContext;
  /** When given, the uncompressed stream must hash to it or the unpack fails with DigestMismatchError. */
  readonly expectedDiffId?: Digest;
  /** How messages name the layer (e.g. its digest). */
  readonly what?: string;
  /** The addon for FIFOs and capabilities; default: the built one. `null` applies neither (tests). */
  readonly native?: NativeFs | null;
  /** Whether `.wh.` entries delete (a layer: default) or are plain files (an archive such as a build context). */
  readonly whiteouts?: boolean;
  /** Owner of every entry instead of the recorded one (an archive unpacked by a user who cannot chown, `ADD --chown`). */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /**
   * A root-relative directory, already resolved (no symlink on its path, e.g. by `resolveInRoot`),
   * that the tar is extracted into like `tar -x -C`: names and hardlink targets are relative to it and
   * every entry must land strictly under it (see the module comment). An entry naming the directory
   * itself (`./`) leaves it as it is. Default: the root, whose own `./` entry must be a directory.
   */
  readonly within?: string;
  /** Told each root-relative path the layer writes or deletes (an opaque whiteout: its directory). */
  readonly onPath?: (rel: string) => void;
  /** Apply the entries on a worker thread where one can (a large layer: unpack-worker.ts). */
  readonly offThread?: boolean;
  /** An archive from outside (a context, an ADD file) is refused past these, counted from the headers. */
  readonly limits?: ArchiveLimits;
}

/** An entry the unpacker will not apply because it would land outside the root (or `within`). */
export class EntryRefusedError extends UnpackError {
  /** The entry's name as the tar records it. */
  readonly entry: string;
  /** Why, e.g. `its path climbs out of the root`. */
  readonly reason: string;
  constructor(what: string, entry: string, reason: string) {
    super(`${what}: refusing entry ${shortName(entry)}: ${reason}`);
    this.entry = entry;
    this.reason = reason;
  }
}

export interface UnpackStats {
  readonly entries: number;
  readonly files: number;
  readonly directories: number;
  readonly symlinks: number;
  readonly hardlinks: number;
  readonly fifos: number;
  readonly whiteouts: number;
  readonly opaqueWhiteouts: number;
  /** `security.capability` xattrs set. */
  readonly capabilities: number;
  /** Entries on the ignore list. */
  readonly ignored: number;
  /** The first of them, as the archive names it (for a caller that says what was left out). */
  readonly firstIgnored?: string;
  /** Devices and unknown types, and FIFOs without the addon: not applied (see the module comment). */
  readonly skipped: number;
  /** Bytes of regular file content written. */
  readonly bytes: number;
}

const CREATE_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
const CAPABILITY_PAX = XATTR_PAX_PREFIX + CAPABILITY_XATTR;

interface DirTime {
  readonly rel: string;
  readonly atime: number;
  readonly mtime: number;
}

/** The entry whose body is arriving: a file being written, or one whose bytes are skipped. */
type Current = { readonly kind: 'file'; readonly fd: number; readonly host: string; readonly h: TarHeader } | { readonly kind: 'skip' };

const SKIP: Current = { kind: 'skip' };

/** Applies one layer's entries as the tar reader hands them over (unpack.ts on the main thread, unpack-worker.ts on a worker). */
export class LayerApplier implements TarEntrySink {
  readonly #root: string;
  /** The root with one trailing slash (the root may be `/` itself, in container mode). */
  readonly #rootSlash: string;
  readonly #ignore: IgnoreList;
  readonly #ctx: RunContext | undefined;
  readonly #what: string;
  readonly #native: NativeFs | null;
  readonly #whiteouts: boolean;
  readonly #onPath: ((rel: string) => void) | undefined;
  readonly #owner: { readonly uid: number; readonly gid: number } | undefined;
  /** `opts.within`, or undefined for the root itself. */
  readonly #within: string | undefined;
  /** What refusals call the directory entries must stay in: `root` or `destination`. */
  readonly #scope: string;
  /** Resolved root-relative paths this layer created: an opaque whiteout keeps these. */
  readonly #unpacked = new Set<string>();
  /** Directory times are set last: writing their children would move them again. */
  readonly #dirTimes: DirTime[] = [];
  /**
   * Cleaned parent path of an entry -> that parent resolved in the rootfs, for parents that exist as
   * real directories (made or checked by this applier). A resolution passes only through directories
   * and symlinks that exist, and creating an entry never puts anything in the way of one; only
   * removing a directory or a symlink can change it, so every such removal empties the cache.
   */
  readonly #parents = new Map<string, string>();
  readonly #limits: ArchiveLimits | undefined;
  /** Body bytes the headers so far declared. */
  #declared = 0;
  #current: Current = SKIP;
  #name = '';
  #firstIgnored: string | undefined;
  readonly #counts = { entries: 0, files: 0, directories: 0, symlinks: 0, hardlinks: 0, fifos: 0, whiteouts: 0, opaqueWhiteouts: 0, capabilities: 0, ignored: 0, skipped: 0, bytes: 0 };

  constructor(root: string, opts: UnpackOptions) {
    this.#root = root;
    this.#rootSlash = root.endsWith('/') ? root : `${root}/`;
    this.#ignore = opts.ignore;
    this.#ctx = opts.ctx;
    this.#what = opts.what ?? 'layer';
    this.#native = opts.native === undefined ? nativeFs() : opts.native;
    this.#whiteouts = opts.whiteouts ?? true;
    this.#owner = opts.owner;
    this.#onPath = opts.onPath;
    this.#limits = opts.limits;
    const within = opts.within === undefined ? undefined : cleanEntryName(opts.within);
    if (within === null) throw new RangeError(`unpack: "within" climbs out of the root: ${opts.within ?? ''}`);
    this.#within = within;
    this.#scope = opts.within === undefined ? 'root' : 'destination';
  }

  /** Refuses the archive before the entry that would pass a limit is written (the header says its size). */
  #checkLimits(limits: ArchiveLimits, size: number): void {
    this.#declared += size;
    if (this.#counts.entries > limits.maxEntries) {
      throw new UnpackError(`${this.#what}: more than ${limits.maxEntries} entries (--archive-max-entries)`);
    }
    if (this.#declared > limits.maxBytes) {
      throw new UnpackError(`${this.#what}: unpacks to more than ${Math.floor(limits.maxBytes / 1024 ** 2)} MiB (--archive-max-mib)`);
    }
  }

  stats(): UnpackStats {
    return { ...this.#counts, ...(this.#firstIgnored !== undefined ? { firstIgnored: this.#firstIgnored } : {}) };
  }

  entry(recorded: TarHeader): void {
    const h = this.#owner === undefined ? recorded : { ...recorded, uid: this.#owner.uid, gid: this.#owner.gid };
    this.#counts.entries++;
    if (this.#limits !== undefined) this.#checkLimits(this.#limits, h.size);
    this.#name = h.name;
    this.#current = SKIP;
    this.#guard(() => this.#apply(h));
  }

  data(chunk: Buffer): void {
    const cur = this.#current;
    if (cur.kind !== 'file') return;
    this.#guard(() => {
      let off = 0;
      while (off < chunk.length) off += writeSync(cur.fd, chunk, off, chunk.length - off);
      this.#counts.bytes += chunk.length;
    });
  }

  end(): void {
    const cur = this.#current;
    if (cur.kind !== 'file') return;
    this.#current = SKIP;
    this.#guard(() => {
      try {
        // chown first: it clears setuid/setgid (which chmod then sets) and file capabilities.
        fchownSync(cur.fd, cur.h.uid, cur.h.gid);
        fchmodSync(cur.fd, cur.h.mode);
        this.#setCapability(cur.host, cur.h);
        futimesSync(cur.fd, cur.h.atime, cur.h.mtime);
      } finally {
        closeSync(cur.fd);
      }
    });
  }

  /** Closes the file being written when the unpack fails mid-entry. */
  abort(): void {
    const cur = this.#current;
    this.#current = SKIP;
    if (cur.kind === 'file') closeSync(cur.fd);
  }

  /** Runs one step of an entry, naming the entry in any error that is not already kiln's. */
  #guard(step: () => void): void {
    try {
      step();
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new UnpackError(`${this.#what}: entry ${shortName(this.#name)}: ${shortenLongRuns(errorText(err))}`, { cause: err });
    }
  }

  #apply(h: TarHeader): void {
    this.#ctx?.signal.throwIfAborted();
    const clean = cleanEntryName(h.name);
    if (clean === null) throw this.#refuse(h, `its path climbs out of the ${this.#scope}`);
    if (clean === '') {
      // The directory extracted into is the caller's: `./` leaves it as it is.
      if (this.#within === undefined && h.type !== 'directory') throw this.#refuse(h, 'only a directory can stand at the root');
      return;
    }
    const name = this.#within === undefined ? clean : join2(this.#within, clean);
    const tooLong = pathLimitProblem(name, this.#host(name));
    if (tooLong !== undefined) throw this.#refuse(h, tooLong);
    if (this.#ignore.isIgnored(name)) return this.#skipIgnored(h);
    // Resolve the parent through the symlinks now in the rootfs; the last component is the entry itself.
    const slash = name.lastIndexOf('/');
    const rawParent = slash < 0 ? '' : name.slice(0, slash);
    const base = name.slice(slash + 1);
    const cached = this.#parents.get(rawParent);
    const parent = cached ?? (rawParent === '' ? '' : resolveInRoot(this.#root, rawParent));
    if (!this.#holds(parent)) throw this.#refuse(h, `a symlink leads it out of the ${this.#scope}`);
    const rel = parent === '' ? base : `${parent}/${base}`;
    // Symlinks among the parents may have made the path longer than the entry's name.
    const resolvedTooLong = rel === name ? undefined : pathLimitProblem(rel, this.#host(rel));
    if (resolvedTooLong !== undefined) throw this.#refuse(h, resolvedTooLong);
    if (this.#ignore.isIgnored(rel)) return this.#skipIgnored(h);

    if (base === OPAQUE_WHITEOUT && this.#whiteouts) {
      this.#counts.opaqueWhiteouts++;
      this.#onPath?.(parent);
      this.#emptyExceptUnpacked(parent);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX) && this.#whiteouts) {
      const victim = join2(parent, base.slice(WHITEOUT_PREFIX.length));
      if (this.#ignore.isIgnored(victim)) return this.#skipIgnored(h);
      this.#counts.whiteouts++;
      this.#onPath?.(victim);
      this.#remove(victim);
      return;
    }

    if (cached === undefined) {
      if (parent !== '') mkdirSync(this.#host(parent), { recursive: true, mode: 0o755 });
      this.#parents.set(rawParent, parent);
    }
    this.#onPath?.(rel);
    const host = this.#host(rel);
    switch (h.type) {
      case 'file': {
        const fd = this.#create(rel, () => openSync(host, CREATE_FILE, 0o600));
        this.#current = { kind: 'file', fd, host, h };
        this.#counts.files++;
        break;
      }
      case 'directory':
        this.#mkdir(rel, host);
        this.#setDirMetadata(rel, h);
        this.#counts.directories++;
        break;
      case 'symlink': {
        const targetTooLong = linkTargetProblem(h.linkname);
        if (targetTooLong !== undefined) throw this.#refuse(h, targetTooLong);
        this.#create(rel, () => symlinkSync(h.linkname, host));
        lchownSync(host, h.uid, h.gid);
        lutimesSync(host, h.atime, h.mtime);
        this.#counts.symlinks++;
        break;
      }
      case 'link':
        if (!this.#hardlink(rel, h)) return;
        this.#counts.hardlinks++;
        break;
      case 'fifo': {
        const native = this.#native;
        if (native === null) return this.#skipSpecial(h);
        this.#create(rel, () => native.mkfifo(host, h.mode));
        // mkfifo's mode went through the umask; the path is the FIFO just made (chmod never opens it).
        lchownSync(host, h.uid, h.gid);
        chmodSync(host, h.mode);
        lutimesSync(host, h.atime, h.mtime);
        this.#counts.fifos++;
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'other':
        return this.#skipSpecial(h);
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
    // `rel` is clean (no `.`, `..` or empty components): concatenation is what join would give.
    return this.#rootSlash + rel;
  }

  #refuse(h: TarHeader, why: string): EntryRefusedError {
    return new EntryRefusedError(this.#what, h.name, why);
  }

  /** Whether `dir` (resolved, root-relative) is the directory entries are extracted into or lies under it. */
  #holds(dir: string): boolean {
    const w = this.#within;
    return w === undefined || w === '' || dir === w || dir.startsWith(`${w}/`);
  }

  #skipIgnored(h: TarHeader): void {
    this.#counts.ignored++;
    this.#firstIgnored ??= h.name;
    this.#ctx?.log.debug({ entry: h.name }, 'not unpacking ignored path');
  }

  #skipSpecial(h: TarHeader): void {
    this.#counts.skipped++;
    this.#ctx?.log.debug({ entry: h.name, type: h.type, typeflag: h.typeflag }, 'not unpacking special file');
  }

  /**
   * Creates the entry at `rel` with `make`; when something already stands there (EEXIST: the entry
   * was never written through it), removes it and tries once more. Most entries of a base layer
   * meet nothing, so they cost no lstat.
   */
  #create<T>(rel: string, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.#clear(rel);
    return make();
  }

  /** A directory entry: an existing directory stays (inode and contents); anything else is replaced. */
  #mkdir(rel: string, host: string): void {
    try {
      mkdirSync(host, { mode: 0o700 });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = lstatOrNull(host);
    if (st?.isDirectory() === true) return;
    this.#clear(rel);
    mkdirSync(host, { mode: 0o700 });
  }

  /** Removes what stands at `rel` so that a new entry can take its place. */
  #clear(rel: string): void {
    const st = lstatOrNull(this.#host(rel));
    if (st === null) return;
    // A file is never part of a cached parent resolution: unlink it without emptying the cache.
    if (!st.isDirectory() && !st.isSymbolicLink()) unlinkSync(this.#host(rel));
    else this.#remove(rel);
  }

  /** `rm -rf` of `rel`, sparing ignored paths below it (mount points must not be emptied). */
  #remove(rel: string): void {
    this.#parents.clear();
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

  #setDirMetadata(rel: string, h: TarHeader): void {
    const host = this.#host(rel);
    // The path was just created or checked to be a directory (not a symlink): O_NOFOLLOW makes sure.
    const fd = openSync(host, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY | fsConstants.O_NOFOLLOW);
    try {
      fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, h.mode);
    } finally {
      closeSync(fd);
    }
    this.#dirTimes.push({ rel, atime: h.atime, mtime: h.mtime });
  }

  /** Sets the entry's `security.capability` (after its chown, which clears it); other xattrs are not applied. */
  #setCapability(host: string, h: TarHeader): void {
    const pax = h.pax;
    if (pax === undefined) return;
    for (const [key, value] of pax) {
      if (!key.startsWith(XATTR_PAX_PREFIX)) continue;
      if (key !== CAPABILITY_PAX || this.#native === null) {
        this.#ctx?.log.debug({ entry: h.name, xattr: key.slice(XATTR_PAX_PREFIX.length) }, 'not applying extended attribute');
        continue;
      }
      this.#native.lsetxattr(host, CAPABILITY_XATTR, value);
      this.#counts.capabilities++;
    }
  }

  /**
   * A hardlink entry: the target is another path of this rootfs, named root-relative. Its parent is
   * resolved like an entry's; the target itself is linked as it is (link(2) does not follow symlinks).
   * As docker does, the entry's owner, mode, times and capability then apply to the shared inode
   * (owner only, when the target is a symlink); an unchanged owner is not chowned again, which would
   * clear a capability the link's entry does not repeat (GNU tar's). Returns false when skipped.
   */
  #hardlink(rel: string, h: TarHeader): boolean {
    const cleanTarget = cleanEntryName(h.linkname);
    const targetTooLong = cleanTarget === null || cleanTarget === '' ? undefined : pathLimitProblem(cleanTarget, this.#host(cleanTarget), 'its link target');
    if (targetTooLong !== undefined) throw this.#refuse(h, targetTooLong);
    const outside = `its link target ${JSON.stringify(h.linkname)} is outside the ${this.#scope}`;
    if (cleanTarget === null || cleanTarget === '') throw this.#refuse(h, outside);
    const targetName = this.#within === undefined ? cleanTarget : join2(this.#within, cleanTarget);
    if (this.#ignore.isIgnored(targetName)) {
      this.#skipIgnored(h);
      return false;
    }
    const target = resolveParentInRoot(this.#root, targetName);
    const slash = target.lastIndexOf('/');
    if (!this.#holds(slash < 0 ? '' : target.slice(0, slash))) throw this.#refuse(h, outside);
    if (this.#ignore.isIgnored(target)) {
      this.#skipIgnored(h);
      return false;
    }
    if (target === rel) return false;
    const st = lstatOrNull(this.#host(target));
    if (st === null) throw this.#refuse(h, `its link target ${JSON.stringify(h.linkname)} does not exist`);
    if (st.isDirectory()) throw this.#refuse(h, `its link target ${JSON.stringify(h.linkname)} is a directory`);
    const host = this.#host(rel);
    this.#create(rel, () => linkSync(this.#host(target), host));
    // A chown clears the inode's capability even when the owner stays the same, and GNU tar records
    // the capability on the file's entry only, not on its hardlinks': chown only to change the owner.
    if (st.uid !== h.uid || st.gid !== h.gid) lchownSync(host, h.uid, h.gid);
    if (!st.isSymbolicLink()) {
      // `host` is the regular file (or FIFO) just linked: chmod follows nothing here.
      chmodSync(host, h.mode);
      this.#setCapability(host, h);
      lutimesSync(host, h.atime, h.mtime);
    }
    return true;
  }
}

function join2(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
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

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
