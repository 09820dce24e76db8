// The SSH agents behind `--ssh`, for the whole build: each id's agent socket, checked before any stage
// runs (as BuildKit's client checks them when the build starts). A socket path is used as it is; key
// files are loaded into an `ssh-agent` kiln starts for the build (BuildKit holds them in an agent of
// its own), which needs openssh-client's ssh-agent and ssh-add on the PATH. As in BuildKit, one id is
// one socket or any number of keys, never both; a passphrase-protected key is refused, not prompted for.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { SshSource } from '../instructions/run/ssh-source.js';
import type { RunContext } from '../log/run-context.js';

export interface SshAgents {
  /** The agent socket behind each `--ssh` id. */
  readonly sockets: ReadonlyMap<string, string>;
  /** Stops the agents kiln started. */
  close(): Promise<void>;
}

export interface SshAgentDeps extends RunContext {
  /** A directory of the work dir for the sockets of kiln's own agents (short: sockets have 107 bytes). */
  readonly dir: string;
  /** Finds a helper program on the host's PATH. */
  readonly find: (name: string) => string | undefined;
}

/** BuildKit reads at most this much of a key file. */
const MAX_KEY_FILE = 100 * 1024;

const noAgents: SshAgents = { sockets: new Map(), close: async () => undefined };

export async function startSshAgents(sources: readonly SshSource[], deps: SshAgentDeps): Promise<SshAgents> {
  if (sources.length === 0) return noAgents;
  const sockets = new Map<string, string>();
  const stops: Array<() => Promise<void>> = [];
  const removeDir = (): Promise<void> => rm(deps.dir, { recursive: true, force: true });
  const close = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    for (const [i, s] of sources.entries()) {
      const bad = (why: string, cause?: unknown): never => {
        throw new UsageError(`--ssh ${s.id}=${s.paths.join(',')}: ${why}`, cause === undefined ? undefined : { cause });
      };
      const kinds = await Promise.all(
        s.paths.map(async (p) => {
          const st = await stat(p).catch((err: unknown) => bad(`cannot use ${p}: ${(err as Error).message}`, err));
          if (st.isSocket()) return 'socket';
          if (st.isFile()) return 'key';
          return bad(`${p} is neither an SSH agent socket nor a private key file`);
        }),
      );
      const socketCount = kinds.filter((k) => k === 'socket').length;
      if (socketCount > 1) bad('only a single socket is allowed');
      if (socketCount === 1 && kinds.length > 1) bad('invalid combination of keys and sockets');
      if (socketCount === 1) {
        sockets.set(s.id, s.paths[0] as string);
        continue;
      }
      if (!stops.some((f) => f === removeDir)) stops.push(removeDir);
      const agent = await startKeyAgent(s, join(deps.dir, `agent-${i}.sock`), deps, bad);
      stops.push(agent.stop);
      sockets.set(s.id, agent.socket);
      deps.log.debug({ id: s.id, keys: s.paths.length }, 'started an ssh-agent holding the --ssh keys');
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { sockets, close };
}

async function startKeyAgent(
  s: SshSource,
  socket: string,
  deps: SshAgentDeps,
  bad: (why: string, cause?: unknown) => never,
): Promise<{ socket: string; stop: () => Promise<void> }> {
  const agentBin = deps.find('ssh-agent');
  const addBin = deps.find('ssh-add');
  if (agentBin === undefined || addBin === undefined) {
    bad('key files are held in an ssh-agent kiln starts, and ssh-agent/ssh-add (openssh-client) are not on the PATH: install openssh-client, or start an agent and pass its socket');
  }
  if (Buffer.byteLength(socket) > 107) bad(`the agent socket ${socket} is longer than a Unix socket allows (choose a shorter --work-dir)`);
  await mkdir(deps.dir, { recursive: true, mode: 0o700 });
  // -D: stays in the foreground as kiln's child (in kiln's process group, so ^C ends it too).
  const child = spawn(agentBin as string, ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'pipe'], env: {} });
  const exited = new Promise<void>((res) => child.once('close', () => res()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(socket, { force: true });
  };
  try {
    await new Promise<void>((res, rej) => {
      let out = '';
      let err = '';
      child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
      child.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        // Printed once the socket listens.
        if (out.includes('SSH_AUTH_SOCK=')) res();
      });
      child.once('error', (e) => rej(new UsageError(`--ssh ${s.id}: cannot start ssh-agent: ${e.message}`, { cause: e })));
      child.once('close', (code) => rej(new UsageError(`--ssh ${s.id}: ssh-agent exited (${code ?? 'signal'}): ${err.trim()}`)));
    });
    for (const path of s.paths) {
      // Read here and fed on stdin, as BuildKit reads them itself: no check of the file's mode.
      const key = await readFile(path).catch((err: unknown) => bad(`cannot read ${path}: ${(err as Error).message}`, err));
      if (key.length > MAX_KEY_FILE) bad(`${path} is too large for a private key`);
      const added = await runToEnd(addBin as string, ['-q', '-'], key, { SSH_AUTH_SOCK: socket, SSH_ASKPASS_REQUIRE: 'never' });
      if (added.code !== 0) {
        const prompted = added.stderr.includes('Enter passphrase');
        const detail = added.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('Enter passphrase')).join('; ').replaceAll('(stdin)', path);
        bad(prompted ? `${path} is passphrase-protected: kiln cannot ask for the passphrase (add the key to an agent and pass its socket)` : `ssh-add cannot load ${path}: ${detail || `exit status ${added.code}`}`);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, stop };
}

function runToEnd(bin: string, args: readonly string[], input: Buffer, env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  return new Promise((res, rej) => {
    // A new session: ssh-add has no terminal to prompt for a passphrase on.
    const child = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'], env, detached: true });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdin?.on('error', () => undefined); // an early exit is reported by its status
    child.stdin?.end(input);
    child.once('error', rej);
    child.once('close', (code) => res({ code: code ?? 1, stderr }));
  });
}
