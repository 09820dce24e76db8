// The file-copying engine behind COPY and ADD: docker's destination rules, ownership and modes, and
// every write resolved inside the rootfs. Sources are already resolved and known to be inside their
// root (the context, or another stage's rootfs).
//
// Speed: a COPY of many small files is nearly all per-entry metadata work, so that work is synchronous
// (as in src/rootfs/unpack.ts): a thread-pool round trip per lstat/chown/chmod/utimes cost more than the
// syscalls. Small files are copied with one read and one write through a reused buffer and get their
// owner, mode and times on the open descriptor; large ones go through copyFile (copy_file_range, reflinks)
// off the event loop. The walk yields to the event loop every few hundred entries.
//
// Resolution: a destination directory is resolved inside the rootfs once (`mkdirAllInRootSync`, cached
// per COPY by path) and every entry below it is created at `<resolved parent>/<name>`, its last component
// never followed. A directory entry hands its own path down only once it is known to be a real directory
// (just made, or found by lstat), so nothing this COPY creates (a symlink included) is ever followed by a
// later entry, and no entry is written through a symlink. The cache needs no invalidation: it holds only
// the destination directories the sources go into, and the copy creates or replaces entries strictly
// below those, never one of their components.
import { constants as fsConstants, type Stats } from 'node:fs';
import {
  closeSync,
  chmodSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { IgnoreMatcher } from '../../context/dockerignore.js';
import { DockerfileError } from '../../errors.js';
import { mkdirAllInRootSync, type DirInRoot, type Owner } from '../../rootfs/in-root.js';
import { resolveInRoot } from '../../rootfs/root-path.js';
import type { InstructionSite } from '../handler.js';

export interface CopyRequest {
  /** Host directory the sources are relative to. */
  readonly sourceRoot: string;
  /** Source paths relative to `sourceRoot` (`''` for the root itself). */
  readonly sources: readonly string[];
  /** Whether the instruction named several sources or used a wildcard (dest must then be a directory). */
  readonly multiple: boolean;
  readonly destRoot: string;
  /** Absolute destination inside the rootfs, trailing `/` kept. */
  readonly dest: string;
  /** `preserve` keeps the source's uid/gid (copies between stages); context files become 0:0 or --chown. */
  readonly owner: Owner | 'preserve';
  readonly chmod: number | undefined;
  /**
   * Context-relative paths to leave out (.dockerignore); never asked for the sources themselves. A
   * directory answered false is entered (an excluded one may hold re-included files).
   */
  readonly excluded: (relPath: string, isDir: boolean) => boolean;
  /**
   * `--exclude` patterns, matched against each entry's path below its source (with `parents`, below
   * the pivot: the source's `parents` path joined with the path below it). Never asked for a source itself.
   */
  readonly exclude?: IgnoreMatcher;
  /**
   * `COPY --parents`: per source, its path below its pivot; the source is copied to `<dest>/<that path>`
   * (the destination is a directory), the directories on the way made with the metadata of the source's
   * own parent directories, and a source that is a symlink is copied as one.
   */
  readonly parents?: readonly string[];
  /**
   * Per source, the root-relative path it was named by (see SelectedSources.named): a file copied
   * into a directory takes that path's last component, a followed symlink its own name, not its target's.
   */
  readonly named?: readonly string[];
  readonly site: InstructionSite;
}

/** Parses `--chmod` (octal, as BuildKit accepts it). */
export function parseChmod(spec: string, site: InstructionSite): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new DockerfileError(`invalid --chmod ${JSON.stringify(spec)}: want an octal mode like 755`, site);
  return Number.parseInt(spec, 8);
}

