// What changed between two indexes of the same rootfs, as the changes a layer must record.
// PURE: no fs, so every case is a table test.
import { W, WALK_WORDS } from '../rootfs/native-fs.js';
import type { Baseline, PackedTree } from './packed-tree.js';
import type { EntryMeta, TreeIndex } from './tree-index.js';

/** What diffTrees reads of the index before the change: a TreeIndex or the snapshotter's Baseline. */
export interface BeforeIndex {
  get(path: string): EntryMeta | undefined;
  has(path: string): boolean;
  keys(): Iterable<string>;
}

export type Change =
  /** A path that did not exist before: an entry with its current metadata. */
  | { readonly kind: 'added'; readonly path: string }
  /** A path that exists before and after but differs (content, metadata, type, target). */
  | { readonly kind: 'modified'; readonly path: string }
  /** A path (and everything under it) that is gone: one whiteout `.wh.NAME`. */
  | { readonly kind: 'deleted'; readonly path: string }
  /**
   * A directory that is not the one that was there (another inode): an opaque whiteout hides what the
   * layers below had in it; the directory and all its current contents come with it as added/modified.
   */
  | { readonly kind: 'opaque'; readonly path: string };

export interface DiffOptions {
  /**
   * Looks up a path of the whole tree after the change, when `after` holds only part of it (a scoped
   * snapshot): deletions need their parent. Default: `after` itself.
   */
  readonly lookupAfter?: (path: string) => EntryMeta | undefined;
  /**
   * Paths whose inode was swapped by kiln itself (an overlay upper merged into the rootfs): they
   * count as changed only when what a layer records differs, not their inode number or ctime.
   */
  readonly rewritten?: ReadonlySet<string>;
  /** Paths known to be changed whatever their metadata says (same metadata, other content). */
  readonly forced?: ReadonlySet<string>;
  /** `--snapshot-mode=time`: only type, mtime and link target count. */
  readonly mtimeOnly?: boolean;
  /**
   * Directories where kiln made and removed a RUN mount's stub and that the RUN itself left alone
   * (src/sandbox/mount-stubs.ts): their times and size moved by kiln's hand only (ctime cannot be put
   * back), so they count as changed only when their type, mode or owner differ.
   */
  readonly stubParents?: ReadonlySet<string>;
}

/** The changes from `before` to `after`, sorted by path (deletions and opaques before entries at a path). */
export function diffTrees(before: BeforeIndex, after: TreeIndex, opts: DiffOptions = {}): Change[] {
  const lookupAfter = opts.lookupAfter ?? ((p: string) => after.get(p));
  const rewritten = opts.rewritten;
  const forced = opts.forced;
  const stubParents = opts.stubParents;
  const differs = opts.mtimeOnly === true ? differsInTime : differsInMetadata;
  const changes: Change[] = [];
  const replacedDirs = new Set<string>();
  const changed = new Set<string>();

  for (const [path, a] of after) {
    const b = before.get(path);
    if (b === undefined) {
      changes.push({ kind: 'added', path });
      changed.add(path);
      continue;
    }
    if (a.kind === 'dir' && b.kind === 'dir' && (a.ino !== b.ino || a.dev !== b.dev || a.birthNs !== b.birthNs)) {
      replacedDirs.add(path);
      changes.push({ kind: 'opaque', path });
      changes.push({ kind: 'modified', path });
      changed.add(path);
      continue;
    }
    const changedHere =
      forced?.has(path) === true ||
      (stubParents?.has(path) === true ? differsInOwnership(a, b) : rewritten?.has(path) === true ? differsInLayer(a, b) : differs(a, b));
    if (changedHere) {
      changes.push({ kind: 'modified', path });
      changed.add(path);
    }
  }

  // Everything inside a replaced directory is recorded, changed or not: the opaque whiteout hides it.
  if (replacedDirs.size > 0) {
    for (const path of after.keys()) {
      if (changed.has(path) || !hasAncestorIn(path, replacedDirs)) continue;
      changes.push({ kind: before.has(path) ? 'modified' : 'added', path });
    }
  }

  for (const path of before.keys()) {
    if (after.has(path)) continue;
    // One whiteout for the topmost deleted path only: below a deleted directory, below a directory
    // that became something else, or below a replaced directory, the removal is already implied.
    const slash = path.lastIndexOf('/');
    if (slash >= 0) {
      const parent = lookupAfter(path.slice(0, slash));
      if (parent === undefined || parent.kind !== 'dir') continue;
      if (hasAncestorIn(path, replacedDirs)) continue;
    }
    changes.push({ kind: 'deleted', path });
  }

  return sortChanges(changes);
}

