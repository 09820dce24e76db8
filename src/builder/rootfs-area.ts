// Where stage filesystems live in sandbox mode. Creating files is most of what unpacking a base and
// copying a context cost, and on a disk it costs the kernel 20-50x what it costs on tmpfs (ext4 on
// the 2-core VMs: 0.3-0.7 ms a file; tmpfs: 11 us). So, as root, when memory is plentiful and the
// image small beside it, kiln mounts a private tmpfs for the stage trees: they never reach the disk,
// and one umount drops them all at the end. Layers, downloads and outputs stay on disk.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { readCgroupAvailable } from './cgroup-memory.js';
import { takeMachineLock } from './machine-lock.js';

export type TmpfsPolicy = 'auto' | 'always' | 'never';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** `auto` wants at least this much available memory: below it, a build's RUNs could fill the tmpfs. */
const AUTO_MIN_AVAILABLE = 8 * GiB;
/** Compressed layers are taken to unpack to this many times their size (gzip of typical images: 2-3x). */
const UNPACK_FACTOR = 3;

export interface TmpfsChoice {
  readonly use: boolean;
  /** tmpfs `size=` in bytes (a limit, not a reservation). */
  readonly sizeBytes: number;
  /** Why, for the log. */
  readonly why: string;
}

/**
 * Pure: whether stage trees go on a tmpfs, and how big it may grow. `auto` uses one only with 8 GiB
 * or more available and the base estimated at no more than an eighth of it; the tmpfs may then take
 * half of what is available (the kernel's own default for tmpfs is half of all memory).
 */
export function chooseTmpfs(input: {
  policy: TmpfsPolicy;
  sandbox: boolean;
  root: boolean;
  memAvailableBytes: number | undefined;
  /** Compressed size of the first base image the build unpacks. */
  baseCompressedBytes: number;
  /** `--rootfs-tmpfs-size` in MiB, when given. */
  sizeMiB: number | undefined;
  /** The size limits of other live kiln builds' tmpfs mounts: memory they may still take. */
  claimedBytes?: number;
  /** Limit minus usage of the cgroup kiln runs in, tightest level (a pod's limit: tmpfs pages count against it). */
  cgroupAvailableBytes?: number | undefined;
  /** KILN_ROOTFS_TMPFS_BUDGET_MIB: what all kiln builds on the machine may promise their tmpfs together. */
  budgetBytes?: number | undefined;
}): TmpfsChoice {
  const { policy } = input;
  // What this build may promise itself: the tighter of the machine and the cgroup, less what other
  // builds' tmpfs mounts may still grow to (their used pages are already out of MemAvailable, so
  // this counts those twice: on the safe side).
  const limits = [input.cgroupAvailableBytes, input.budgetBytes].filter((n): n is number => n !== undefined);
  const machine = input.memAvailableBytes === undefined ? undefined : Math.min(input.memAvailableBytes, ...limits);
  const avail = machine === undefined ? undefined : Math.max(0, machine - (input.claimedBytes ?? 0));
  const size = input.sizeMiB !== undefined ? input.sizeMiB * MiB : Math.floor((avail ?? 0) / 2);
  if (policy === 'never') return { use: false, sizeBytes: 0, why: '--rootfs-tmpfs never' };
  if (!input.sandbox) return { use: false, sizeBytes: 0, why: 'container mode builds on /' };
  if (!input.root) return { use: false, sizeBytes: 0, why: 'mounting a tmpfs needs root' };
  if (policy === 'always') {
    if (size <= 0) return { use: false, sizeBytes: 0, why: 'available memory unknown and no --rootfs-tmpfs-size' };
    return { use: true, sizeBytes: size, why: '--rootfs-tmpfs always' };
  }
  if (avail === undefined) return { use: false, sizeBytes: 0, why: 'available memory unknown' };
  const estimate = input.baseCompressedBytes * UNPACK_FACTOR;
  if (avail < AUTO_MIN_AVAILABLE) return { use: false, sizeBytes: 0, why: `${mib(avail)} MiB of memory available, auto wants ${mib(AUTO_MIN_AVAILABLE)}` };
  if (estimate > avail / 8) return { use: false, sizeBytes: 0, why: `base estimated at ${mib(estimate)} MiB unpacked, over an eighth of ${mib(avail)} MiB available` };
  return { use: true, sizeBytes: size, why: `${mib(avail)} MiB of memory available, base estimated at ${mib(estimate)} MiB unpacked` };
}

