// The executor's entry point: the only place that reads process.*. Builds dependencies once
// (logger, abort signal, secret mask) and hands them down.
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runBuild } from '../build/executor.js';
import { hostPlatform } from '../oci/platform.js';
import { renameDeprecatedFlags } from './deprecated-flags.js';
import { executorCommand, BOOLEAN_FLAGS } from './flags.js';
import { homeDirOrRoot } from './home-dir.js';
import { buildRequestFrom, validateFlags, type Environment } from './request.js';
import { runCommand } from './run-command.js';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs the executor; resolves with the process exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const renamed = renameDeprecatedFlags(argv.slice(2));
  return runCommand({
    command: executorCommand(),
    args: renamed.args,
    booleanFlags: BOOLEAN_FLAGS,
    validate: validateFlags,
    failure: 'error building image',
    failureLog: 'build failed',
    run: async (flags, { log, signal, mask }) => {
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
      await runBuild(request, { log, signal, mask, stdout: process.stdout, stderr: process.stderr, hostPath: env['PATH'] });
    },
  });
}

// The warmer shares the executor's bundle (bin/warmer.js asks for this export).
export { warmerMain } from './warmer.js';
