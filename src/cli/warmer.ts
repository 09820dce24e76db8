// kaniko's `warmer` (bin/warmer.js): pulls images into the cache directory the executor reads with
// `--cache-dir`. Like main.ts, the only place here that reads process.*.
import { existsSync } from 'node:fs';
import { warmCache } from '../builder/warm-cache.js';
import { DEFAULT_PROGRESS_INTERVAL_MS, startProgressView } from '../log/progress-view.js';
import { Transfers } from '../log/transfers.js';
import { hostPlatform } from '../oci/platform.js';
import { homeDirOrRoot } from './home-dir.js';
import { runCommand } from './run-command.js';
import { renameWarmerFlags, validateWarmerFlags, warmerCommand, warmRequestFrom, WARMER_BOOLEAN_FLAGS } from './warmer-flags.js';

/** Runs the warmer; resolves with the process exit code. */
export async function warmerMain(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runCommand({
    command: warmerCommand(),
    args: renameWarmerFlags(argv.slice(2)),
    booleanFlags: WARMER_BOOLEAN_FLAGS,
    validate: validateWarmerFlags,
    failure: 'Failed warming cache',
    failureLog: 'warming failed',
    progress: (flags) => flags.progress,
    run: async (flags, { log, signal, mask, scope, progress, live }) => {
      const request = warmRequestFrom(flags, {
        env,
        cwd: process.cwd(),
        homeDir: homeDirOrRoot(),
        exists: existsSync,
        hostPlatform: hostPlatform(process.arch, process.platform),
      });
      // The layers it downloads show progress as the executor's do (KILN_PROGRESS_INTERVAL_MS: tests).
      const transfers = new Transfers(Date.now, scope);
      const intervalMs = Number(env['KILN_PROGRESS_INTERVAL_MS'] ?? '') || DEFAULT_PROGRESS_INTERVAL_MS;
      const stopProgress = startProgressView({ mode: progress, transfers, log, live, intervalMs });
      const result = await warmCache(request, { log, signal, mask, transfers, scope, waits: request.waits }).finally(stopProgress);
      log.debug(`warmer: ${result.written} written, ${result.skipped} already cached, ${result.failed} failed`);
    },
  });
}
