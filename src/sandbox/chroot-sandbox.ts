// Sandbox mode: RUN executes inside the stage's rootfs with bubblewrap: a new mount, PID, IPC and UTS
// namespace, pivot_root into the rootfs (so the classic chroot escape does not apply), a fresh /proc
// with /proc/sys read-only, a minimal /dev, /sys read-only (docker's default spec mounts sysfs `ro`
// there: moby oci/defaults.go, containerd oci/mounts.go), and the host's resolv.conf and hosts bound
// read-only. What ADD or COPY put under those paths in the rootfs is in the layers, as with docker
// build, and hidden from RUN by the mounts, as it is there.
// Nothing of the host is mounted writable. Root keeps docker's capabilities minus the ones that reach
// the host kernel. A non-root USER has no privilege: with a static kiln-isolate, bwrap starts as root
// and the helper becomes the user inside (no user namespace, as with docker); without one, bwrap runs
// as that uid in a user namespace of its own (user-namespace-maps.ts).
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { lstat, mkdir, open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { SandboxError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { waitForExit } from './child-exit.js';
import { identityArgs } from './isolated-run.js';
import { createMountStubs } from './mount-stubs.js';
import { overlayArgv, overlayDirsFor, setprivArgv, type OverlayDirs, type RunOverlay } from './overlay-run.js';
import { userNamespaceMaps, writeMapsWhenAsked } from './user-namespace-maps.js';
import type { RunSpec, RunUser, Sandbox, SandboxMount } from './sandbox.js';

/** Capabilities root loses inside the sandbox: those that act on the host kernel rather than the rootfs. */
const DROPPED_CAPS = [
  'CAP_SYS_ADMIN',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_BOOT',
  'CAP_SYS_TIME',
  'CAP_SYS_PTRACE',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_MAC_ADMIN',
  'CAP_MAC_OVERRIDE',
  'CAP_SYSLOG',
  'CAP_NET_ADMIN',
  'CAP_LINUX_IMMUTABLE',
  'CAP_IPC_LOCK',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_CONTROL',
  'CAP_AUDIT_READ',
  'CAP_BPF',
  'CAP_PERFMON',
  'CAP_CHECKPOINT_RESTORE',
] as const;

/** Where bwrap mounts kernel filesystems (or, for /sys, the host's read-only) inside the rootfs. */
const KERNEL_MOUNT_POINTS = ['proc', 'dev', 'sys'] as const;

/** Host files shown read-only inside, as docker does for name resolution. */
const HOST_FILES = ['etc/resolv.conf', 'etc/hosts'] as const;

export interface ChrootSandboxOptions {
  readonly root: string;
  /** Absolute path of the bwrap binary on the host. */
  readonly bwrap: string;
  readonly hostname?: string;
  /** Run each RUN on an overlay of the rootfs and hand its upper dir over (overlay-run.ts). */
  readonly overlay?: RunOverlay;
  /** Told, after a RUN, the directories only kiln's mount stubs changed (mount-stubs.ts). */
  readonly onStubParents?: (rels: readonly string[]) => void;
  /**
   * A static kiln-isolate: a non-root RUN then starts bwrap as root with no user namespace, and the
   * helper (run from an fd, nothing of it in the rootfs) becomes the user inside, as runc does for
   * docker build: every file reads with its real owner, the groups with their ids. Without it, bwrap
   * runs as the user in a user namespace of its own (user-namespace-maps.ts).
   */
  readonly identityHelper?: string;
}

/** The fd a static kiln-isolate is passed on, and exec'd from as /proc/self/fd/N inside the sandbox. */
const HELPER_FD = 3;

/** bwrap itself, when a helper becomes the user inside: root with root's group only (never kiln's groups). */
const BWRAP_AS_ROOT: RunUser = { uid: 0, gid: 0, groups: [0] };

export class ChrootSandbox implements Sandbox {
  readonly kind = 'chroot' as const;
  readonly root: string;
  readonly #bwrap: string;
  readonly #hostname: string;
  readonly #overlay: RunOverlay | undefined;
  readonly #onStubParents: ((rels: readonly string[]) => void) | undefined;
  readonly #identityHelper: string | undefined;
  #hostFiles: string[] | undefined;
  #warnedGroups = false;

  constructor(opts: ChrootSandboxOptions) {
    this.root = opts.root;
    this.#bwrap = opts.bwrap;
    this.#hostname = opts.hostname ?? 'kiln';
    this.#overlay = opts.overlay;
    this.#onStubParents = opts.onStubParents;
    this.#identityHelper = opts.identityHelper;
  }

  /**
   * Creates the mount targets bwrap needs inside the rootfs. Called before the snapshot baseline is
   * taken, so the empty files (and /etc's new mtime) never show up as a change of the first RUN.
   */
  async prepare(): Promise<void> {
    await this.#checkMountPoints();
    this.#hostFiles = await this.#prepareHostFileTargets();
  }

  async run(spec: RunSpec, ctx: RunContext): Promise<number> {
    if (this.#hostFiles === undefined) await this.prepare();
    // Checked again before every RUN: an ADD or COPY since the last one may have put a symlink or a
    // file where bwrap mounts (those paths are the stage's to write, as in docker build).
    await this.#checkMountPoints();
    const hostFiles = await this.#usableHostFiles(this.#hostFiles ?? []);
    const mounts = spec.mounts ?? [];
    // A bwrap that runs as the user must reach each bind source itself; one that runs as root does.
    if (spec.user.uid !== 0 && this.#identityHelper === undefined) await checkReachable(mounts, spec.user);
    const stubs = await createMountStubs(
      this.root,
      mounts.map((m) => ({ target: m.target, dir: m.kind === 'tmpfs' || isDirSource(m) })),
    );
    const overlay = this.#overlay;
    const dirs = overlay === undefined ? undefined : await overlayDirsFor(overlay.scratch, this.root);
    try {
      const resolved = mounts.map((m, i) => ({ ...m, target: stubs.targets[i] ?? m.target }));
      return await this.#spawn({ ...spec, mounts: resolved }, hostFiles, ctx, dirs);
    } finally {
      let alone = await stubs.remove();
      if (overlay !== undefined && dirs !== undefined) {
        // On an overlay the RUN's own changes to a stub's parent are in the upper dir, not yet in the
        // rootfs where the stub was: a parent whose entries changed there is the RUN's change.
        alone = await unchangedInUpper(alone, this.root, dirs.upper);
        // The RUN's changes reach the rootfs even when it failed, as they do on the walk strategy.
        await overlay.collect(dirs.upper, [spec.workdir, ...stubs.targets]);
        await rm(join(dirs.upper, '..'), { recursive: true, force: true });
      }
      if (alone.length > 0) this.#onStubParents?.(alone);
    }
  }

  async #spawn(spec: RunSpec, hostFiles: readonly string[], ctx: RunContext, overlay: OverlayDirs | undefined): Promise<number> {
    const user = spec.user;
    if (user.uid !== 0 && this.#identityHelper !== undefined) return this.#spawnBecomingUser(this.#identityHelper, spec, hostFiles, ctx, overlay);
    const groups = user.groups ?? [user.gid];
    const extraGroups = groups.length > 1 || groups[0] !== user.gid;
    // The RUN's group list (BuildKit: the user's groups from /etc/group, primary gid first): spawn's
    // uid/gid set the primary one and clear the rest, setpriv sets them all.
    const setpriv = overlay === undefined && extraGroups ? findSetpriv() : undefined;
    const groupsSet = overlay !== undefined || setpriv !== undefined;
    if (extraGroups && !groupsSet && !this.#warnedGroups) {
      this.#warnedGroups = true;
      ctx.log.warn(`RUN runs without the supplementary groups of uid ${user.uid} (${groups.join(',')}): util-linux's setpriv, which sets them, is not installed`);
    }
    // A non-root USER's bwrap (unprivileged) would map only its uid and primary gid into its user
    // namespace, and the other groups would read as 65534 inside: kiln writes the maps instead.
    const maps = groupsSet ? userNamespaceMaps(user) : undefined;
    const args = bwrapArgs({ root: overlay?.merged ?? this.root, spec, hostname: this.#hostname, hostFiles, ...(maps !== undefined ? { userns: USERNS_FDS } : {}) });
    ctx.log.debug({ argv: spec.argv, uid: spec.user.uid, gid: spec.user.gid, mounts: spec.mounts?.map((m) => m.target), overlay: overlay !== undefined }, 'sandbox: starting command');
    let argv: string[];
    if (overlay !== undefined && this.#overlay !== undefined) argv = overlayArgv(this.#overlay.tools, overlay, user, [this.#bwrap, ...args]);
    else if (setpriv !== undefined) argv = [...setprivArgv(setpriv, user), this.#bwrap, ...args];
    else argv = [this.#bwrap, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), {
      env: envObject(spec.env),
      // When kiln writes the maps: fd 3 is bwrap's --info-fd and stdin its --userns-block-fd (USERNS_FDS).
      stdio: maps !== undefined ? ['pipe', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      signal: ctx.signal,
      // A non-root USER never holds privilege on the host: bwrap itself runs as that identity (on an
      // overlay, or with groups to set, setpriv drops to it once the mount is made). Root too gets
      // only its own gid, never kiln's supplementary groups.
      ...(overlay === undefined && setpriv === undefined ? { uid: user.uid, gid: user.gid } : {}),
    });
    child.stdout?.pipe(spec.stdout, { end: false });
    child.stderr?.pipe(spec.stderr, { end: false });
    const exited = waitForExit(child, 'bwrap');
    if (maps === undefined) return exited;
    const info = child.stdio[USERNS_FDS.info] as Readable;
    const block = child.stdio[USERNS_FDS.block] as Writable;
    try {
      await writeMapsWhenAsked(info, block, maps);
    } catch (err) {
      // bwrap waits for the byte it will never get: the RUN must not start without its maps.
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
      throw err;
    }
    return exited;
  }

  /**
   * A non-root RUN through the static helper: bwrap as root, with no user namespace and no capability
   * but CAP_SETUID/CAP_SETGID, runs the helper from an fd it inherited; the helper sets the RUN's
   * groups, gid and uid (the capabilities go with the uid) and execs the command.
   */
  async #spawnBecomingUser(helper: string, spec: RunSpec, hostFiles: readonly string[], ctx: RunContext, overlay: OverlayDirs | undefined): Promise<number> {
    const args = bwrapArgs({ root: overlay?.merged ?? this.root, spec, hostname: this.#hostname, hostFiles, becomeUser: { helperFd: HELPER_FD } });
    ctx.log.debug({ argv: spec.argv, uid: spec.user.uid, gid: spec.user.gid, mounts: spec.mounts?.map((m) => m.target), overlay: overlay !== undefined }, 'sandbox: starting command');
    const argv = overlay !== undefined && this.#overlay !== undefined ? overlayArgv(this.#overlay.tools, overlay, BWRAP_AS_ROOT, [this.#bwrap, ...args]) : [this.#bwrap, ...args];
    const file = await open(helper, 'r');
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0] as string, argv.slice(1), {
        env: envObject(spec.env),
        stdio: ['ignore', 'pipe', 'pipe', file.fd],
        signal: ctx.signal,
        ...(overlay === undefined ? { uid: 0, gid: 0 } : {}),
      });
    } finally {
      // The child has its own copy once spawn returns.
      await file.close();
    }
    child.stdout?.pipe(spec.stdout, { end: false });
    child.stderr?.pipe(spec.stderr, { end: false });
    return waitForExit(child, 'bwrap');
  }

  /**
   * bwrap mounts on /proc, /dev and /sys inside the rootfs; a symlink there would point it elsewhere. A
   * missing one is created here, before the snapshot baseline (so it is never part of a layer, as
   * BuildKit removes its mount stubs): a non-root USER's bwrap could not create it in a root-owned /.
   */
  async #checkMountPoints(): Promise<void> {
    for (const dir of KERNEL_MOUNT_POINTS) {
      const st = await lstat(join(this.root, dir)).catch(() => undefined);
      if (st === undefined) await mkdir(join(this.root, dir), { mode: 0o755 });
      else if (!st.isDirectory()) {
        throw new SandboxError(`refusing to run: /${dir} in the rootfs is not a directory`);
      }
    }
  }

  /** The host files prepared whose target is still a regular file (never a symlink an ADD put there). */
  async #usableHostFiles(prepared: readonly string[]): Promise<string[]> {
    const etc = await lstat(join(this.root, 'etc')).catch(() => undefined);
    if (etc?.isDirectory() !== true) return [];
    const usable: string[] = [];
    for (const rel of prepared) {
      const st = await lstat(join(this.root, rel)).catch(() => undefined);
      if (st?.isFile() === true) usable.push(rel);
    }
    return usable;
  }

  /**
   * Creates empty mount targets for the host files (a non-root bwrap cannot create them) and returns
   * those that are safe to bind: /etc a real directory and the target a regular file, never a symlink.
   */
  async #prepareHostFileTargets(): Promise<string[]> {
    const etc = await lstat(join(this.root, 'etc')).catch(() => undefined);
    if (etc === undefined || !etc.isDirectory()) return [];
    const usable: string[] = [];
    for (const rel of HOST_FILES) {
      const hostPath = `/${rel}`;
      if ((await lstat(hostPath).catch(() => undefined)) === undefined) continue;
      const target = join(this.root, rel);
      const st = await lstat(target).catch(() => undefined);
      if (st === undefined) {
        // O_EXCL|O_NOFOLLOW: never follow a link planted between the check and the create.
        const fh = await open(target, 'wx', 0o644).catch(() => undefined);
        await fh?.close();
        if (fh === undefined) continue;
      } else if (!st.isFile()) {
        continue;
      }
      usable.push(rel);
    }
    return usable;
  }
}

/**
 * The child's fds for bwrap's --info-fd and --userns-block-fd when kiln writes the maps. bwrap's
 * sandboxed child closes the info fd but inherits the block fd, so the block fd is stdin: the RUN gets
 * no extra fd (a leaked one shows, e.g. LVM's tools warn about it), and its stdin reads end-of-file at
 * once (kiln ends it after the one byte bwrap's monitor consumed), as docker's /dev/null does.
 */
const USERNS_FDS = { info: 3, block: 0 } as const;

export function bwrapArgs(o: {
  root: string;
  spec: RunSpec;
  hostname: string;
  hostFiles: readonly string[];
  /** bwrap tells its namespace's pid on `info` and waits on `block` until kiln wrote the maps. */
  userns?: { readonly info: number; readonly block: number };
  /** A non-root RUN: bwrap runs as root and the static helper on this fd becomes the user inside. */
  becomeUser?: { readonly helperFd: number };
}): string[] {
  const { spec } = o;
  const args = [
    '--bind', o.root, '/',
    '--proc', '/proc',
    '--ro-bind', '/proc/sys', '/proc/sys',
    '--ro-bind-try', '/proc/sysrq-trigger', '/proc/sysrq-trigger',
    '--ro-bind-try', '/proc/irq', '/proc/irq',
    '--ro-bind-try', '/proc/bus', '/proc/bus',
    '--dev', '/dev',
    // bwrap cannot mount a sysfs of its own; the host's, read-only (and its submounts with it), is what
    // a RUN reads there, and it covers whatever the stage's layers hold under /sys, as in docker. A
    // host without /sys (a stripped container) runs RUN without it rather than not at all.
    '--ro-bind-try', '/sys', '/sys',
    '--unshare-pid', '--unshare-ipc', '--unshare-uts',
    '--hostname', o.hostname,
    '--die-with-parent',
    '--new-session',
    '--chdir', spec.workdir,
  ];
  for (const rel of o.hostFiles) args.push('--ro-bind', `/${rel}`, `/${rel}`);
  // Parents before children, so a mount inside another one lands on top of it.
  const mounts = [...(spec.mounts ?? [])].sort((a, b) => depth(a.target) - depth(b.target));
  for (const m of mounts) {
    switch (m.kind) {
      case 'bind':
        args.push(m.readOnly ? '--ro-bind' : '--bind', m.source, m.target);
        break;
      case 'tmpfs':
        // docker's tmpfs mounts are world-writable with the sticky bit, like /tmp.
        args.push('--perms', '1777');
        if (m.size !== undefined) args.push('--size', String(m.size));
        args.push('--tmpfs', m.target);
        break;
    }
  }
  if (spec.network === 'none') args.push('--unshare-net');
  if (spec.user.uid === 0) {
    for (const cap of DROPPED_CAPS) args.push('--cap-drop', cap);
  } else if (o.becomeUser !== undefined) {
    // What the helper needs to become the user, and nothing else; its setuid clears these too.
    args.push('--cap-drop', 'ALL', '--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID');
    const fd = String(o.becomeUser.helperFd);
    args.push('--', `/proc/self/fd/${fd}`, '--exec-fd', fd, ...identityArgs(spec), '--', ...spec.argv);
    return args;
  } else {
    args.push('--unshare-user', '--uid', String(spec.user.uid), '--gid', String(spec.user.gid));
    if (o.userns !== undefined) args.push('--info-fd', String(o.userns.info), '--userns-block-fd', String(o.userns.block));
  }
  args.push('--', ...spec.argv);
  return args;
}

let setprivPath: string | null | undefined;

/** util-linux's setpriv on the host, for a RUN whose user has supplementary groups. */
function findSetpriv(): string | undefined {
  if (setprivPath === undefined) setprivPath = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'].find((p) => existsSync(p)) ?? null;
  return setprivPath ?? undefined;
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

function isDirSource(m: SandboxMount): boolean {
  return m.kind === 'bind' && statSync(m.source).isDirectory();
}

/**
 * A non-root USER's bwrap runs as that uid and must be able to reach each bind source itself (it
 * resolves the path; an open fd does not help, bwrap 0.8 resolves /proc/self/fd/N too). Says which
 * directory stops it, rather than bwrap's bare "Permission denied".
 */
async function checkReachable(mounts: readonly SandboxMount[], user: RunUser): Promise<void> {
  for (const m of mounts) {
    if (m.kind !== 'bind') continue;
    const parts = m.source.split('/').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      const st = await stat(dir);
      const bits = st.uid === user.uid ? (st.mode >> 6) & 1 : st.gid === user.gid ? (st.mode >> 3) & 1 : st.mode & 1;
      if (bits === 0) {
        throw new SandboxError(
          `RUN as uid ${user.uid} cannot reach the mount source ${m.source}: ${dir} is not searchable by that user (choose a --mount-cache-dir or context outside it)`,
        );
      }
    }
  }
}

export function envObject(env: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of env) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** The dirs of `rels` that the upper dir holds no change of: absent there, or copied up with their mtime. */
async function unchangedInUpper(rels: readonly string[], root: string, upper: string): Promise<string[]> {
  const kept: string[] = [];
  for (const rel of rels) {
    const up = await lstat(join(upper, rel), { bigint: true }).catch(() => undefined);
    if (up === undefined) {
      kept.push(rel);
      continue;
    }
    const low = await lstat(join(root, rel), { bigint: true }).catch(() => undefined);
    if (up.isDirectory() && low?.isDirectory() === true && up.mtimeNs === low.mtimeNs && up.mode === low.mode && up.uid === low.uid && up.gid === low.gid) kept.push(rel);
  }
  return kept;
}

