// Issue 14, item 2: six builds started at once with --rootfs-tmpfs auto promise their tmpfs mounts no
// more memory, together, than they may have. Before the decision lock (src/builder/machine-lock.ts)
// each read the others' kiln-rootfs mounts before any had mounted, and each took half of everything.
//
// Each build's `mount` (found on PATH, as kiln runs it) is a wrapper that waits 2 s before mounting:
// the window between reading the other builds' mounts and this one's appearing, a few ms on a quiet
// machine, is then wide enough that builds deciding without the lock overlap in it (and the test fails,
// as it did with the lock taken out); with the lock they decide one after another.
//
// The limit is KILN_ROOTFS_TMPFS_BUDGET_MIB, the same input to the decision as a cgroup limit (the
// tightest of MemAvailable, the cgroup's limit and the budget is what is shared out): this test cannot
// put itself under a cgroup memory limit on the shared VMs that run it (their memory cgroup belongs to
// the machinery that runs the session). The builds run in a mount and PID namespace of their own, so
// other kiln builds on the machine neither count against the budget nor see these mounts.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR, writeContext } from '../support/executor.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const BUDGET_MIB = 12 * 1024;
const BUILDS = 6;

async function memAvailableMiB(): Promise<number> {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(await readFile('/proc/meminfo', 'utf8'));
  return m?.[1] === undefined ? 0 : Number(m[1]) / 1024;
}

describe('--rootfs-tmpfs auto with several builds at once', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    // The RUN keeps each build's tmpfs mounted for a while, so the builds overlap.
    ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN sleep 4 && echo done > /done\n` });
    out = await mkdtemp(join(tmpdir(), 'kiln-tmpfs-budget-'));
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  // auto wants 8 GiB available before it considers a tmpfs at all; below that every build is on disk
  // and the test would show nothing.
  it.skipIf(process.getuid?.() !== 0)('keeps the sum of the live tmpfs limits inside the budget', async (t) => {
    if ((await memAvailableMiB()) < 9 * 1024) t.skip('under 9 GiB of memory available: auto would put every build on disk');
    const bin = join(out, 'bin');
    await mkdir(bin);
    const realMount = (await run('sh', ['-c', 'command -v mount'])).stdout.trim();
    await writeFile(join(bin, 'mount'), `#!/bin/sh\nsleep 2\nexec ${realMount} "$@"\n`, { mode: 0o755 });
    const builds = Array.from({ length: BUILDS }, (_, i) => {
      const args = ['--context', ctx, '--destination', `${registry}/e2e/tmpfs-budget:b${i}`, '--insecure', '--insecure-pull', '--rootfs-tmpfs', 'auto', '--verbosity', 'debug'];
      return `(PATH=${bin}:$PATH DOCKER_CONFIG=${out} KILN_ROOTFS_TMPFS_BUDGET_MIB=${BUDGET_MIB} ${process.execPath} ${EXECUTOR} ${args.join(' ')} > ${out}/b${i}.log 2>&1; echo $? > ${out}/b${i}.code) & pids="$pids $!"`;
    });
    // Every 50 ms, the kiln-rootfs mounts as the builds see them, until all have exited.
    const script = [
      '(while [ ! -e OUT/all-done ]; do grep " kiln-rootfs-" /proc/self/mountinfo; echo ---; sleep 0.05; done > OUT/samples) &',
      'pids=',
      ...builds,
      'wait $pids',
      'touch OUT/all-done',
      'wait',
    ]
      .join('\n')
      .replaceAll('OUT', out);
    await run('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', 'bash', '-c', script], { timeout: 240_000 });

    const logs = await Promise.all(Array.from({ length: BUILDS }, (_, i) => readFile(join(out, `b${i}.log`), 'utf8')));
    const codes = await Promise.all(Array.from({ length: BUILDS }, (_, i) => readFile(join(out, `b${i}.code`), 'utf8')));
    expect(codes.map((c) => c.trim()), logs.join('\n----\n').slice(-4000)).toEqual(Array(BUILDS).fill('0'));
    // What the mounts promised at any moment: the sum of their size= limits.
    const samples = (await readFile(join(out, 'samples'), 'utf8')).split('---\n').filter((s) => s.trim() !== '');
    const sums = samples.map((s) => [...s.matchAll(/ - tmpfs kiln-rootfs-\d+ \S*size=(\d+)k/g)].reduce((a, m) => a + Number(m[1]) * 1024, 0));
    expect(sums.length).toBeGreaterThan(10);
    expect(Math.max(...sums)).toBeGreaterThan(0);
    expect(Math.max(...sums)).toBeLessThanOrEqual(BUDGET_MIB * MiB);
    const promised = logs.map((l) => Number(/Stage filesystems on a tmpfs of up to (\d+) MiB/.exec(l)?.[1] ?? 0));
    // Someone got a tmpfs (the budget is no reason to refuse all), and someone was sent to disk.
    expect(promised.some((n) => n > 0)).toBe(true);
    expect(promised.filter((n) => n === 0).length).toBeGreaterThan(0);
    for (const l of logs.filter((x) => !/Stage filesystems on a tmpfs/.test(x))) expect(l).toMatch(/stage filesystems on disk under .*: \d+ MiB of memory available, auto wants 8192/);
  }, 300_000);
});
