// What changed between two indexes of the same rootfs, as the changes a layer must record.
// PURE: no fs, so every case is a table test.
import type { EntryMeta, TreeIndex } from './tree-index.js';

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
}

/** The changes from `before` to `after`, sorted by path (deletions and opaques before entries at a path). */
export function diffTrees(before: TreeIndex, after: TreeIndex, opts: DiffOptions = {}): Change[] {
  const lookupAfter = opts.lookupAfter ?? ((p: string) => after.get(p));
  const rewritten = opts.rewritten;
  const forced = opts.forced;
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
      forced?.has(path) === true || (rewritten?.has(path) === true ? differsInLayer(a, b) : differs(a, b));
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

  const rank = { deleted: 0, opaque: 1, added: 2, modified: 2 } as const;
  return changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : rank[x.kind] - rank[y.kind]));
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

function hasAncestorIn(path: string, dirs: ReadonlySet<string>): boolean {
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    if (dirs.has(path.slice(0, i))) return true;
  }
  return false;
}
