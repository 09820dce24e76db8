// The stage scheduler on its own: dependencies first, never more than `jobs` stages at once, and the
// first failure aborts the others, waits for them, and is named by its stage. Stages here are promises
// the test settles by hand: no clock.
import { describe, expect, it } from 'vitest';
import { KilnError, RunFailedError, StageFailedError } from '../../src/errors.js';
import { defaultJobs } from '../../src/cli/validate-flags.js';
import { buildScheduled, hasIndependentStages, Slots, type IdleBorrowing, type StageGraph } from '../../src/builder/stage-scheduler.js';

const graph = (deps: Record<number, number[]>): StageGraph => ({
  order: Object.keys(deps).map(Number),
  dependsOn: (i) => deps[i] ?? [],
  label: (i) => `s${i}`,
});

describe('stage scheduler', () => {
  it('sees independent stages only where neither depends on the other', () => {
    expect(hasIndependentStages(graph({ 0: [], 1: [0], 2: [1] }))).toBe(false);
    expect(hasIndependentStages(graph({ 0: [], 1: [], 2: [0, 1] }))).toBe(true);
    expect(hasIndependentStages(graph({ 0: [] }))).toBe(false);
  });

  it('starts a stage only after its dependencies, at most `jobs` at once', async () => {
    const g = graph({ 0: [], 1: [], 2: [], 3: [0, 1, 2] });
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await buildScheduled(g, 2, new AbortController().signal, async (i) => {
      started.push(i);
      running++;
      peak = Math.max(peak, running);
      if (i === 3) expect(started.slice(0, 3).sort()).toEqual([0, 1, 2]);
      for (let k = 0; k < 5; k++) await Promise.resolve();
      running--;
      return i * 10;
    });
    expect(peak).toBe(2);
    expect([...results.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0, 0],
      [1, 10],
      [2, 20],
      [3, 30],
    ]);
  });

  it('aborts the other stages on the first failure, waits for them, and names the failing stage', async () => {
    const g = graph({ 0: [], 1: [], 2: [0, 1] });
    let slowEnded = false;
    const p = buildScheduled(g, 2, new AbortController().signal, async (i, signal) => {
      if (i === 1) throw new RunFailedError('Dockerfile:4 RUN exit 3', 3);
      if (i === 0) {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        slowEnded = true;
        throw new KilnError('INTERNAL', 'aborted');
      }
      throw new Error('stage 2 must not start');
    });
    const err = await p.catch((e: unknown) => e);
    expect(slowEnded).toBe(true);
    expect(err).toBeInstanceOf(StageFailedError);
    expect((err as StageFailedError).message).toBe('stage s1: Dockerfile:4 RUN exit 3: failed to execute command: exit status 3');
    expect((err as StageFailedError).exitCode).toBe(3);
  });

  it('gives a slot to waiters in turn, and an aborted waiter none (container mode\'s lock on /)', async () => {
    const lock = new Slots(1);
    await lock.acquire();
    const gone = new AbortController();
    const order: string[] = [];
    const first = lock.acquire(gone.signal).then(() => order.push('aborted one got it'), (e: unknown) => order.push(`aborted: ${String(e)}`));
    const second = lock.acquire().then(() => order.push('second'));
    gone.abort('stage failed');
    await first;
    expect(order).toEqual(['aborted: stage failed']);
    lock.release();
    await second;
    expect(order).toEqual(['aborted: stage failed', 'second']);
    // The aborted waiter took no slot: a third waits until the second releases.
    let third = false;
    const t = lock.acquire().then(() => (third = true));
    await Promise.resolve();
    expect(third).toBe(false);
    lock.release();
    await t;
    expect(third).toBe(true);
    await expect(lock.acquire(gone.signal)).rejects.toBe('stage failed');
  });

  it('lends a waiter a slot beyond the count, and takes it back at the next release', async () => {
    const slots = new Slots(1);
    await slots.acquire();
    expect(slots.lend()).toBe(false);
    let second = false;
    let third = false;
    const s2 = slots.acquire().then(() => (second = true));
    const s3 = slots.acquire().then(() => (third = true));
    expect(slots.waiting).toBe(2);
    expect(slots.lend()).toBe(true);
    await s2;
    expect([second, third, slots.lent]).toEqual([true, false, 1]);
    // Two hold slots now; the first release retires the lent one, the next passes the slot on.
    slots.release();
    await Promise.resolve();
    expect([third, slots.lent]).toEqual([false, 0]);
    slots.release();
    await s3;
    expect(third).toBe(true);
  });

  it('with idle borrowing, starts one stage more each time a core is idle, up to its max', async () => {
    const g = graph({ 0: [], 1: [], 2: [], 3: [], 4: [0, 1, 2, 3] });
    const running = new Set<number>();
    let peak = 0;
    const gates = new Map<number, () => void>();
    const idleWaits: (() => void)[] = [];
    const lends: number[] = [];
    let stopped = 0;
    const borrowing: IdleBorrowing = {
      max: 3,
      idle: (signal) =>
        new Promise<void>((resolve, reject) => {
          const onAbort = (): void => {
            stopped++;
            reject(signal.reason);
          };
          idleWaits.push(() => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          });
          signal.addEventListener('abort', onAbort, { once: true });
        }),
      onLend: (n) => lends.push(n),
    };
    const tick = async (): Promise<void> => {
      for (let k = 0; k < 10; k++) await Promise.resolve();
    };
    const p = buildScheduled(
      g,
      2,
      new AbortController().signal,
      async (i) => {
        running.add(i);
        peak = Math.max(peak, running.size);
        await new Promise<void>((resolve) => gates.set(i, resolve));
        running.delete(i);
        return i;
      },
      borrowing,
    );
    await tick();
    expect([...running].sort()).toEqual([0, 1]);
    // A core was idle: stage 2 starts beside the two.
    idleWaits.shift()?.();
    await tick();
    expect([...running].sort()).toEqual([0, 1, 2]);
    // Idle again, but three is the max: stage 3 waits.
    idleWaits.shift()?.();
    await tick();
    expect([...running].sort()).toEqual([0, 1, 2]);
    // A stage ends: its slot goes back (the lent one is retired), so 3 still waits for a slot or a core.
    gates.get(0)?.();
    await tick();
    expect([...running].sort()).toEqual([1, 2]);
    gates.get(1)?.();
    await tick();
    expect([...running].sort()).toEqual([2, 3]);
    gates.get(2)?.();
    gates.get(3)?.();
    await tick();
    gates.get(4)?.();
    const results = await p;
    expect(results.size).toBe(5);
    expect(peak).toBe(3);
    expect(lends).toEqual([3]);
    // The lending loop has stopped: its last wait was aborted with the build's end.
    expect(stopped).toBe(1);
  });

  it('without an idle core, never runs more than --jobs stages', async () => {
    const g = graph({ 0: [], 1: [], 2: [], 3: [0, 1, 2] });
    let running = 0;
    let peak = 0;
    const never: IdleBorrowing = { max: 4, idle: (signal) => new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })) };
    await buildScheduled(
      g,
      2,
      new AbortController().signal,
      async () => {
        running++;
        peak = Math.max(peak, running);
        for (let k = 0; k < 5; k++) await Promise.resolve();
        running--;
      },
      never,
    );
    expect(peak).toBe(2);
  });
});

describe('the default --jobs', () => {
  it('is twice the cores, four times while a core is idle, and one core at least', () => {
    expect(defaultJobs(2)).toEqual({ jobs: 4, jobsWhenIdle: 8 });
    expect(defaultJobs(0)).toEqual({ jobs: 2, jobsWhenIdle: 4 });
  });

  it('on 2 cores starts three independent stages together, so none waits a round for a slot', async () => {
    const g = graph({ 0: [], 1: [], 2: [], 3: [0, 1, 2] });
    let running = 0;
    let peak = 0;
    await buildScheduled(g, defaultJobs(2).jobs, new AbortController().signal, async () => {
      running++;
      peak = Math.max(peak, running);
      for (let k = 0; k < 5; k++) await Promise.resolve();
      running--;
    });
    expect(peak).toBe(3);
  });
});
