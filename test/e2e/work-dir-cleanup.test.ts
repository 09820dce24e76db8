// A failed or interrupted build leaves nothing in a --work-dir the user gave: no stage trees, layers,
// downloads, mounts, nor a RUN's processes (issue 14). CI runners reuse the directory, so whatever a
// failed build leaves there adds up build after build.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR, writeContext } from '../support/executor.js';

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Runs the executor; with `signal`, sends it once the RUN has printed `marker`. */
function runExecutor(args: readonly string[], marker: string, signal?: NodeJS.Signals): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [EXECUTOR, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const watch = (b: Buffer): void => {
      out += b.toString();
      if (signal !== undefined && !sent && out.includes(marker)) {
        sent = true;
        child.kill(signal);
      }
    };
    child.stdout.on('data', watch);
    child.stderr.on('data', watch);
    child.once('error', reject);
    child.once('close', (code, sig) => resolve({ code, signal: sig, stderr: out }));
  });
}

async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String);
}

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').filter((l) => l.split(' ')[4]?.startsWith(dir) === true);
}

/** Processes whose command line holds `needle` (the RUN's, if it outlived the build). */
async function processesWith(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle)) found.push(Number(pid));
  }
  return found;
}

describe('a failed build leaves its --work-dir empty', () => {
  const images = inject('images');
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const cases: { name: string; signal?: NodeJS.Signals; run: string }[] = [
    { name: 'a RUN that fails', run: 'RUN echo kiln-wd-started && dd if=/dev/zero of=/big bs=1M count=8 && exit 3' },
    { name: 'SIGINT during a RUN', signal: 'SIGINT', run: 'RUN echo kiln-wd-started && sleep 300 # kiln-wd-sigint' },
    { name: 'SIGTERM during a RUN', signal: 'SIGTERM', run: 'RUN echo kiln-wd-started && sleep 300 # kiln-wd-sigterm' },
  ];
  for (const c of cases.flatMap((k) => (['never', 'always'] as const).map((tmpfs) => ({ ...k, tmpfs })))) {
    it(`${c.name}, stage trees ${c.tmpfs === 'always' ? 'on a tmpfs' : 'on disk'}`, async () => {
      const ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nCOPY Dockerfile /\nRUN echo one > /one\n${c.run}\n`, 'x.txt': 'x\n' });
      const workDir = await mkdtemp(join(tmpdir(), 'kiln-userwd-'));
      dirs.push(ctx, workDir);
      const r = await runExecutor(['--context', ctx, '--no-push', '--insecure-pull', '--work-dir', workDir, '--rootfs-tmpfs', c.tmpfs], 'kiln-wd-started', c.signal);
      // The RUN did start: the signal came while it ran, or it failed with its own exit code.
      expect(r.stderr).toContain('kiln-wd-started');
      if (c.signal === undefined) expect(r.code).toBe(3);
      else expect(r.code === 0 && r.signal === null).toBe(false);
      expect(await leftovers(workDir)).toEqual([]);
      expect(await mountsUnder(workDir)).toEqual([]);
      if (c.signal !== undefined) expect(await processesWith(c.signal === 'SIGINT' ? 'kiln-wd-sigint' : 'kiln-wd-sigterm')).toEqual([]);
    }, 60_000);
  }
});
