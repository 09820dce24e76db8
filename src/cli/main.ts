// The executor's entry point: the only place that reads process.*. Builds dependencies once
// (logger, abort signal, secret mask) and hands them down.
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CommanderError } from 'commander';
import { runBuild } from '../build/executor.js';
import { describeError, KilnError } from '../errors.js';
import { createLogger, SecretMask, type Verbosity } from '../log/logger.js';
import { hostPlatform } from '../oci/platform.js';
import { renameDeprecatedFlags } from './deprecated-flags.js';
import { executorCommand, BOOLEAN_FLAGS } from './flags.js';
import { normalizeGoStyleArgv } from './go-style-argv.js';
import { homeDirOrRoot } from './home-dir.js';
import { buildRequestFrom, validateFlags, type Environment } from './request.js';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the executor; resolves with the process exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const stderr = process.stderr;
  const cmd = executorCommand()
    .exitOverride()
    .configureOutput({ writeErr: (s) => stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  const renamed = renameDeprecatedFlags(argv.slice(2));
  try {
    cmd.parse(normalizeGoStyleArgv(renamed.args, BOOLEAN_FLAGS), { from: 'user' });
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
    const flags = validateFlags(cmd.opts());
    log = createLogger({
      verbosity: flags.verbosity as Verbosity,
      format: flags.logFormat,
      timestamps: flags.logTimestamp,
      mask,
      out: stderr,
      startedAt,
    });
    for (const w of renamed.warnings) log.warn(w);
    const environment: Environment = {
      env,
      cwd: process.cwd(),
      homeDir: homeDirOrRoot(),
      tmpDir: tmpdir(),
      hostPlatform: hostPlatform(process.arch, process.platform),
      readStdin: () => readAll(process.stdin),
      openStdin: () => process.stdin,
      exists: existsSync,
      isDirectory: (path) => statSync(path, { throwIfNoEntry: false })?.isDirectory() === true,
      ...(process.getuid !== undefined ? { uid: process.getuid() } : {}),
      ...(process.getgid !== undefined ? { gid: process.getgid() } : {}),
    };
    const request = await buildRequestFrom(flags, environment);
    await runBuild(request, { log, signal: controller.signal, mask, stdout: process.stdout, stderr, hostPath: env['PATH'] });
    return 0;
  } catch (err) {
    log.debug({ err }, 'build failed');
    stderr.write(`error building image: ${mask.apply(describeError(err))}\n`);
    return err instanceof KilnError ? err.exitCode : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// The warmer shares the executor's bundle (bin/warmer.js asks for this export).
export { warmerMain } from './warmer.js';
