// Whether a filesystem stamps a change made right after a stat with a newer ctime, even within one
// tick of the kernel's coarse clock. Linux 6.13+ does for ext4, xfs, btrfs and tmpfs ("multigrain"
// timestamps: once ctime has been read, the next change takes a fine-grained time). Where it does,
// the snapshotter need not wait out a clock tick after each scan (snapshotter.ts).
import { closeSync, fstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes to a fresh file in `dir` (removed again) 64 times, each right after an fstat: with a coarse
 * clock nearly all of those writes land in the tick of the stat before them and leave ctime as it
 * was; a single unchanged ctime means the wait is needed. Any error answers "not known fine".
 */
export function ctimeIsFineGrained(dir: string): boolean {
  const path = join(dir, `.kiln-clock-probe-${process.pid}`);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch {
    return false;
  }
  try {
    const one = Buffer.from('x');
    for (let i = 0; i < 64; i++) {
      const before = fstatSync(fd, { bigint: true }).ctimeNs;
      writeSync(fd, one);
      if (fstatSync(fd, { bigint: true }).ctimeNs <= before) return false;
    }
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
    try {
      unlinkSync(path);
    } catch {
      // Gone already: nothing to clean.
    }
  }
}
