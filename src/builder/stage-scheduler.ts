// Stages built as soon as what they depend on is built, at most `jobs` at a time (--jobs). The first
// stage that fails aborts the others through their signal (their RUN processes are killed by it:
// spawn's signal), every stage is waited for before the failure is thrown, so nothing of a cancelled
// stage still runs while the build cleans up its trees.
import { KilnError, StageFailedError } from '../errors.js';

export interface StageGraph {
  /** Stages to build, dependencies first. */
  readonly order: readonly number[];
  dependsOn(index: number): readonly number[];
  label(index: number): string;
}

/** Whether two stages of `order` depend on each other in neither direction: only then can any overlap. */
export function hasIndependentStages(graph: StageGraph): boolean {
  const reach = new Map<number, Set<number>>();
  for (const i of graph.order) {
    const all = new Set<number>();
    for (const d of graph.dependsOn(i)) {
      all.add(d);
      for (const t of reach.get(d) ?? []) all.add(t);
    }
    reach.set(i, all);
  }
  const order = graph.order;
  for (let a = 0; a < order.length; a++) {
    for (let b = a + 1; b < order.length; b++) {
      const x = order[a] as number;
      const y = order[b] as number;
      if (!reach.get(y)?.has(x) && !reach.get(x)?.has(y)) return true;
    }
  }
  return false;
}

/**
 * A counting semaphore: `jobs` stages hold a slot at once; a stage waiting for its dependencies holds
 * none. With one slot, container mode's lock on `/` (executor.ts). `lend` lets one more waiter in for
 * now (the default --jobs, while a core is idle): the next release takes that slot back instead of
 * passing it on, so the count returns to `n` as stages end.
 */
export class Slots {
  #free: number;
  #lent = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  /** Stages waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }
  /** Slots lent beyond `n` and not yet taken back. */
  get lent(): number {
    return this.#lent;
  }
  /** Resolves with a slot; rejects with `signal`'s reason, holding none, if it is aborted first. */
  async acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }
  /** Lets the first waiter in beyond the count; false when nobody waits. */
  lend(): boolean {
    const next = this.#waiting.shift();
    if (next === undefined) return false;
    this.#lent++;
    next();
    return true;
  }
  release(): void {
    if (this.#lent > 0) {
      this.#lent--;
      return;
    }
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

/**
 * The default --jobs: beyond its slots, up to `max` stages at once while the machine has a core to
 * spare. `idle` resolves when it has (cpu-idle.ts samples /proc/stat), or rejects with the signal.
 */
export interface IdleBorrowing {
  readonly max: number;
  idle(signal: AbortSignal): Promise<void>;
  /** Told each time a stage starts on a lent slot (a debug line). */
  onLend?(running: number): void;
}

/**
 * Builds every stage of `graph` with `build`, which gets a signal aborted when another stage fails (or
 * `outer` is). Resolves with each stage's result once all are built; rejects, after every started
 * stage has ended, with the first failure, named by its stage.
 */
export async function buildScheduled<R>(
  graph: StageGraph,
  jobs: number,
  outer: AbortSignal,
  build: (index: number, signal: AbortSignal) => Promise<R>,
  borrowing?: IdleBorrowing,
): Promise<Map<number, R>> {
  const controller = new AbortController();
  const onOuter = (): void => controller.abort(outer.reason);
  if (outer.aborted) onOuter();
  else outer.addEventListener('abort', onOuter, { once: true });
  const base = Math.max(1, jobs);
  const slots = new Slots(base);
  // Stops the lending loop when every stage has ended (or the build failed).
  const finished = new AbortController();
  if (borrowing !== undefined && borrowing.max > base) void lendWhileIdle(slots, base, borrowing, finished.signal);
  const results = new Map<number, R>();
  const running = new Map<number, Promise<R>>();
  let first: { err: unknown } | undefined;
  for (const index of graph.order) {
    const deps = graph.dependsOn(index).flatMap((d) => {
      const p = running.get(d);
      return p === undefined ? [] : [p];
    });
    const p = (async () => {
      await Promise.all(deps);
      await slots.acquire();
      try {
        controller.signal.throwIfAborted();
        const r = await build(index, controller.signal);
        results.set(index, r);
        return r;
      } catch (err) {
        if (first === undefined && !controller.signal.aborted) {
          first = { err: err instanceof KilnError ? new StageFailedError(graph.label(index), err) : err };
          controller.abort(first.err);
        }
        throw err;
      } finally {
        slots.release();
      }
    })();
    // Observed here; the failure is reported once, below.
    p.catch(() => undefined);
    running.set(index, p);
  }
  try {
    const settled = await Promise.allSettled(running.values());
    if (first !== undefined) throw first.err;
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    return results;
  } finally {
    finished.abort();
    outer.removeEventListener('abort', onOuter);
  }
}

/**
 * While stages wait for a slot and fewer than `max` run, lets one more in each time a core has been
 * idle: stages whose RUN sleeps or waits on the network leave the cores to others, and one stage more
 * on a busy machine costs nothing but its share. Each lent slot needs a fresh idle window, so the
 * stage just let in shows in the next sample.
 */
async function lendWhileIdle(slots: Slots, base: number, borrowing: IdleBorrowing, signal: AbortSignal): Promise<void> {
  try {
    for (;;) {
      await borrowing.idle(signal);
      if (slots.waiting > 0 && base + slots.lent < borrowing.max && slots.lend()) borrowing.onLend?.(base + slots.lent);
    }
  } catch {
    // the build ended: signal aborted
  }
}
