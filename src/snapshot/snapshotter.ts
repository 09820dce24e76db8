// Takes a baseline index of the rootfs, and after each instruction writes what changed as a layer file
// and moves the baseline forward. Full-walk strategy: every snapshot indexes the whole rootfs.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { realpathSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeLayerFile, type FileLayer } from '../blob/layer-file.js';
import { KilnError, SnapshotError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { diffTrees } from './diff.js';
import { writeChangesTar } from './layer-tar.js';
import { scanTree, type TreeIndex } from './tree-index.js';

export interface SnapshotterOptions {
  readonly root: string;
  readonly ignore: IgnoreList;
  /** Where layer files go by default. If it lies inside the root it is ignored (container mode: /kaniko). */
  readonly workDir: string;
  readonly ctx?: RunContext;
  /** gzip level for the layers. */
  readonly level?: number;
}

/**
 * The kernel stamps ctime/mtime from a coarse clock (one jiffy: 4 ms at HZ=250, 10 ms at HZ=100), so a
 * write landing in the same tick as the scan that indexed a file could leave both stamps unchanged.
 * Waiting out a tick after each scan makes every later write carry a strictly newer stamp.
 */
const CLOCK_TICK_MS = 20;

export class Snapshotter {
  readonly #root: string;
  readonly #ignore: IgnoreList;
  readonly #workDir: string;
  readonly #ctx: RunContext | undefined;
  readonly #level: number | undefined;
  #baseline: TreeIndex | undefined;

  constructor(opts: SnapshotterOptions) {
    this.#root = realpathSync(opts.root);
    this.#workDir = resolve(opts.workDir);
    const inside = relative(this.#root, this.#workDir);
    const workDirInRoot = inside !== '' && !inside.startsWith(`..${sep}`) && inside !== '..' && !isAbsolute(inside);
    // Never snapshot our own layer files, nor whiteout the work dir when it lies in the rootfs.
    this.#ignore = workDirInRoot ? opts.ignore.with([inside]) : opts.ignore;
    this.#ctx = opts.ctx;
    this.#level = opts.level;
  }

  /** Indexes the rootfs as it is now: the next snapshot records changes from here. */
  async init(): Promise<void> {
    this.#baseline = await scanTree(this.#root, this.#ignore);
    await sleep(CLOCK_TICK_MS);
  }

  /** The current baseline (after `init`). */
  get baseline(): TreeIndex {
    if (this.#baseline === undefined) throw new SnapshotError('snapshotter used before init()');
    return this.#baseline;
  }

  /**
   * Writes the changes since the baseline as a gzip layer at `layerPath` (relative to the work dir if
   * not absolute) and makes the current state the baseline. Returns null, writing nothing, when nothing
   * changed.
   */
  async snapshot(layerPath: string): Promise<FileLayer | null> {
    const before = this.baseline;
    this.#ctx?.signal.throwIfAborted();
    const started = Date.now();
    const after = await scanTree(this.#root, this.#ignore);
    await sleep(CLOCK_TICK_MS);
    const changes = diffTrees(before, after);
    this.#ctx?.log.debug({ entries: after.size, changes: changes.length, ms: Date.now() - started }, 'scanned rootfs for changes');
    if (changes.length === 0) {
      this.#baseline = after;
      return null;
    }
    const path = resolve(this.#workDir, layerPath);
    let layer: FileLayer;
    try {
      layer = await writeLayerFile(writeChangesTar(this.#root, changes, after), path, this.#level === undefined ? {} : { level: this.#level });
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new SnapshotError(`writing layer ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.#baseline = after;
    return layer;
  }
}
