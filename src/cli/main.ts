// The executor's entry point: the only place that reads process.*. Builds dependencies once
// (logger, abort signal, secret mask) and hands them down.
// First: zod's setting, before any module that builds a schema is evaluated.
import './zod-jitless.js';
import { existsSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { runBuild } from '../builder/executor.js';
import { DEFAULT_PROGRESS_INTERVAL_MS, startProgressView } from '../log/progress-view.js';
import { Transfers } from '../log/transfers.js';
import { hostPlatform } from '../oci/platform.js';
import { renameDeprecatedFlags } from './deprecated-flags.js';
import { executorCommand, BOOLEAN_FLAGS } from './executor-flags.js';
import { homeDirOrRoot } from './home-dir.js';
import { redactedTitle } from './process-title.js';
import { buildRequestFrom, validateFlags, type Environment } from './validate-flags.js';
import { runCommand } from './run-command.js';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the executor; resolves with the process exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  // Before anything else runs: a RUN may read /proc/<kiln>/cmdline (process-title.ts).
  process.title = redactedTitle('executor', argv.slice(2));
  const renamed = renameDeprecatedFlags(argv.slice(2));
  return runCommand({
    command: executorCommand(),
    args: renamed.args,
    booleanFlags: BOOLEAN_FLAGS,
    validate: validateFlags,
    failure: 'error building image',
    failureLog: 'build failed',
    progress: (flags) => flags.progress,
    run: async (flags, { log, signal, mask, scope, progress, live }) => {
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
        cores: availableParallelism(),
      };
      const request = await buildRequestFrom(flags, environment);
      // Every process of a container starts with umask 0022 (runc sets it; BuildKit's RUN and docker
      // build's get it), whatever the shell that started kiln had: RUN inherits it from here.
      process.umask(0o022);
      const transfers = new Transfers(Date.now, scope);
      // KILN_PROGRESS_INTERVAL_MS: how often plain and json progress report (tests shorten it).
      const intervalMs = Number(env['KILN_PROGRESS_INTERVAL_MS'] ?? '') || DEFAULT_PROGRESS_INTERVAL_MS;
      const stopProgress = startProgressView({ mode: progress, transfers, log, live, intervalMs });
      try {
        await runBuild(request, {
          log,
          signal,
          mask,
          scope,
          transfers,
          // On a terminal, RUN's output is written above the live progress lines too.
          stdout: live !== undefined && process.stdout.isTTY ? live.wrap(process.stdout) : process.stdout,
          stderr: live !== undefined ? live.wrap(process.stderr) : process.stderr,
          hostPath: env['PATH'],
          waits: request.waits,
          archiveLimits: request.archiveLimits,
        });
      } finally {
        stopProgress();
      }
    },
  });
}

// The warmer shares the executor's bundle (bin/warmer.js asks for this export).
export { warmerMain } from './warmer.js';
