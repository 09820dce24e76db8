// A lock every kiln on the machine agrees on, for decisions that read what other builds hold and then
// add to it: `--rootfs-tmpfs auto` reads the other builds' tmpfs mounts, chooses a size and mounts its
// own; six builds deciding at once would each see the others' mounts missing and each promise
// themselves the same memory. The lock is flock(2) on a file, taken through util-linux's flock(1)
// (Node has no flock, and kiln mounts with util-linux's mount already): the kernel drops it when the
// holder goes, SIGKILL included, so there is no stale lock to detect or take over. flock(1) holds it
// while its child (`cat`) waits on a pipe from us; ending the pipe, or our death, releases it.
import { spawn } from 'node:child_process';
import type { RunContext } from '../log/run-context.js';

export interface MachineLock {
  release(): Promise<void>;
}

export type LockOutcome = { readonly held: true; readonly lock: MachineLock } | { readonly held: false; readonly why: string };

/** Takes the lock on `file`, waiting at most `waitMs`. Never throws: a lock not had says why. */
export function takeMachineLock(file: string, waitMs: number, ctx: RunContext): Promise<LockOutcome> {
  return new Promise((resolve) => {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    // `echo` tells us the lock is held; `cat` holds it until its stdin (our pipe) ends.
    const child = spawn('flock', ['--exclusive', '--wait', String(seconds), file, 'sh', '-c', 'echo held && exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    const settle = (o: LockOutcome): void => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      resolve(o);
    };
    const onAbort = (): void => {
      child.kill('SIGKILL');
      settle({ held: false, why: 'interrupted' });
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (!out.includes('held\n')) return;
      settle({
        held: true,
        lock: {
          release: async () => {
            child.stdin.end();
            await exited;
          },
        },
      });
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.stdin.on('error', () => undefined); // flock gone already (timed out): nothing to release
    child.once('error', (e) => settle({ held: false, why: `flock(1) could not be run: ${e.message}` }));
    child.once('close', (code) => settle({ held: false, why: code === 1 && err.trim() === '' ? `another kiln held ${file} for ${seconds} s` : `flock ${file}: ${err.trim() || `exit ${code}`}` }));
  });
}