function mib(bytes: number): number {
  return Math.round(bytes / MiB);
}

/** MemAvailable from /proc/meminfo text, in bytes. */
export function parseMemAvailable(meminfo: string): number | undefined {
  const m = /^MemAvailable:\s+(\d+) kB$/m.exec(meminfo);
  return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
}

/** The tmpfs mounts (mountinfo text) that kiln processes named after their pid: `kiln-<pid>`. */
export function kilnTmpfsMounts(mountinfo: string): { pid: number; point: string }[] {
  const out: { pid: number; point: string }[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const [fstype, source] = right.split(' ');
    const point = left.split(' ')[4];
    const m = /^kiln-rootfs-(\d+)$/.exec(source ?? '');
    if (fstype !== 'tmpfs' || m?.[1] === undefined || point === undefined) continue;
    out.push({ pid: Number(m[1]), point: point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) });
  }
  return out;
}

/** The `size=` limit of each kiln-rootfs-<pid> tmpfs in mountinfo text, in bytes, by pid. */
export function kilnTmpfsSizes(mountinfo: string): { pid: number; bytes: number }[] {
  const out: { pid: number; bytes: number }[] = [];
  for (const line of mountinfo.split('\n')) {
    const right = line.split(' - ')[1];
    if (right === undefined) continue;
    const [fstype, source, options] = right.split(' ');
    const m = /^kiln-rootfs-(\d+)$/.exec(source ?? '');
    const size = /(?:^|,)size=(\d+)k(?:,|$)/.exec(options ?? '');
    if (fstype !== 'tmpfs' || m?.[1] === undefined || size?.[1] === undefined) continue;
    out.push({ pid: Number(m[1]), bytes: Number(size[1]) * 1024 });
  }
  return out;
}

export interface RootfsAreaOptions {
  readonly workDir: string;
  readonly policy: TmpfsPolicy;
  readonly sizeMiB: number | undefined;
  readonly sandbox: boolean;
  readonly root: boolean;
  /** KILN_ROOTFS_TMPFS_BUDGET_MIB, when set. */
  readonly budgetMiB: number | undefined;
  /** The file every kiln on the machine locks while it decides (machine-lock.ts). */
  readonly lockFile: string;
  readonly ctx: RunContext;
}

/** How long a build waits for another's tmpfs decision (a few ms as a rule) before staying on disk. */
const DECISION_LOCK_WAIT_MS = 30_000;

/**
 * The directory stage trees go under: decided on first use (when the first base image's size is
 * known), then fixed for the build. `close()` unmounts the tmpfs, if one was mounted.
 */
export class RootfsArea {
  readonly #opts: RootfsAreaOptions;
  #decided: Promise<string> | undefined;
  #mounted: string | undefined;
  #sizeBytes = 0;

  constructor(opts: RootfsAreaOptions) {
    this.#opts = opts;
  }

  /** Whether the trees are on a tmpfs (after the first `dir()`). */
  get onTmpfs(): boolean {
    return this.#mounted !== undefined;
  }

  dir(baseCompressedBytes: number): Promise<string> {
    this.#decided ??= this.#decide(baseCompressedBytes);
    return this.#decided;
  }