function sortChanges(changes: Change[]): Change[] {
  const rank = { deleted: 0, opaque: 1, added: 2, modified: 2 } as const;
  return changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : rank[x.kind] - rank[y.kind]));
}

/**
 * diffTrees for a whole walk against the baseline, giving the same changes (a full walk passes no
 * `rewritten`, `forced` or `lookupAfter`), without decoding the records: an unchanged path (nearly all
 * of them after a RUN) costs one Map lookup and a dozen u32 compares. Only paths the baseline holds
 * decoded (set by scoped snapshots since the last walk) are compared as EntryMeta.
 */
export function diffWalk(before: Baseline, after: PackedTree, opts: Pick<DiffOptions, 'mtimeOnly' | 'stubParents'> = {}): Change[] {
  const mtimeOnly = opts.mtimeOnly === true;
  const stubParents = opts.stubParents;
  const differs = mtimeOnly ? differsInTime : differsInMetadata;
  const base = before.packed;
  const extra = before.extra;
  const gone = before.gone;
  const aw = after.words;
  const bw = base?.words;
  const changes: Change[] = [];
  const replacedDirs = new Set<string>();
  const changed = new Set<string>();
  const n = after.size;
  // Baseline records matched by a path of the walk: the others are the deletions, found without a
  // lookup per baseline path.
  const seen = new Uint8Array(base?.size ?? 0);

  for (let i = 0; i < n; i++) {
    const path = after.pathAt(i);
    let j: number | undefined;
    let verdict: Verdict;
    const decoded = extra.size > 0 ? extra.get(path) : undefined;
    if (decoded !== undefined) {
      verdict = compareMeta(after.metaAt(i), decoded, differs);
    } else if (base !== undefined && bw !== undefined && (j = base.indexOf(path)) !== undefined && !(gone.size > 0 && gone.has(path))) {
      seen[j] = 1;
      verdict = compareRecords(aw, i, bw, j, mtimeOnly);
      if (verdict === Verdict.Link) verdict = after.linkAt(i) === base.linkAt(j) ? Verdict.Same : Verdict.Modified;
    } else {
      verdict = Verdict.Added;
    }
    if (verdict === Verdict.Modified && stubParents !== undefined && stubParents.has(path)) {
      const b = decoded ?? before.get(path);
      if (b !== undefined && !differsInOwnership(after.metaAt(i), b)) verdict = Verdict.Same;
    }
    if (verdict === Verdict.Same) continue;
    if (verdict === Verdict.Added) changes.push({ kind: 'added', path });
    else if (verdict === Verdict.Replaced) {
      replacedDirs.add(path);
      changes.push({ kind: 'opaque', path });
      changes.push({ kind: 'modified', path });
    } else changes.push({ kind: 'modified', path });
    changed.add(path);
  }

  if (replacedDirs.size > 0) {
    for (let i = 0; i < n; i++) {
      const path = after.pathAt(i);
      if (changed.has(path) || !hasAncestorIn(path, replacedDirs)) continue;
      changes.push({ kind: before.has(path) ? 'modified' : 'added', path });
    }
  }

  const deleted: string[] = [];
  if (base !== undefined) {
    for (let j = 0; j < seen.length; j++) {
      if (seen[j] === 1) continue;
      const path = base.pathAt(j);
      // Overridden paths are the extra loop's; a deleted one is not in the baseline at all.
      if ((gone.size > 0 && gone.has(path)) || (extra.size > 0 && extra.has(path))) continue;
      deleted.push(path);
    }
  }
  for (const path of extra.keys()) if (!after.has(path)) deleted.push(path);
  for (const path of deleted) {
    const slash = path.lastIndexOf('/');
    if (slash >= 0) {
      const parent = after.get(path.slice(0, slash));
      if (parent === undefined || parent.kind !== 'dir') continue;
      if (hasAncestorIn(path, replacedDirs)) continue;
    }
    changes.push({ kind: 'deleted', path });
  }
  return sortChanges(changes);
}

const enum Verdict {
  Same,
  Added,
  Modified,
  /** A directory that is another inode: opaque + modified. */
  Replaced,
  /** Same so far, both symlinks: the targets decide. */
  Link,
}

