// The snapshot baseline kept in the native walk's packed form: the walk's buffer, each record's path,
// and a path -> record map built once per walk. A one-file RUN on a 100k-entry rootfs used to decode
// all 100k records into EntryMeta objects (five bigints each), diff them, then copy the whole Map as
// the next baseline; this keeps the records as they came, compares them word by word (diffWalk in
// diff.ts) and builds EntryMeta objects only for the paths a layer or a scoped snapshot asks for.
// Without the addon everything stays a Map<string, EntryMeta>, as before.
import { SnapshotError } from '../errors.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { nativeFs, walkView, W, WALK_WORDS, type WalkView } from '../rootfs/native-fs.js';
import { kindOfMode, realRoot, scanTree, type EntryMeta } from './tree-index.js';

/** A whole native walk, its records left packed. */
export class PackedTree {
  readonly words: Uint32Array;
  readonly #view: WalkView;
  readonly #paths: string[];
  readonly #index: Map<string, number>;

  constructor(buf: ArrayBuffer) {
    const view = walkView(buf);
    this.#view = view;
    this.words = view.words;
    const paths = new Array<string>(view.count);
    const index = new Map<string, number>();
    const w = view.words;
    for (let i = 0; i < view.count; i++) {
      const w0 = i * WALK_WORDS;
      const start = w[w0 + W.pathStart] as number;
      const p = view.str(start, start + (w[w0 + W.pathLen] as number));
      paths[i] = p;
      index.set(p, i);
    }
    this.#paths = paths;
    this.#index = index;
  }

  get size(): number {
    return this.#paths.length;
  }

  pathAt(i: number): string {
    return this.#paths[i] as string;
  }

  indexOf(path: string): number | undefined {
    return this.#index.get(path);
  }

  has(path: string): boolean {
    return this.#index.has(path);
  }

  get(path: string): EntryMeta | undefined {
    const i = this.#index.get(path);
    return i === undefined ? undefined : this.metaAt(i);
  }

  /** A symlink's target (undefined for anything else), as EntryMeta.linkTarget. */
  linkAt(i: number): string | undefined {
    const w = this.words;
    const w0 = i * WALK_WORDS;
    if (((w[w0 + W.mode] as number) & 0o170000) !== 0o120000) return undefined;
    const end = (w[w0 + W.pathStart] as number) + (w[w0 + W.pathLen] as number);
    return this.#view.str(end, end + (w[w0 + W.linkLen] as number));
  }

  /** Record `i` as the EntryMeta the decoded walk gives (tree-index.ts walkNative). */
  metaAt(i: number): EntryMeta {
    const w = this.words;
    const q = this.#view.quads;
    const w0 = i * WALK_WORDS;
    const q0 = w0 / 2;
    const mode = w[w0 + W.mode] as number;
    return {
      kind: kindOfMode(mode),
      mode: mode & 0o7777,
      uid: w[w0 + W.uid] as number,
      gid: w[w0 + W.gid] as number,
      size: Number(q[q0] as bigint),
      mtimeNs: q[q0 + 1] as bigint,
      ctimeNs: q[q0 + 2] as bigint,
      dev: q[q0 + 3] as bigint,
      ino: q[q0 + 4] as bigint,
      nlink: w[w0 + W.nlink] as number,
      rdev: q[q0 + 5] as bigint,
      birthNs: q[q0 + 6] as bigint,
      linkTarget: this.linkAt(i),
    };
  }
}

/** A whole-rootfs index: packed when the addon is built, else the JS reader's Map. */
export type WholeIndex = PackedTree | Map<string, EntryMeta>;

/** Walks all of `root` as scanTree does, keeping the native walk packed. */
export async function scanWhole(root: string, ignore: IgnoreList): Promise<WholeIndex> {
  const native = nativeFs();
  if (native === null) return scanTree(root, ignore, { reader: 'js' }) as Promise<Map<string, EntryMeta>>;
  let buf: ArrayBuffer;
  try {
    buf = native.walkTree(realRoot(root), '', ignore.entries.map((e) => e.slice(1)));
  } catch (err) {
    if (err instanceof SnapshotError) throw err;
    throw new SnapshotError(`cannot read /: ${(err as Error).message}`, { cause: err });
  }
  return new PackedTree(buf);
}

/**
 * The snapshotter's baseline: a whole-rootfs index plus what scoped snapshots (COPY, WORKDIR, an
 * overlay merge) changed since, so that moving it forward after a scoped snapshot touches only the
 * scope's paths, and after a walk replaces it without a copy.
 */
export class Baseline {
  /** The last walk, packed; undefined without the addon (everything is then in `extra`). */
  readonly packed: PackedTree | undefined;
  /** Paths set since the walk: they override `packed`. */
  readonly extra: Map<string, EntryMeta>;
  /** Paths of `packed` deleted since the walk (and not set again: `extra` is read first). */
  readonly gone = new Set<string>();

  private constructor(packed: PackedTree | undefined, extra: Map<string, EntryMeta>) {
    this.packed = packed;
    this.extra = extra;
  }

  /** Takes ownership of `index` (no copy): the caller must not change it afterwards. */
  static of(index: WholeIndex): Baseline {
    return index instanceof PackedTree ? new Baseline(index, new Map()) : new Baseline(undefined, index);
  }

  get(path: string): EntryMeta | undefined {
    const m = this.extra.get(path);
    if (m !== undefined || this.packed === undefined || this.gone.has(path)) return m;
    return this.packed.get(path);
  }

  has(path: string): boolean {
    return this.extra.has(path) || (this.packed !== undefined && !this.gone.has(path) && this.packed.has(path));
  }

  set(path: string, meta: EntryMeta): void {
    this.extra.set(path, meta);
  }

  delete(path: string): void {
    this.extra.delete(path);
    if (this.packed?.has(path) === true) this.gone.add(path);
  }

  /** The packed record still current for `i` (not deleted or overridden since the walk). */
  #live(i: number): boolean {
    const p = (this.packed as PackedTree).pathAt(i);
    return !(this.gone.size > 0 && this.gone.has(p)) && !(this.extra.size > 0 && this.extra.has(p));
  }

  *keys(): IterableIterator<string> {
    const packed = this.packed;
    if (packed !== undefined) {
      for (let i = 0; i < packed.size; i++) if (this.#live(i)) yield packed.pathAt(i);
    }
    yield* this.extra.keys();
  }

  /** Every entry whose link count is above 1, without decoding the others. */
  forEachHardlinked(each: (path: string, meta: EntryMeta) => void): void {
    const packed = this.packed;
    if (packed !== undefined) {
      const w = packed.words;
      for (let i = 0; i < packed.size; i++) {
        if ((w[i * WALK_WORDS + W.nlink] as number) > 1 && this.#live(i)) each(packed.pathAt(i), packed.metaAt(i));
      }
    }
    for (const [p, m] of this.extra) if (m.nlink > 1) each(p, m);
  }

  /** Everything, decoded: for callers that want a plain index (tests, debugging), not the hot path. */
  toMap(): Map<string, EntryMeta> {
    const out = new Map<string, EntryMeta>();
    for (const p of this.keys()) out.set(p, this.get(p) as EntryMeta);
    return out;
  }
}
