// A lock every kiln on the machine agrees on, for decisions that read what other builds hold and then
// add to it: `--rootfs-tmpfs auto` reads the other builds' tmpfs mounts, chooses a size and mounts its
// own; six builds deciding at once would each see the others' mounts missing and each promise
// themselves the same memory. The lock is flock(2) on a file, taken through util-linux's flock(1)
// (Node has no flock, and kiln mounts with util-linux's mount already): the kernel drops it when the
// holder goes, SIGKILL included, so there is no stale lock to detect or take over. We open the file and
// hand flock(1) that descriptor (`flock FD`, as a shell's `exec 9>f; flock 9`): the lock belongs to the
// open file, which stays ours after flock(1) exits, so one short process per build (it was flock, sh and
// cat living through the decision: ~60-80 ms of CPU on a small build), and closing it releases the lock.
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import type { RunContext } from '../log/run-context.js';

export interface MachineLock {
  release(): Promise<void>;
}

export type LockOutcome = { readonly held: true; readonly lock: MachineLock } | { readonly held: false; readonly why: string };

/** Takes the lock on `file`, waiting at most `waitMs`. Never throws: a lock not had says why. */
export async function takeMachineLock(file: string, waitMs: number, ctx: RunContext): Promise<LockOutcome> {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000));
  let handle;
  try {
    handle = await open(file, 'a', 0o644);
  } catch (e) {
    return { held: false, why: `flock ${file}: ${(e as Error).message}` };
  }
  const fh = handle;
  const outcome = await new Promise<LockOutcome>((resolve) => {
    // flock(1) locks its fd 3, our open file, and exits: 0 once it is held.
    const child = spawn('flock', ['--exclusive', '--wait', String(seconds), '3'], { stdio: ['ignore', 'ignore', 'pipe', fh.fd] });
    let err = '';
    let settled = false;
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
    child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', (e) => settle({ held: false, why: `flock(1) could not be run: ${e.message}` }));
    child.once('close', (code) => {
      if (code === 0) {
        settle({ held: true, lock: { release: () => fh.close() } });
        return;
      }
      settle({ held: false, why: code === 1 && err.trim() === '' ? `another kiln held ${file} for ${seconds} s` : `flock ${file}: ${err.trim() || `exit ${code}`}` });
    });
  });
  // A lock not had leaves nothing open; a killed flock(1) (interrupt) may still have taken it: closing drops it.
  if (!outcome.held) await fh.close().catch(() => undefined);
  return outcome;
}