  async #decide(baseCompressedBytes: number): Promise<string> {
    const { workDir, policy, sandbox, root, lockFile, ctx } = this.#opts;
    if (!sandbox || !root || policy === 'never') return this.#decideLocked(baseCompressedBytes);
    // Read what others hold, choose, mount: one build at a time, so the next one sees this mount.
    const lock = await takeMachineLock(lockFile, DECISION_LOCK_WAIT_MS, ctx);
    if (!lock.held) {
      ctx.signal.throwIfAborted();
      if (policy === 'auto') {
        ctx.log.debug(`stage filesystems on disk under ${workDir}: no lock on ${lockFile} to decide under (${lock.why})`);
        return workDir;
      }
      ctx.log.debug(`deciding the tmpfs size without the lock on ${lockFile}: ${lock.why}`);
      return this.#decideLocked(baseCompressedBytes);
    }
    try {
      return await this.#decideLocked(baseCompressedBytes);
    } finally {
      await lock.lock.release();
    }
  }

  async #decideLocked(baseCompressedBytes: number): Promise<string> {
    const { workDir, policy, sizeMiB, sandbox, root, budgetMiB, ctx } = this.#opts;
    if (sandbox && root) await sweepStaleMounts(ctx);
    const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '');
    // Other builds on this machine (a CI runner with `concurrent = 6`) have promised memory too.
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
    const claimedBytes = kilnTmpfsSizes(mountinfo)
      .filter((m) => m.pid !== process.pid && alive(m.pid))
      .reduce((sum, m) => sum + m.bytes, 0);
    const cgroupAvailableBytes = await readCgroupAvailable();
    const choice = chooseTmpfs({
      policy,
      sandbox,
      root,
      memAvailableBytes: parseMemAvailable(meminfo),
      baseCompressedBytes,
      sizeMiB,
      claimedBytes,
      cgroupAvailableBytes,
      budgetBytes: budgetMiB === undefined ? undefined : budgetMiB * MiB,
    });
    if (!choice.use) {
      ctx.log.debug(`stage filesystems on disk under ${workDir}: ${choice.why}`);
      return workDir;
    }
    // A fresh directory of its own: a `--work-dir` may hold anything, and close() removes the mount point.
    await mkdir(workDir, { recursive: true, mode: 0o755 });
    const point = await mkdtemp(join(workDir, 'rootfs-tmpfs-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${choice.sizeBytes},mode=0755`, `kiln-rootfs-${process.pid}`, point]);
    } catch (err) {
      await rmdir(point).catch(() => undefined);
      if (policy === 'always') throw new KilnError('SANDBOX', `mounting a tmpfs for the rootfs at ${point}: ${(err as Error).message}`, { cause: err });
      ctx.log.debug(`stage filesystems on disk: mounting a tmpfs failed: ${(err as Error).message}`);
      return workDir;
    }
    this.#mounted = point;
    this.#sizeBytes = choice.sizeBytes;
    ctx.log.info(`Stage filesystems on a tmpfs of up to ${mib(choice.sizeBytes)} MiB (${choice.why}; --rootfs-tmpfs never keeps them on disk)`);
    return point;
  }

  /** Bytes used on the tmpfs now, or undefined when the trees are on disk. */
  async usedBytes(): Promise<number | undefined> {
    if (this.#mounted === undefined) return undefined;
    const s = await statfs(this.#mounted);
    return (s.blocks - s.bfree) * s.bsize;
  }

  /** A warning worth logging when an instruction failed: the tmpfs is (nearly) full. */
  async fullHint(): Promise<string | undefined> {
    const used = await this.usedBytes().catch(() => undefined);
    if (used === undefined || used < this.#sizeBytes * 0.98) return undefined;
    return `the tmpfs holding the stage filesystems is full (${mib(used)} of ${mib(this.#sizeBytes)} MiB): build with --rootfs-tmpfs never to keep them on disk, or give --rootfs-tmpfs-size`;
  }

  async close(): Promise<void> {
    const point = this.#mounted;
    if (point === undefined) return;
    const used = await this.usedBytes().catch(() => undefined);
    if (used !== undefined) this.#opts.ctx.log.info(`Stage filesystems used ${mib(used)} MiB of the tmpfs`);
    this.#mounted = undefined;
    // Lazily: a straggling process of a RUN must not keep the build from finishing.
    await run('umount', ['-l', point]).catch((err: unknown) => this.#opts.ctx.log.warn(`unmounting ${point}: ${(err as Error).message}`));
    await rm(point, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Unmounts tmpfs mounts left by kiln processes that died without cleaning up (SIGKILL, OOM). */
async function sweepStaleMounts(ctx: RunContext): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  for (const { pid, point } of kilnTmpfsMounts(info)) {
    if (pid === process.pid || alive(pid)) continue;
    ctx.log.warn(`unmounting ${point}, a stage-filesystem tmpfs left by kiln process ${pid} that is gone`);
    await run('umount', ['-l', point]).catch((err: unknown) => ctx.log.warn(`unmounting ${point}: ${(err as Error).message}`));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function run(cmd: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(err.trim() || `${cmd} exited ${code}`))));
  });
}
