// kaniko's `warmer` (bin/warmer.js): pulls images into the cache directory the executor reads with
// `--cache-dir`. Like main.ts, the only place here that reads process.*.
import { existsSync } from 'node:fs';
import { CommanderError } from 'commander';
import { warmCache } from '../build/warm-cache.js';
import { describeError, KilnError } from '../errors.js';
import { createLogger, SecretMask, type Verbosity } from '../log/logger.js';
import { hostPlatform } from '../oci/platform.js';
import { normalizeGoStyleArgv } from './go-style-argv.js';
import { homeDirOrRoot } from './home-dir.js';
import { renameWarmerFlags, validateWarmerFlags, warmerCommand, warmRequestFrom, WARMER_BOOLEAN_FLAGS } from './warmer-flags.js';

/** Runs the warmer; resolves with the process exit code. */
export async function warmerMain(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const stderr = process.stderr;
  const cmd = warmerCommand()
    .exitOverride()
    .configureOutput({ writeErr: (s) => stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  try {
    cmd.parse(normalizeGoStyleArgv(renameWarmerFlags(argv.slice(2)), WARMER_BOOLEAN_FLAGS), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 1;
    throw err;
  }
  const mask = new SecretMask();
  const startedAt = Date.now();
  let log = createLogger({ verbosity: 'info', format: 'text', timestamps: false, mask, out: stderr, startedAt });
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => controller.abort(new KilnError('INTERNAL', `interrupted by ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const flags = validateWarmerFlags(cmd.opts());
    log = createLogger({ verbosity: flags.verbosity as Verbosity, format: flags.logFormat, timestamps: flags.logTimestamp, mask, out: stderr, startedAt });
    const request = warmRequestFrom(flags, {
      env,
      cwd: process.cwd(),
      homeDir: homeDirOrRoot(),
      exists: existsSync,
      hostPlatform: hostPlatform(process.arch, process.platform),
    });
    const result = await warmCache(request, { log, signal: controller.signal, mask });
    log.debug(`warmer: ${result.written} written, ${result.skipped} already cached, ${result.failed} failed`);
    return 0;
  } catch (err) {
    log.debug({ err }, 'warming failed');
    stderr.write(`Failed warming cache: ${mask.apply(describeError(err))}\n`);
    return err instanceof KilnError ? err.exitCode : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
