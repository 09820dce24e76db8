// The default --jobs' idle-core test: /proc/stat's tick counts read as cores idle over a window.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { idleCores, parseProcStat, waitForIdleCore } from '../../src/builder/cpu-idle.js';

const stat = (user: number, idle: number, iowait = 0): string =>
  [`cpu  ${user} 0 0 ${idle} ${iowait} 0 0 0 0 0`, `cpu0 0 0 0 0 0 0 0 0 0 0`, `cpu1 0 0 0 0 0 0 0 0 0 0`, 'intr 1 2 3', 'ctxt 99', ''].join('\n');

describe('cpu idle', () => {
  it('reads the aggregate cpu line and counts the CPUs', () => {
    expect(parseProcStat(stat(100, 300, 20))).toEqual({ idle: 320, total: 420, cpus: 2 });
    expect(parseProcStat('intr 1 2\n')).toBeUndefined();
    expect(parseProcStat('cpu  a b c d e\ncpu0 1 2 3 4 5\n')).toBeUndefined();
    // This machine's own file parses, with as many CPUs as the kernel lists.
    const own = parseProcStat(readFileSync('/proc/stat', 'utf8'));
    expect(own?.cpus).toBe(readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d+ /.test(l)).length);
  });

  it('gives the cores idle between two samples', () => {
    const a = parseProcStat(stat(100, 100))!;
    // 50 ticks busy and 150 idle over 200 ticks on 2 CPUs: one and a half cores idle.
    expect(idleCores(a, parseProcStat(stat(150, 250))!)).toBeCloseTo(1.5);
    // Both busy: none idle; iowait counts as idle.
    expect(idleCores(a, parseProcStat(stat(300, 100))!)).toBe(0);
    expect(idleCores(a, parseProcStat(stat(100, 100, 200))!)).toBeCloseTo(2);
  });

  it('waits for the first window with a core to spare, and stops on abort', async () => {
    // Windows: both cores busy, then busy, then one core idle.
    const samples = [stat(0, 0), stat(200, 0), stat(400, 0), stat(500, 100)];
    let reads = 0;
    const readStat = async (): Promise<string> => samples[Math.min(reads++, samples.length - 1)] as string;
    await waitForIdleCore(new AbortController().signal, { windowMs: 1, threshold: 0.5, readStat });
    expect(reads).toBe(4);

    const ctl = new AbortController();
    const busy = async (): Promise<string> => stat(reads++ * 200, 0);
    const p = waitForIdleCore(ctl.signal, { windowMs: 1, threshold: 0.5, readStat: busy });
    setTimeout(() => ctl.abort(new Error('build ended')), 20);
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
  });
});