export async function copyIntoRootfs(req: CopyRequest): Promise<void> {
  if (req.parents !== undefined) {
    await copyWithParents(req, req.parents);
    return;
  }
  const destIsDir = req.dest.endsWith('/') || isDirInRoot(req.destRoot, req.dest);
  if (req.multiple && !destIsDir) {
    throw new DockerfileError('When using COPY with more than one source file, the destination must be a directory and end with a /', req.site);
  }
  const copier = new TreeCopier(req);
  for (const [i, rel] of req.sources.entries()) {
    copier.source(rel, '');
    const srcHost = join(req.sourceRoot, rel);
    // A source naming a symlink arrives already resolved to its target when that stays inside the
    // source root (BuildKit's FollowSymlinks), and is copied under its own name (`named`); one that
    // would leave it arrives as the link itself.
    let st: Stats;
    try {
      st = lstatSync(srcHost);
    } catch (err) {
      throw new DockerfileError(`failed to compute cache key: "/${rel}": not found`, req.site, { cause: err });
    }
    // A source still a symlink here leads out of its root or to nothing. BuildKit follows a named
    // source symlink (FollowSymlinks) and fails when the target is not there; docker never copies a
    // file from outside the context, and neither do we copy a dangling link in its place.
    if (st.isSymbolicLink()) {
      const target = readlinkSync(srcHost);
      throw new DockerfileError(`failed to compute cache key: "/${rel}": not found: it is a symlink to ${JSON.stringify(target)}, which leads outside the source or to nothing`, req.site);
    }
    if (st.isDirectory()) {
      // A directory source copies its contents. A destination this copy creates is made as BuildKit's
      // copier makes it (fsutil copy.prepareTargetDir: MkdirAll(dest, 0755, chown)): 0755, owned by
      // --chown or root, never taking the source directory's mode or owner; one that exists keeps its own.
      const dest = copier.destDir(req.dest);
      await copier.tree(srcHost, rel, dest.resolved, posix.normalize(req.dest));
      continue;
    }
    const named = req.named?.[i] ?? rel;
    const target = destIsDir ? posix.join(req.dest, posix.basename(named === '' ? '/' : named)) : req.dest;
    const normal = posix.normalize(target);
    const parent = copier.destDir(posix.dirname(normal)).resolved;
    await copier.entry(srcHost, st, join2(parent, posix.basename(normal)), target, rel);
  }
}

/** `COPY --parents`: each source to `<dest>/<its path below the pivot>` (see CopyRequest.parents). */
async function copyWithParents(req: CopyRequest, keeps: readonly string[]): Promise<void> {
  const copier = new TreeCopier(req);
  const destAbs = posix.normalize(req.dest);
  const destTop = copier.destDir(destAbs);
  /** Parent directories this copy made, with the source directory whose metadata they take (applied last). */
  const made: Array<{ host: string; st: Stats }> = [];
  for (const [i, rel] of req.sources.entries()) {
    const keep = keeps[i] ?? '';
    copier.source(rel, keep);
    const srcHost = rel === '' ? req.sourceRoot : join(req.sourceRoot, rel);
    const st = lstatSync(srcHost);
    if (keep === '') {
      // The pivot itself (`x/./`): its contents, as a directory source.
      await copier.tree(srcHost, rel, destTop.resolved, destAbs);
      continue;
    }
    const parts = keep.split('/');
    const pivotRel = rel.slice(0, rel.length - keep.length).replace(/\/$/, '');
    for (let j = 1; j < parts.length; j++) {
      const sub = parts.slice(0, j).join('/');
      const dir = copier.destDir(posix.join(destAbs, sub));
      if (dir.created) made.push({ host: copier.host(dir.resolved), st: lstatSync(join(req.sourceRoot, pivotRel, sub)) });
    }
    const target = posix.join(destAbs, keep);
    const parent = copier.destDir(posix.dirname(target)).resolved;
    await copier.entry(srcHost, st, join2(parent, posix.basename(target)), target, rel);
  }
  // Deepest first, after their contents: a read-only mode would stop the writes below it.
  for (const m of made.reverse()) copier.applyMeta(m.host, m.st, false);
}

function isDirInRoot(root: string, abs: string): boolean {
  const host = join(root, resolveInRoot(root, abs.replace(/^\/+/, '')));
  try {
    return lstatSync(host).isDirectory();
  } catch {
    // Missing, or under a file: not a directory; creating the destination reports what is wrong.
    return false;
  }
}

/** `a/b` from a root-relative directory and a name, either of which may be `''`. */
function join2(dir: string, name: string): string {
  return dir === '' ? name : name === '' ? dir : `${dir}/${name}`;
}

