// What the executor and the warmer do around their work alike: parse argv (Go's `--flag=bool` forms),
// a logger that starts at info and is rebuilt from the flags, an abort signal for SIGINT/SIGTERM, a
// secret mask, and the one failure line on stderr with the exit code.
import { CommanderError, type Command } from 'commander';
import { describeError, KilnError, UsageError } from '../errors.js';
import { LogScope } from '../log/log-scope.js';
import { createLogger, SecretMask, type LogFormat, type Logger, type Verbosity } from '../log/logger.js';
import { LiveLines, progressMode, type ProgressMode } from '../log/progress-view.js';
import { normalizeGoStyleArgv } from './go-style-argv.js';
import { asksForVersion, versionText } from './version.js';

export interface CommandRun {
  readonly log: Logger;
  readonly signal: AbortSignal;
  readonly mask: SecretMask;
  /** The stage and step the JSON log lines name (the build sets it). */
  readonly scope: LogScope;
  /** How transfers are shown (`--progress`, the terminal and the log format). */
  readonly progress: ProgressMode;
  /** tty progress: the terminal's block of live lines, which every write to stderr goes around. */
  readonly live: LiveLines | undefined;
}

export interface CommandSpec<F extends { verbosity: string; logFormat: LogFormat; logTimestamp: boolean }> {
  readonly command: Command;
  /** Args after the program name, already renamed where old flag names are accepted. */
  readonly args: readonly string[];
  readonly booleanFlags: ReadonlyMap<string, boolean>;
  readonly validate: (raw: Record<string, unknown>) => F;
  /** Printed before the error on failure, e.g. `error building image`. */
  readonly failure: string;
  /** Logged at debug level with the error. */
  readonly failureLog: string;
  readonly run: (flags: F, run: CommandRun) => Promise<void>;
  /** `--progress` as given; commands without the flag show no progress. */
  readonly progress?: (flags: F) => 'auto' | 'tty' | 'plain' | 'none';
}

export async function runCommand<F extends { verbosity: string; logFormat: LogFormat; logTimestamp: boolean }>(spec: CommandSpec<F>): Promise<number> {
  const stderr = process.stderr;
  // kaniko's `executor version` subcommand (and --version): before commander, which has no subcommands here.
  if (asksForVersion(spec.args)) {
    process.stdout.write(versionText(process.version));
    return 0;
  }
  const cmd = spec.command.exitOverride().configureOutput({ writeErr: (s) => stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  try {
    cmd.parse(normalizeGoStyleArgv(spec.args, spec.booleanFlags), { from: 'user' });
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
  let out: { write(s: string): unknown } = stderr;
  try {
    const flags = spec.validate(cmd.opts());
    const scope = new LogScope();
    const progress = spec.progress === undefined ? 'none' : progressMode(spec.progress(flags), flags.logFormat, stderr.isTTY === true);
    const live = progress === 'tty' ? new LiveLines(stderr, () => stderr.columns ?? 80) : undefined;
    out = live ?? stderr;
    log = createLogger({ verbosity: flags.verbosity as Verbosity, format: flags.logFormat, timestamps: flags.logTimestamp, mask, out, startedAt, scope });
    await spec.run(flags, { log, signal: controller.signal, mask, scope, progress, live });
    return 0;
  } catch (err) {
    log.debug({ err }, spec.failureLog);
    out.write(`${(err instanceof KilnError ? err.headline : undefined) ?? spec.failure}: ${mask.apply(describeError(err))}\n`);
    return err instanceof KilnError ? err.exitCode : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** zod's first complaint about the parsed flags as one usage line naming the flag. */
export function flagsFrom<T>(result: { success: true; data: T } | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } }): T {
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const flag = issue?.path[0] === undefined ? '' : `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: `;
  throw new UsageError(`invalid flag ${flag}${issue?.message ?? 'invalid value'}`);
}
