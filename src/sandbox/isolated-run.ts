// Container mode's RUN isolation: native/kiln-isolate.c runs each RUN in a user, mount, PID and IPC
// namespace of its own where kiln's dir and the credentials are covered (see that file for why this
// needs no privilege the container lacks). This module finds the helper, asks it once whether the
// runtime allows it (a probe), and turns a RunSpec into its argv (isolated, or `--plain`: identity only).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
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

/** The helper when it is statically linked (sandbox mode runs it inside the stage's rootfs), else undefined. */
export function staticIsolateHelperPath(): string | undefined {
  const path = isolateHelperPath();
  return path !== undefined && isStaticElf(path) ? path : undefined;
}

/**
 * Whether the ELF at `path` is statically linked (no PT_INTERP program header): only such a helper can
 * run inside a stage's rootfs, which holds none of the host's libraries. Little-endian 64-bit only
 * (x86_64, aarch64); anything else reads as not static.
 */
export function isStaticElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) !== 64) return false;
    // "\x7fELF", ELFCLASS64, ELFDATA2LSB.
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    if (phentsize < 4 || phnum === 0 || phnum > 256) return false;
    const table = Buffer.alloc(phentsize * phnum);
    if (readSync(fd, table, 0, table.length, phoff) !== table.length) return false;
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
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
  return ['--status-fd', '3', ...identityArgs(spec), '--', ...spec.argv];
}

/** `--plain` and the RUN's identity and directory: what becomes the user, in both run modes. */
export function identityArgs(spec: RunSpec): string[] {
  const user = spec.user;
  const groups = user.groups ?? [user.gid];
  return ['--plain', '--uid', String(user.uid), '--gid', String(user.gid), '--groups', groups.join(','), '--cwd', spec.workdir];
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}