/** Files up to this size are read and written in one go through a reused buffer (larger: copyFile). */
const SMALL_FILE = 1 << 20;
/** Entries copied between yields to the event loop (timers, signals, log flushing). */
const YIELD_EVERY = 256;
/** Create a regular file, never through an existing path (a symlink planted there included). */
const CREATE_FILE = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** One COPY request's copy: its destination-directory cache and the buffer small files go through. */
class TreeCopier {
  readonly #req: CopyRequest;
  readonly #rootSlash: string;
  readonly #createdOwner: Owner;
  /** Normalized in-rootfs destination directory -> where it resolved (see the head comment). */
  readonly #dirs = new Map<string, string>();
  #buf: Buffer | undefined;
  #sinceYield = 0;
  /** The source being copied (root-relative) and its path for --exclude matching (see `source`). */
  #srcRel = '';
  #excludeBase = '';

  constructor(req: CopyRequest) {
    this.#req = req;
    this.#rootSlash = req.destRoot.endsWith('/') ? req.destRoot : `${req.destRoot}/`;
    this.#createdOwner = req.owner === 'preserve' ? { uid: 0, gid: 0 } : req.owner;
  }

  /** Starts a source: entries below root-relative `rel` are matched against --exclude as `<base>/<path below rel>`. */
  source(rel: string, base: string): void {
    this.#srcRel = rel;
    this.#excludeBase = base;
  }

  /** An entry's path for --exclude matching (see `source`). */
  #excludePath(rel: string): string {
    const below = this.#srcRel === '' ? rel : rel.slice(this.#srcRel.length + 1);
    return join2(this.#excludeBase, below);
  }

