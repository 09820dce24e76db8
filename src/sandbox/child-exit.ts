import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { SandboxError } from '../errors.js';

/**
 * Waits for a child and maps its end to a shell-style status: the exit code, or 128+N for signal N.
 * A spawn failure (ENOENT for the launcher itself) becomes a SandboxError naming `what`.
 */
export function waitForExit(child: ChildProcess, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', (err) => reject(new SandboxError(`cannot start ${what}: ${err.message}`, { cause: err })));
    child.once('close', (code, signal) => {
      if (code !== null) resolve(code);
      else if (signal !== null) resolve(128 + (constants.signals[signal] ?? 0));
      else resolve(1);
    });
  });
}
