// Container mode's RUN isolation: native/kiln-isolate.c runs each RUN in a user, mount, PID and IPC
// namespace of its own where kiln's dir and the credentials are covered (see that file for why this
// needs no privilege the container lacks). This module finds the helper, asks it once whether the
// runtime allows it (a probe), and turns a RunSpec into its argv (isolated, or `--plain`: identity only).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RunSpec, SandboxMount } from './sandbox.js';

/** The build output, relative to this file in src/sandbox (tests), dist/sandbox and dist/bundle (the CLI). */
const HELPER = '../../build/Release/kiln-isolate';

/** Exit status of the helper when it could not set up the namespaces (its message is on fd 3). */
export const SETUP_FAILED = 125;

/** The helper's path, or undefined when it was not built (npm ci builds it; the image ships it). */
export function isolateHelperPath(): string | undefined {
  const path = fileURLToPath(new URL(HELPER, import.meta.url));
  return existsSync(path) ? path : undefined;
}

/** What the probe found: isolation works, or why it does not. */
export type IsolationProbe = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Runs the helper's `--probe` with the paths a RUN would have hidden: the same clone, maps and mounts
 * as a RUN, without a command. A runtime that forbids user namespaces (docker's default seccomp
 * profile without CAP_SYS_ADMIN, a kernel with them disabled) fails it.
 */
export async function probeIsolation(helper: string, hidden: readonly string[]): Promise<IsolationProbe> {
  const argv = ['--status-fd', '3', '--probe', ...hidden.flatMap((p) => ['--hide', p])];
  return new Promise((resolve) => {
    const child = spawn(helper, argv, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdio[3]?.on('data', (b: Buffer) => (text += b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => (text += b.toString('utf8')));
    child.once('error', (err) => resolve({ ok: false, reason: `cannot start ${helper}: ${err.message}` }));
    child.once('close', (code) => {
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, reason: text.trim().replace(/^kiln-isolate: /, '') || `kiln-isolate exited with status ${code ?? 'unknown'}` });
    });
  });
}

/** The helper's argv for one RUN; mount targets already resolved inside `/` (mount-stubs.ts). */
export function isolateArgv(spec: RunSpec, hidden: readonly string[], mounts: readonly SandboxMount[]): string[] {
  const user = spec.user;
  const groups = user.groups ?? [user.gid];
  const args = ['--status-fd', '3', '--uid', String(user.uid), '--gid', String(user.gid), '--groups', groups.join(','), '--cwd', spec.workdir];
  if (spec.network === 'none') args.push('--net-none');
  for (const p of hidden) args.push('--hide', p);
  // Parents before children, so a mount inside another one lands on top of it.
  const sorted = [...mounts].sort((a, b) => depth(a.target) - depth(b.target));
  for (const m of sorted) {
    if (m.kind === 'bind') args.push(m.readOnly ? '--ro-bind' : '--bind', m.source, m.target);
    else args.push('--tmpfs', m.target, String(m.size ?? 0));
  }
  args.push('--', ...spec.argv);
  return args;
}

/** The helper's argv for one RUN that is not isolated (`--plain`): its identity, its directory, the command. */
export function plainArgv(spec: RunSpec): string[] {
  const user = spec.user;
  const groups = user.groups ?? [user.gid];
  return ['--status-fd', '3', '--plain', '--uid', String(user.uid), '--gid', String(user.gid), '--groups', groups.join(','), '--cwd', spec.workdir, '--', ...spec.argv];
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}