  /** Whether an entry is left out: .dockerignore, or --exclude (a directory: unless an exception may re-include something in it). */
  #skipped(rel: string, isDir: boolean): boolean {
    if (this.#req.excluded(rel, isDir)) return true;
    const ex = this.#req.exclude;
    return ex !== undefined && ex.matches(this.#excludePath(rel)) && !(isDir && ex.hasExceptions);
  }

  /** Whether an entry itself is excluded (a directory may still be entered for exceptions). */
  #matched(rel: string): boolean {
    if (this.#req.excluded(rel, false)) return true;
    return this.#req.exclude?.matches(this.#excludePath(rel)) ?? false;
  }

  /** `mkdir -p` of a destination directory, resolved inside the root; `created` only the first time. */
  destDir(abs: string): DirInRoot {
    const key = posix.normalize(abs);
    const cached = this.#dirs.get(key);
    if (cached !== undefined) return { created: false, resolved: cached };
    const dir = mkdirAllInRootSync(this.#req.destRoot, key, this.#createdOwner);
    this.#dirs.set(key, dir.resolved);
    return dir;
  }

  /** Host path of a resolved root-relative path. */
  host(rel: string): string {
    return rel === '' ? this.#req.destRoot : this.#rootSlash + rel;
  }

  /**
   * Copies the entries of `srcDir` into the real directory at resolved root-relative `destDir`, which
   * is `shownDir` in the rootfs as the Dockerfile named it (for messages).
   */
  async tree(srcDir: string, relDir: string, destDir: string, shownDir: string): Promise<void> {
    const req = this.#req;
    const entries = readdirSync(srcDir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const ent of entries) {
      const rel = relDir === '' ? ent.name : `${relDir}/${ent.name}`;
      if (this.#skipped(rel, ent.isDirectory())) continue;
      const src = join(srcDir, ent.name);
      // A directory .dockerignore or --exclude excludes is entered only for `!` exceptions, and sent only
      // when one of them re-includes something below it (BuildKit's fsutil walker emits such parents lazily).
      if (ent.isDirectory() && this.#matched(rel) && !keepsSomething((r) => this.#matched(r), src, rel)) continue;
      const st = lstatSync(src);
      const shown = shownDir.endsWith('/') ? `${shownDir}${ent.name}` : `${shownDir}/${ent.name}`;
      await this.entry(src, st, join2(destDir, ent.name), shown, rel);
    }
  }

  /**
   * Copies one entry to resolved root-relative `dest` (its parent a real directory, its last component
   * not followed); `shown` is its in-rootfs path as the Dockerfile named it.
   */
  async entry(src: string, st: Stats, dest: string, shown: string, rel: string): Promise<void> {
    if (++this.#sinceYield >= YIELD_EVERY) {
      this.#sinceYield = 0;
      await yieldToLoop();
    }
    const host = this.host(dest);
    if (st.isDirectory()) {
      try {
        mkdirSync(host);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Only a real directory is entered; anything else in the way (a symlink too) is replaced.
        if (!lstatSync(host).isDirectory()) {
          unlinkSync(host);
          mkdirSync(host);
        }
      }
      await this.tree(src, rel, dest, shown);
      // After the children: creating them would change the times, and a read-only mode would stop them.
      this.applyMeta(host, st, false);
      return;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(src);
      this.#create(host, shown, () => symlinkSync(target, host));
      this.applyMeta(host, st, true);
    } else if (st.isFile()) {
      if (st.size <= SMALL_FILE) this.#copySmall(src, host, shown, st);
      else await this.#copyLarge(src, host, shown, st);
    } else {
      // Sockets, FIFOs and devices in a context are not copied, as with docker; what was at the
      // destination is still replaced (or refused, for a directory), as for any other file.
      this.#clearForFile(host, shown);
    }
  }

  /** Runs `make` (which creates `host` exclusively); on EEXIST clears the way once and retries. */
  #create<T>(host: string, shown: string, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.#clearForFile(host, shown);
    return make();
  }

  /** Removes what is at `host` so that a non-directory can go there; a directory is an error. */
  #clearForFile(host: string, shown: string): void {
    const existing = lstatSync(host, { throwIfNoEntry: false });
    if (existing === undefined) return;
    if (existing.isDirectory()) {
      throw new DockerfileError(`cannot copy a file onto the directory ${shown}`, this.#req.site);
    }
    unlinkSync(host);
  }

  #copySmall(src: string, host: string, shown: string, st: Stats): void {
    // Grown to the largest small file met, so a COPY of tiny files holds a tiny buffer.
    if (this.#buf === undefined || this.#buf.length < st.size) this.#buf = Buffer.allocUnsafe(Math.max(st.size, 64 << 10));
    const buf = this.#buf;
    const inFd = openSync(src, fsConstants.O_RDONLY);
    let len = 0;
    try {
      // Up to the size lstat saw, which the metadata also comes from; a file shrinking meanwhile ends early.
      while (len < st.size) {
        const n = readSync(inFd, buf, len, st.size - len, null);
        if (n === 0) break;
        len += n;
      }
    } finally {
      closeSync(inFd);
    }
    const fd = this.#create(host, shown, () => openSync(host, CREATE_FILE, 0o600));
    try {
      for (let off = 0; off < len; ) off += writeSync(fd, buf, off, len - off);
      const { uid, gid, mode } = this.#meta(st);
      // chown clears setuid/setgid, so the mode goes after it.
      fchownSync(fd, uid, gid);
      fchmodSync(fd, mode);
      futimesSync(fd, st.atime, st.mtime);
    } finally {
      closeSync(fd);
    }
  }

  async #copyLarge(src: string, host: string, shown: string, st: Stats): Promise<void> {
    // COPYFILE_EXCL opens the destination with O_EXCL, so nothing planted there is followed.
    try {
      await copyFile(src, host, fsConstants.COPYFILE_EXCL);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      this.#clearForFile(host, shown);
      await copyFile(src, host, fsConstants.COPYFILE_EXCL);
    }
    this.applyMeta(host, st, false);
  }

  #meta(st: Stats): { uid: number; gid: number; mode: number } {
    const req = this.#req;
    return {
      uid: req.owner === 'preserve' ? st.uid : req.owner.uid,
      gid: req.owner === 'preserve' ? st.gid : req.owner.gid,
      mode: req.chmod ?? st.mode & 0o7777,
    };
  }

  /** Owner, mode and times on a path this copy just made (so its last component is not a symlink it did not make). */
  applyMeta(host: string, st: Stats, isLink: boolean): void {
    const { uid, gid, mode } = this.#meta(st);
    lchownSync(host, uid, gid);
    if (isLink) {
      lutimesSync(host, st.atime, st.mtime);
      return;
    }
    // chown clears setuid/setgid, so the mode goes after it.
    chmodSync(host, mode);
    utimesSync(host, st.atime, st.mtime);
  }
}

/** Whether anything below an excluded directory is re-included by an exception (`matched` false). */
function keepsSomething(matched: (rel: string) => boolean, srcDir: string, relDir: string): boolean {
  for (const ent of readdirSync(srcDir, { withFileTypes: true })) {
    const rel = `${relDir}/${ent.name}`;
    if (!matched(rel)) return true;
    if (ent.isDirectory() && keepsSomething(matched, join(srcDir, ent.name), rel)) return true;
  }
  return false;
}
