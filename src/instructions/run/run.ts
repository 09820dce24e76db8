import type { Heredoc, RunInstruction } from '../../dockerfile/instructions.js';
import { DockerfileError, RunFailedError } from '../../errors.js';
import { mkdirAllInRoot } from '../../rootfs/in-root.js';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { FS_CHANGED, type Handler } from '../handler.js';
import { prepareRunMounts } from './run-mounts.js';
import { homeOf, resolveUserInRoot } from '../identity.js';
import { getEnv, runEnvironment, shellOf, type StageState } from '../stage-state.js';

/** A heredoc run as a program of its own: written to `/dev/pipes/<name>` (0755) and executed there. */
export interface RunScript {
  readonly name: string;
  readonly content: string;
}

export interface RunCommand {
  readonly argv: string[];
  readonly script?: RunScript;
}

/** Where BuildKit mounts a shebang heredoc (dispatchRun's `destPath`). */
const SCRIPT_DIR = '/dev/pipes';

/**
 * The argv of a RUN. Heredocs follow BuildKit's dispatchRun: a command that is only `<<EOF` whose body
 * starts with `#!` is written to a file and executed (its interpreter line picks the program, no
 * shell); one without `#!` runs the body as the shell's script; otherwise the whole text, heredocs
 * included, goes to the shell.
 */
export function runCommand(instr: RunInstruction, state: StageState): RunCommand {
  const cmd = instr.command;
  if (cmd.form === 'exec') return { argv: [...cmd.args] };
  const shell = shellOf(state);
  const [only] = instr.heredocs;
  if (instr.heredocs.length === 1 && only !== undefined && isOnlyHeredoc(cmd.command, only)) {
    if (only.content.startsWith('#!')) {
      return { argv: [posix.join(SCRIPT_DIR, only.name)], script: { name: only.name, content: only.content } };
    }
    return { argv: [...shell, only.content] };
  }
  if (instr.heredocs.length === 0) return { argv: [...shell, cmd.command] };
  const bodies = instr.heredocs.map((h) => `${h.content}${h.content.endsWith('\n') || h.content === '' ? '' : '\n'}${h.name}`);
  return { argv: [...shell, [cmd.command, ...bodies].join('\n')] };
}

async function mkdtempIn(parent: string): Promise<string> {
  await mkdir(parent, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(parent, 'script-'));
  // A non-root USER's bwrap must reach the file to mount it.
  await chmod(dir, 0o755);
  return dir;
}

/** Writes a shebang heredoc as the executable file BuildKit mounts (mode 0755). */
async function writeScript(script: RunScript, dir: string): Promise<string> {
  const file = join(dir, 'script');
  await writeFile(file, script.content, { mode: 0o755 });
  await chmod(file, 0o755);
  return file;
}

function isOnlyHeredoc(command: string, h: Heredoc): boolean {
  return new RegExp(`^\\s*<<-?(['"]?)${escapeRe(h.name)}\\1\\s*$`).test(command);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export const run: Handler<RunInstruction> = async (instr, state, e) => {
  const { argv, script } = runCommand(instr, state);
  const sandbox = await e.sandbox();
  const root = sandbox.root;
  const user = await resolveUserInRoot(root, state.config.User).catch((err: unknown) => {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  });
  const workdir = state.config.WorkingDir || '/';
  await mkdirAllInRoot(root, workdir);
  const extra = new Map(e.runOnlyArgs);
  if (getEnv(state.config, 'HOME') === undefined) extra.set('HOME', await homeOf(root, user.uid));
  if (instr.mounts.length > 0 && sandbox.mountRefusal !== undefined) {
    // Container mode without RUN isolation: kiln's container has no CAP_SYS_ADMIN, so only a user
    // namespace of the RUN's own could hold its mounts, and there is none.
    throw new DockerfileError(`RUN --mount needs RUN isolation, which is not available here: ${sandbox.mountRefusal}`, e.site);
  }
  const prepared = await prepareRunMounts(instr.mounts, state, e);
  let status: number;
  let scriptDir: string | undefined;
  try {
    const mounts = [...prepared.mounts];
    let runArgv = argv;
    if (script !== undefined) {
      scriptDir = await mkdtempIn(e.runMounts.scratchDir);
      const file = await writeScript(script, scriptDir);
      // Without mounts of its own (container mode, not isolated), the RUN shares `/` with kiln and the
      // work dir is ignored by snapshots, so the file is run where it is; otherwise it is mounted where
      // BuildKit puts it.
      if (sandbox.mountRefusal !== undefined) runArgv = [file];
      else mounts.push({ kind: 'bind', source: file, target: argv[0] ?? SCRIPT_DIR, readOnly: true });
    }
    // Secrets given with `env=` reach this process only; ENV and ARGs of the same name yield to them.
    const env = [...runEnvironment(state, extra).filter((kv) => !prepared.env.has(kv.slice(0, kv.indexOf('=')))), ...[...prepared.env].map(([k, v]) => `${k}=${v}`)];
    // BuildKit: an ssh mount sets SSH_AUTH_SOCK for this RUN unless the stage's env already has one.
    if (prepared.sshAuthSock !== undefined && !env.some((kv) => kv.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${prepared.sshAuthSock}`);
    e.ctx.log.info(`Running: ${JSON.stringify(argv)}`);
    status = await sandbox.run(
      {
        argv: runArgv,
        env,
        workdir,
        user,
        stdout: e.stdout,
        stderr: e.stderr,
        // `host` means the host's network, which is what `default` gives a RUN in kiln too.
        network: instr.network === 'none' ? 'none' : 'default',
        ...(mounts.length > 0 ? { mounts } : {}),
      },
      e.ctx,
    );
  } finally {
    await prepared.release();
    if (scriptDir !== undefined) await rm(scriptDir, { recursive: true, force: true });
  }
  if (status !== 0) throw new RunFailedError(`${e.site.file}:${e.site.line} ${instr.source}`, status);
  const argPrefix = [...state.args].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const createdBy = `RUN ${argPrefix.length > 0 ? `|${argPrefix.length} ${argPrefix.join(' ')} ` : ''}${argv.join(' ')}`;
  return { state, createdBy, fs: FS_CHANGED };
};
