// Takes a baseline index of the rootfs, and after each instruction writes what changed as a layer file
// and moves the baseline forward. What is rescanned follows what is known about the change
// (change-scope.ts): a full walk after a RUN on the walk strategy; only the destination paths after
// COPY/ADD/WORKDIR; only the upper dir's paths after a RUN on an overlay (overlay-merge.ts). Both
// roads end in the same diff and the same tar writer, so the same change gives the same layer bytes.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { realpathSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LayerFileCodec } from '../blob/compression.js';
import { writeLayerFile, type FileLayer, type LayerWriting } from '../blob/layer-file.js';
import { KilnError, SnapshotError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { resolveInRoot, resolveParentInRoot } from '../rootfs/root-path.js';
import { ChangeScope } from './change-scope.js';
import { ctimeIsFineGrained } from './clock-probe.js';
import { diffTrees, diffWalk, type Change } from './diff.js';
import { writeChangesTar, type LayerTarOptions } from './layer-tar.js';
import { mergeOverlayUpper } from './overlay-merge.js';
import { Baseline, PackedTree, scanWhole } from './packed-tree.js';
import { scanScope, type EntryMeta, type TreeIndex } from './tree-index.js';

/**
 * kaniko's `--snapshot-mode`. `time`: a path changed when its type, mtime or link target did (kaniko:
 * mtime only), so a bare chmod/chown is not recorded. `redo` (kiln's default) and `full`: all of the
 * metadata, ctime included. kaniko's `full` also hashes file contents to catch a write that put the
 * mtime back; kiln's ctime catches that already (ctime cannot be set from userspace), so `full` reads
 * no file twice and equals `redo` (docs/snapshots.md).
 */
export type SnapshotMode = 'full' | 'redo' | 'time';

export interface SnapshotterOptions {
  readonly root: string;
  readonly ignore: IgnoreList;
  /** Where layer files go by default. If it lies inside the root it is ignored (container mode: /kaniko). */
  readonly workDir: string;
  readonly ctx?: RunContext;
  /** How layers are compressed (default: gzip). */
  readonly codec?: LayerFileCodec;
  readonly mode?: SnapshotMode;
  /** `--reproducible`: every mtime in the layers is the epoch. */
  readonly reproducible?: boolean;
  /**
   * The root holds only what COPY wrote over a base image that is not unpacked (a deferred stage): a
   * layer gets only the entries strictly inside the marked paths, never those paths nor their parents.
   * Their type and metadata are the base's, unknown here, and a layer naming them would replace them
   * (an entry `lib/` replaces a base's `lib -> usr/lib`); whoever applies the layer resolves them in
   * its own tree and creates missing ones, as it does for any entry whose parent it lacks.
   */
  readonly delta?: boolean;
  /** Told about each layer file as its write starts (early-uploads.ts follows it to the registry). */
  readonly onLayerWriting?: ((writing: LayerWriting) => void) | undefined;
}

/**
 * The kernel stamps ctime/mtime from a coarse clock (one jiffy: 4 ms at HZ=250, 10 ms at HZ=100), so a
 * write landing in the same tick as the scan that indexed a file could leave both stamps unchanged.
 * Waiting out a tick after each scan makes every later write carry a strictly newer stamp. Not needed
 * where the filesystem gives a change after a stat a newer ctime anyway (clock-probe.ts): init probes.
 */
const CLOCK_TICK_MS = 20;

export class Snapshotter {
  readonly #root: string;
  readonly #ignore: IgnoreList;
  readonly #workDir: string;
  readonly #ctx: RunContext | undefined;
  readonly #codec: LayerFileCodec | undefined;
  readonly #mode: SnapshotMode;
  readonly #tar: LayerTarOptions;
  #baseline: Baseline | undefined;
  #scope = new ChangeScope();
  /** CLOCK_TICK_MS, or 0 where the rootfs's filesystem has fine-grained ctimes (probed by init). */
  #tickMs = CLOCK_TICK_MS;
  readonly #delta: boolean;
  readonly #onLayerWriting: ((writing: LayerWriting) => void) | undefined;
  /** Delta mode: the marked paths (rootfs-relative) whose insides the next layer may hold. */
  #insideOf = new Set<string>();

  constructor(opts: SnapshotterOptions) {
    this.#root = realpathSync(opts.root);
    this.#workDir = resolve(opts.workDir);
    const inside = relative(this.#root, this.#workDir);
    const workDirInRoot = inside !== '' && !inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside);
    // Never snapshot our own layer files, nor whiteout the work dir when it lies in the rootfs.
    this.#ignore = workDirInRoot ? opts.ignore.with([inside]) : opts.ignore;
    this.#ctx = opts.ctx;
    this.#codec = opts.codec;
    this.#mode = opts.mode ?? 'redo';
    this.#tar = { reproducible: opts.reproducible ?? false };
    this.#delta = opts.delta ?? false;
    this.#onLayerWriting = opts.onLayerWriting;
  }

  /** Indexes the rootfs as it is now: the next snapshot records changes from here. */
  async init(): Promise<void> {
    // Probed before the scan: the probe's file is gone by the time the baseline is read.
    this.#tickMs = ctimeIsFineGrained(this.#root) ? 0 : CLOCK_TICK_MS;
    this.#baseline = Baseline.of(await scanWhole(this.#root, this.#ignore));
    this.#scope = new ChangeScope();
    if (this.#tickMs > 0) await sleep(this.#tickMs);
  }

  /**
   * Re-reads the whole rootfs as the baseline, dropping what was marked: after something outside the
   * instructions changed it (a cached layer applied), so the next snapshot does not record that again.
   */
  async rebase(): Promise<void> {
    this.#baseline = Baseline.of(await scanWhole(this.#root, this.#ignore));
    this.#scope = new ChangeScope();
    this.#insideOf = new Set();
    if (this.#tickMs > 0) await sleep(this.#tickMs);
  }

  /**
   * `rebase` for a known set of root-relative paths (what a cached layer wrote or deleted): only they,
   * what lies under them and their ancestors are rescanned, as after a COPY, but no layer is written.
   */
  async rebasePaths(rels: Iterable<string>): Promise<void> {
    const before = this.#base();
    const scope = new ChangeScope();
    for (const rel of rels) scope.addTree(rel);
    const scoped = scope.all ? 'walk' : this.#scopedDiff(before, scope);
    if (scoped === 'walk') return this.rebase();
    scoped.commit();
    this.#scope = new ChangeScope();
    this.#insideOf = new Set();
    if (this.#tickMs > 0) await sleep(this.#tickMs);
  }

  /** The current baseline (after `init`), decoded: a copy, for tests and debugging. */
  get baseline(): TreeIndex {
    return this.#base().toMap();
  }

  #base(): Baseline {
    if (this.#baseline === undefined) throw new SnapshotError('snapshotter used before init()');
    return this.#baseline;
  }

  /** Something changed, anywhere: the next snapshot walks the whole rootfs. */
  markAll(): void {
    this.#scope.all = true;
    this.#scope.known = true;
  }

  /**
   * Only these absolute in-rootfs paths (and what lies under them) changed, plus their parent
   * directories' own metadata. Symlinks in their parents are resolved inside the rootfs.
   */
  markPaths(paths: readonly string[]): void {
    for (const p of paths) {
      // The path itself (a symlink replaced, say) and what it leads to (a COPY into a linked dir).
      this.#scope.addTree(this.#rel(p));
      const target = resolveInRoot(this.#root, p.replace(/^\/+/, ''));
      this.#scope.addTree(target);
      if (this.#delta) this.#insideOf.add(target);
    }
  }

  /** These paths may have changed themselves (not what lies under them): e.g. a RUN's work dir. */
  markEntries(paths: readonly string[]): void {
    for (const p of paths) this.#scope.addEntry(this.#rel(p));
  }

  /**
   * Root-relative directories where kiln made and removed a RUN mount's stub and that the RUN left
   * alone (src/sandbox/mount-stubs.ts): the next snapshot does not count kiln's own stamps on them.
   */
  markStubParents(rels: readonly string[]): void {
    for (const rel of rels) this.#scope.stubParents.add(rel);
  }

  /**
   * Moves a RUN's overlay upper dir into the rootfs and records its paths as the change: the cost is
   * that of the upper dir, whatever the size of the rootfs. The upper dir is consumed.
   */
  async mergeUpper(upper: string): Promise<void> {
    this.#scope.known = true;
    await mergeOverlayUpper(this.#root, upper, this.#ignore, this.#scope);
  }

  #rel(p: string): string {
    return resolveParentInRoot(this.#root, p.replace(/^\/+/, '').replace(/\/+$/, ''));
  }

  /**
   * Writes the changes since the baseline as a gzip layer at `layerPath` (relative to the work dir if
   * not absolute) and makes the current state the baseline. Returns null, writing nothing, when nothing
   * changed.
   */
  async snapshot(layerPath: string): Promise<FileLayer | null> {
    const before = this.#base();
    this.#ctx?.signal.throwIfAborted();
    const started = Date.now();
    const scope = this.#scope;
    this.#scope = new ChangeScope();
    const insideOf = this.#insideOf;
    this.#insideOf = new Set();
    let changes: Change[];
    let after: Pick<TreeIndex, 'get'>;
    let commit: () => void;
    if (scope.all || !scope.known) {
      const full = await scanWhole(this.#root, this.#ignore);
      const opts = { ...this.#diffOptions(), stubParents: scope.stubParents };
      changes = full instanceof PackedTree ? diffWalk(before, full, opts) : diffTrees(before, full, opts);
      after = full;
      commit = () => {
        // The walk is the new baseline as it is: nothing else holds it, so no copy.
        this.#baseline = Baseline.of(full);
      };
    } else if (scope.empty) {
      return null;
    } else {
      const scoped = this.#scopedDiff(before, scope);
      if (scoped === 'walk') {
        this.#scope = scope;
        scope.all = true;
        return this.snapshot(layerPath);
      }
      ({ changes, after, commit } = scoped);
    }
    // The clock tick is waited out from the end of the scan, while the layer is written, not after it:
    // what matters is that the next instruction's writes come a tick after the scan read the stamps.
    const within = this.#delta ? (p: string) => isStrictlyInside(p, insideOf) : undefined;
    if (within !== undefined) changes = changes.filter((c) => within(c.path));
    const scanned = Date.now();
    this.#ctx?.log.debug({ scoped: scope.known && !scope.all, changes: changes.length, ms: scanned - started }, 'scanned rootfs for changes');
    if (changes.length === 0) {
      if (this.#tickMs > 0) await sleep(this.#tickMs);
      commit();
      return null;
    }
    const path = resolve(this.#workDir, layerPath);
    let layer: FileLayer;
    try {
      layer = await writeLayerFile(writeChangesTar(this.#root, changes, after, within === undefined ? this.#tar : { ...this.#tar, within }), path, {
        ...(this.#codec !== undefined ? { codec: this.#codec } : {}),
        ...(this.#onLayerWriting !== undefined ? { onWriting: this.#onLayerWriting } : {}),
      });
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new SnapshotError(`writing layer ${path}: ${(err as Error).message}`, { cause: err });
    }
    const left = this.#tickMs - (Date.now() - scanned);
    if (left > 0) await sleep(left);
    commit();
    return layer;
  }

  #diffOptions(): { mtimeOnly: boolean } {
    return { mtimeOnly: this.#mode === 'time' };
  }

  /** Rescans only the scope's paths and diffs them against their part of the baseline. */
  #scopedDiff(before: Baseline, scope: ChangeScope): { changes: Change[]; after: Pick<TreeIndex, 'get'>; commit: () => void } | 'walk' {
    const afterSub = new Map<string, EntryMeta>();
    const entries = [...scope.entries].filter((e) => !scope.coveredByTree(e));
    scanScope(this.#root, this.#ignore, [], entries, afterSub);
    // A directory that is not the one indexed (another inode) brings children the scope cannot name.
    for (const e of entries) {
      const a = afterSub.get(e);
      const b = before.get(e);
      if (a?.kind === 'dir' && b?.kind === 'dir' && (a.ino !== b.ino || a.birthNs !== b.birthNs) && !scope.rewritten.has(e)) scope.trees.add(e);
    }
    const trees = [...scope.trees].filter((t) => !hasAncestorIn(t, scope.trees));
    for (const t of trees) afterSub.delete(t);
    scanScope(this.#root, this.#ignore, trees, [], afterSub);

    const beforeSub = new Map<string, EntryMeta>();
    for (const e of entries) {
      const m = before.get(e);
      if (m !== undefined) beforeSub.set(e, m);
    }
    const dirTrees: string[] = [];
    for (const t of trees) {
      const m = before.get(t);
      if (m === undefined) continue;
      beforeSub.set(t, m);
      if (m.kind === 'dir') dirTrees.push(`${t}/`);
    }
    if (dirTrees.length > 0) {
      // Paths only: only those under a tree are decoded.
      for (const p of before.keys()) {
        for (const prefix of dirTrees) {
          if (p.startsWith(prefix)) {
            beforeSub.set(p, before.get(p) as EntryMeta);
            break;
          }
        }
      }
    }
    // A symlink that was already inside a copied-to tree may have been written through (COPY and ADD
    // resolve destinations inside the rootfs, as BuildKit does): where it led is unknown, so walk.
    if (scope.rewritten.size === 0) {
      const roots = new Set(trees);
      for (const [p, m] of beforeSub) {
        if (m.kind === 'symlink' && !roots.has(p) && afterSub.get(p)?.linkTarget === m.linkTarget) return 'walk';
      }
    }
    // Other paths of an inode whose link count or content changed (a hardlinked file rewritten in
    // place): a walk would see their ctime move, so the scope must include them too.
    const inodes = new Set<string>();
    for (const m of beforeSub.values()) if (m.kind === 'file' && m.nlink > 1) inodes.add(`${m.dev}:${m.ino}`);
    if (inodes.size > 0) {
      const extra: string[] = [];
      before.forEachHardlinked((p, m) => {
        if (!beforeSub.has(p) && inodes.has(`${m.dev}:${m.ino}`)) extra.push(p);
      });
      scanScope(this.#root, this.#ignore, [], extra, afterSub);
      for (const p of extra) beforeSub.set(p, before.get(p) as EntryMeta);
    }

    const covered = new ChangeScope();
    for (const t of trees) covered.trees.add(t);
    const lookupAfter = (p: string): EntryMeta | undefined => afterSub.get(p) ?? (beforeSub.has(p) || covered.coveredByTree(p) ? undefined : before.get(p));
    const changes = diffTrees(beforeSub, afterSub, { lookupAfter, rewritten: scope.rewritten, forced: scope.forced, stubParents: scope.stubParents, ...this.#diffOptions() });
    const commit = (): void => {
      for (const p of beforeSub.keys()) if (!afterSub.has(p)) before.delete(p);
      for (const [p, m] of afterSub) before.set(p, m);
    };
    return { changes, after: { get: lookupAfter }, commit };
  }
}

function isStrictlyInside(path: string, dirs: ReadonlySet<string>): boolean {
  if (dirs.has('')) return path !== '';
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    if (dirs.has(path.slice(0, i))) return true;
  }
  return false;
}

function hasAncestorIn(path: string, set: ReadonlySet<string>): boolean {
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    if (set.has(path.slice(0, i))) return true;
  }
  return false;
}
