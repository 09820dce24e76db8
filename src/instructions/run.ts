import type { Heredoc, RunInstruction } from '../dockerfile/instructions.js';
import { DockerfileError, RunFailedError } from '../errors.js';
import { mkdirAllInRoot } from '../rootfs/in-root.js';
import { FS_CHANGED, type Handler } from './handler.js';
import { homeOf, resolveUserInRoot } from './identity.js';
import { getEnv, runEnvironment, shellOf, type StageState } from './stage-state.js';

/**
 * The argv of a RUN. Heredocs follow BuildKit's dispatchRun: a command that is only `<<EOF` runs the
 * body as the shell's script; otherwise the whole text, heredocs included, goes to the shell.
 */
export function runArgv(instr: RunInstruction, state: StageState): string[] {
  const cmd = instr.command;
  if (cmd.form === 'exec') return [...cmd.args];
  const shell = shellOf(state);
  const [only] = instr.heredocs;
  if (instr.heredocs.length === 1 && only !== undefined && isOnlyHeredoc(cmd.command, only)) {
    return [...shell, only.content];
  }
  if (instr.heredocs.length === 0) return [...shell, cmd.command];
  const bodies = instr.heredocs.map((h) => `${h.content}${h.content.endsWith('\n') || h.content === '' ? '' : '\n'}${h.name}`);
  return [...shell, [cmd.command, ...bodies].join('\n')];
}

function isOnlyHeredoc(command: string, h: Heredoc): boolean {
  return new RegExp(`^\\s*<<-?(['"]?)${escapeRe(h.name)}\\1\\s*$`).test(command);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export const run: Handler<RunInstruction> = async (instr, state, e) => {
  if (instr.mounts.length > 0) {
    throw new DockerfileError('RUN --mount is not supported yet', e.site);
  }
  const argv = runArgv(instr, state);
  const sandbox = await e.sandbox();
  const root = sandbox.root;
  const user = await resolveUserInRoot(root, state.config.User).catch((err: unknown) => {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  });
  const workdir = state.config.WorkingDir || '/';
  await mkdirAllInRoot(root, workdir);
  const extra = new Map(e.runOnlyArgs);
  if (getEnv(state.config, 'HOME') === undefined) extra.set('HOME', await homeOf(root, user.uid));
  e.ctx.log.info(`Running: ${JSON.stringify(argv)}`);
  const status = await sandbox.run(
    {
      argv,
      env: runEnvironment(state, extra),
      workdir,
      user,
      stdout: e.stdout,
      stderr: e.stderr,
      network: instr.network === 'none' ? 'none' : 'default',
    },
    e.ctx,
  );
  if (status !== 0) throw new RunFailedError(`${e.site.file}:${e.site.line} ${instr.source}`, status);
  const argPrefix = [...state.args].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const createdBy = `RUN ${argPrefix.length > 0 ? `|${argPrefix.length} ${argPrefix.join(' ')} ` : ''}${argv.join(' ')}`;
  return { state, createdBy, fs: FS_CHANGED };
};
