// Whether the machine has a core to spare, from /proc/stat: the default --jobs lets one more stage
// run while it has (stage-scheduler.ts, IdleBorrowing). The kernel counts each CPU's time in ticks by
// state; idle and iowait ticks over a window, against all ticks, times the CPUs counted, are the cores
// that sat idle in it. A machine shared with other builds shows less idle, and kiln lends less.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CpuTimes {
  /** Idle and iowait ticks, summed over the CPUs. */
  readonly idle: number;
  /** All ticks, summed over the CPUs. */
  readonly total: number;
  /** The CPUs the kernel counts (its `cpuN` lines). */
  readonly cpus: number;
}

/** The aggregate `cpu` line of /proc/stat and the number of `cpuN` lines; undefined when it is not that. */
export function parseProcStat(text: string): CpuTimes | undefined {
  let times: { idle: number; total: number } | undefined;
  let cpus = 0;
  for (const line of text.split('\n')) {
    if (/^cpu\d+ /.test(line)) cpus++;
    else if (line.startsWith('cpu ')) {
      const f = line.trim().split(/\s+/).slice(1).map(Number);
      // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user.
      const counted = f.slice(0, 8);
      if (counted.length < 5 || counted.some((n) => !Number.isFinite(n))) return undefined;
      times = { idle: (counted[3] ?? 0) + (counted[4] ?? 0), total: counted.reduce((a, b) => a + b, 0) };
    }
  }
  return times === undefined || cpus === 0 ? undefined : { ...times, cpus };
}

/** Cores idle on average between two samples. */
export function idleCores(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total;
  if (total <= 0) return 0;
  return ((after.idle - before.idle) / total) * after.cpus;
}

export interface IdleWaitOptions {
  /** How long one sample lasts. */
  readonly windowMs: number;
  /** Idle cores over a window that count as a core to spare. */
  readonly threshold: number;
  readonly readStat?: () => Promise<string>;
}

/**
 * Resolves after the first window in which at least `threshold` cores were idle; rejects with the
 * signal's reason when it is aborted. Never resolves where /proc/stat cannot be read or parsed: then
 * the --jobs slots alone count.
 */
export async function waitForIdleCore(signal: AbortSignal, opts: IdleWaitOptions): Promise<void> {
  const read = opts.readStat ?? (() => readFile('/proc/stat', 'utf8'));
  const sample = async (): Promise<CpuTimes | undefined> => parseProcStat(await read().catch(() => ''));
  let before = await sample();
  for (;;) {
    await sleep(opts.windowMs, undefined, { signal });
    const after = await sample();
    if (before !== undefined && after !== undefined && idleCores(before, after) >= opts.threshold) return;
    before = after;
  }
}
