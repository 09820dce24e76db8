// `--ssh` as docker buildx reads it (build.ParseSSHSpecs, BuildKit's sshprovider): `ID[=PATH[,PATH...]]`.
// The id is what `RUN --mount=type=ssh,id=ID` names (`default` when left out); a path is an SSH agent
// socket or private key files (the build then runs an agent of its own holding them). No path, or an
// empty one, means the executor's $SSH_AUTH_SOCK, read here from the environment the CLI hands in.
import { isAbsolute, resolve } from 'node:path';
import { UsageError } from '../../errors.js';

/** The id BuildKit gives an `--ssh` or `--mount=type=ssh` that names none (sshforward.DefaultID). */
export const DEFAULT_SSH_ID = 'default';

export interface SshSource {
  readonly id: string;
  /** Absolute host paths: one agent socket, or one or more private key files. */
  readonly paths: readonly string[];
}

/** Parses the `--ssh` values; `env` is the executor's environment, `cwd` resolves relative paths. */
export function parseSshFlags(values: readonly string[], env: Readonly<Record<string, string | undefined>>, cwd: string): SshSource[] {
  const out: SshSource[] = [];
  for (const value of values) {
    const eq = value.indexOf('=');
    const id = (eq < 0 ? value : value.slice(0, eq)) || DEFAULT_SSH_ID;
    let paths = eq < 0 ? [] : value.slice(eq + 1).split(',');
    if (paths.length === 0 || (paths.length === 1 && paths[0] === '')) {
      const sock = env['SSH_AUTH_SOCK'];
      if (sock === undefined || sock === '') {
        throw new UsageError(`invalid --ssh ${JSON.stringify(value)}: no path given and SSH_AUTH_SOCK is not set (give --ssh ${id}=/path/to/agent.sock or a key file)`);
      }
      paths = [sock];
    }
    if (paths.some((p) => p === '')) throw new UsageError(`invalid --ssh ${JSON.stringify(value)}: empty path`);
    if (out.some((s) => s.id === id)) throw new UsageError(`invalid --ssh ${JSON.stringify(value)}: duplicate agent ID ${JSON.stringify(id)}`);
    out.push({ id, paths: paths.map((p) => (isAbsolute(p) ? p : resolve(cwd, p))) });
  }
  return out;
}
