// Container mode, as kaniko: the rootfs is `/` of the container kiln runs in, so RUN is a child
// process with the stage's env, workdir and identity. Isolated (the default where the runtime allows
// user namespaces), it runs through kiln-isolate (isolated-run.ts): kiln's dir and the credentials
// are hidden from it, its RUN --mount mounts are its own, and no process it started outlives it.
// Otherwise it is a plain child on the same `/` as kiln, as in kaniko.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { SandboxError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { envObject } from './chroot-sandbox.js';
import { waitForExit } from './child-exit.js';
import { isolateArgv, plainArgv, SETUP_FAILED } from './isolated-run.js';
import { createMountStubs } from './mount-stubs.js';
import type { RunSpec, Sandbox, SandboxMount } from './sandbox.js';

/**
 * How RUN is isolated in this build: through the helper, hiding these paths, or not at all (and why;
 * the helper, when it is there, still sets the RUN's identity: its `--plain`).
 */
export type ContainerIsolation =
  | { readonly kind: 'isolated'; readonly helper: string; readonly hidden: readonly string[] }
  | { readonly kind: 'none'; readonly reason: string; readonly helper?: string };

export class ContainerSandbox implements Sandbox {
  readonly kind = 'container' as const;
  readonly root = '/';
  readonly mountRefusal: string | undefined;
  readonly #isolation: ContainerIsolation;
  readonly #onStubParents: ((rels: readonly string[]) => void) | undefined;
  #warnedGroups = false;

  /** `onStubParents`: told, after a RUN, the directories only kiln's mount stubs changed (mount-stubs.ts). */
  constructor(isolation: ContainerIsolation, onStubParents?: (rels: readonly string[]) => void) {
    this.#isolation = isolation;
    this.#onStubParents = onStubParents;
    this.mountRefusal = isolation.kind === 'none' ? isolation.reason : undefined;
  }

  async run(spec: RunSpec, ctx: RunContext): Promise<number> {
    if (spec.argv[0] === undefined) return 0;
    if (this.#isolation.kind === 'none') return this.#plain(spec, ctx);
    const { helper, hidden } = this.#isolation;
    const mounts = withDevParents(spec.mounts ?? []);
    const stubs = await createMountStubs('/', mounts.map((m) => ({ target: m.target, dir: m.kind === 'tmpfs' || isDirSource(m) })));
    try {
      const resolved = mounts.map((m, i) => ({ ...m, target: stubs.targets[i] ?? m.target }));
      const argv = isolateArgv(spec, hidden, resolved);
      ctx.log.debug({ argv: spec.argv, uid: spec.user.uid, gid: spec.user.gid, mounts: resolved.map((m) => m.target) }, 'sandbox: starting isolated command');
      return await runHelper(helper, argv, spec, ctx);
    } finally {
      const alone = await stubs.remove();
      if (alone.length > 0) this.#onStubParents?.(alone);
    }
  }

  async #plain(spec: RunSpec, ctx: RunContext): Promise<number> {
    const helper = this.#isolation.kind === 'none' ? this.#isolation.helper : undefined;
    if (helper !== undefined) return this.#plainThroughHelper(helper, spec, ctx);
    const groups = spec.user.groups ?? [spec.user.gid];
    if (groups.some((g) => g !== spec.user.gid) && !this.#warnedGroups) {
      this.#warnedGroups = true;
      ctx.log.warn(`RUN runs without the supplementary groups of uid ${spec.user.uid} (${groups.join(',')}): kiln-isolate, which sets them, is not installed beside kiln`);
    }
    const [file, ...rest] = spec.argv;
    const child = spawn(file as string, rest, {
      cwd: spec.workdir,
      env: envObject(spec.env),
      uid: spec.user.uid,
      gid: spec.user.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: ctx.signal,
    });
    child.stdout?.pipe(spec.stdout, { end: false });
    child.stderr?.pipe(spec.stderr, { end: false });
    return waitForExit(child, file as string);
  }

  /** Not isolated: kiln-isolate --plain sets the groups, gid and uid (and the directory), then execs the command. */
  async #plainThroughHelper(helper: string, spec: RunSpec, ctx: RunContext): Promise<number> {
    return runHelper(helper, plainArgv(spec), spec, ctx);
  }
}

/**
 * Runs kiln-isolate with `argv`: the RUN's output to the RUN's streams, the helper's own setup failure
 * (one line on fd 3, status SETUP_FAILED) as one SandboxError naming the RUN; else the RUN's status.
 */
async function runHelper(helper: string, argv: readonly string[], spec: RunSpec, ctx: RunContext): Promise<number> {
  const child = spawn(helper, argv, { env: envObject(spec.env), stdio: ['ignore', 'pipe', 'pipe', 'pipe'], signal: ctx.signal });
  let setup = '';
  child.stdio[3]?.on('data', (b: Buffer) => (setup += b.toString('utf8')));
  child.stdout?.pipe(spec.stdout, { end: false });
  child.stderr?.pipe(spec.stderr, { end: false });
  const status = await waitForExit(child, 'kiln-isolate');
  if (status === SETUP_FAILED && setup !== '') throw new SandboxError(`RUN ${JSON.stringify(spec.argv)}: ${setup.trim().replace(/^kiln-isolate: /, '')}`);
  return status;
}

/**
 * The container's /dev is the runtime's, not the image's: a target below it that lacks its parent
 * (a heredoc script at /dev/pipes/NAME) gets a tmpfs of the RUN's own on the first missing directory,
 * so nothing is left in the container's /dev after the RUN.
 */
function withDevParents(mounts: readonly SandboxMount[]): SandboxMount[] {
  const extra = new Set<string>();
  for (const m of mounts) {
    const parts = posix.normalize(m.target).split('/').filter(Boolean);
    if (parts[0] !== 'dev') continue;
    for (let i = 2; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      if (!existsSync(dir)) {
        extra.add(dir);
        break;
      }
    }
  }
  return [...[...extra].map((target): SandboxMount => ({ kind: 'tmpfs', target, size: 1 << 20 })), ...mounts];
}

function isDirSource(m: SandboxMount): boolean {
  return m.kind === 'bind' && statSync(m.source).isDirectory();
}