function compareMeta(a: EntryMeta, b: EntryMeta, differs: (a: EntryMeta, b: EntryMeta) => boolean): Verdict {
  if (a.kind === 'dir' && b.kind === 'dir' && (a.ino !== b.ino || a.dev !== b.dev || a.birthNs !== b.birthNs)) return Verdict.Replaced;
  return differs(a, b) ? Verdict.Modified : Verdict.Same;
}

const S_IFMT = 0o170000;

/**
 * Records `i` of `a` and `j` of `b` compared as compareMeta compares their decoded forms: a u64 field
 * is equal when both its words are, and EntryMeta's kind + mode are the st_mode word.
 */
function compareRecords(a: Uint32Array, i: number, b: Uint32Array, j: number, mtimeOnly: boolean): Verdict {
  const x = i * WALK_WORDS;
  const y = j * WALK_WORDS;
  const am = a[x + W.mode] as number;
  const bm = b[y + W.mode] as number;
  // kindOfMode folds every unknown type into 'block': compare kinds through it, as the decoded diff does.
  const sameKind = (am & S_IFMT) === (bm & S_IFMT) || kindOfType(am) === kindOfType(bm);
  if ((am & S_IFMT) === 0o040000 && (bm & S_IFMT) === 0o040000) {
    if (!same64(a, x + W.ino, b, y + W.ino) || !same64(a, x + W.dev, b, y + W.dev) || !same64(a, x + W.birth, b, y + W.birth)) return Verdict.Replaced;
  }
  if (!sameKind || !same64(a, x + W.mtime, b, y + W.mtime)) return Verdict.Modified;
  if (
    !mtimeOnly &&
    ((am & 0o7777) !== (bm & 0o7777) ||
      a[x + W.uid] !== b[y + W.uid] ||
      a[x + W.gid] !== b[y + W.gid] ||
      !same64(a, x + W.size, b, y + W.size) ||
      !same64(a, x + W.ctime, b, y + W.ctime) ||
      !same64(a, x + W.ino, b, y + W.ino) ||
      !same64(a, x + W.dev, b, y + W.dev) ||
      !same64(a, x + W.rdev, b, y + W.rdev))
  ) {
    return Verdict.Modified;
  }
  return (am & S_IFMT) === 0o120000 ? Verdict.Link : Verdict.Same;
}

function same64(a: Uint32Array, x: number, b: Uint32Array, y: number): boolean {
  return a[x] === b[y] && a[x + 1] === b[y + 1];
}

/** The type bits as tree-index.ts kindOfMode classifies them (unknown types count as block). */
function kindOfType(mode: number): number {
  const t = mode & S_IFMT;
  return t === 0o100000 || t === 0o040000 || t === 0o120000 || t === 0o010000 || t === 0o140000 || t === 0o020000 ? t : 0o060000;
}

function differsInTime(a: EntryMeta, b: EntryMeta): boolean {
  return a.kind !== b.kind || a.mtimeNs !== b.mtimeNs || a.linkTarget !== b.linkTarget;
}

function differsInMetadata(a: EntryMeta, b: EntryMeta): boolean {
  return (
    a.kind !== b.kind ||
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    a.size !== b.size ||
    a.mtimeNs !== b.mtimeNs ||
    a.ctimeNs !== b.ctimeNs ||
    a.ino !== b.ino ||
    a.dev !== b.dev ||
    a.rdev !== b.rdev ||
    a.linkTarget !== b.linkTarget
  );
}

/** What a layer entry records: type, permissions, owner, size, mtime, link target, device. */
function differsInLayer(a: EntryMeta, b: EntryMeta): boolean {
  return (
    a.kind !== b.kind ||
    a.mode !== b.mode ||
    a.uid !== b.uid ||
    a.gid !== b.gid ||
    (a.kind !== 'dir' && a.size !== b.size) ||
    a.mtimeNs !== b.mtimeNs ||
    a.rdev !== b.rdev ||
    a.linkTarget !== b.linkTarget
  );
}

/** What a stub parent's change must touch to count: its type, permissions, owner (see stubParents). */
function differsInOwnership(a: EntryMeta, b: EntryMeta): boolean {
  return a.kind !== b.kind || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.linkTarget !== b.linkTarget;
}

function hasAncestorIn(path: string, dirs: ReadonlySet<string>): boolean {
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    if (dirs.has(path.slice(0, i))) return true;
  }
  return false;
}
