// The set of paths a build never unpacks into, snapshots or deletes (what it holds in each run mode:
// DefaultIgnoreOptions): an immutable value passed to every operation on a rootfs (kaniko's shared
// mutable ignore list was a whole class of bugs).
// Entries are paths inside the rootfs, written absolute (`/proc`); an entry covers itself and everything
// under it. Lookups take root-relative paths (`proc/self`, with or without the leading slash).
import { posix } from 'node:path';

export class IgnoreList {
  readonly #entries: ReadonlySet<string>;

  private constructor(entries: ReadonlySet<string>) {
    this.#entries = entries;
  }

  static empty(): IgnoreList {
    return new IgnoreList(new Set());
  }

  static of(paths: Iterable<string>): IgnoreList {
    return IgnoreList.empty().with(paths);
  }

  /** A new list with `paths` added (absolute inside the rootfs, or root-relative). */
  with(paths: Iterable<string>): IgnoreList {
    const next = new Set(this.#entries);
    for (const p of paths) {
      const key = normalize(p);
      // Ignoring the root itself would ignore everything: almost certainly a caller bug, so refuse it.
      if (key === '') throw new RangeError('the ignore list cannot contain the root directory');
      next.add(key);
    }
    return new IgnoreList(next);
  }

  /** Whether `relPath` (root-relative) is an entry or lies under one. */
  isIgnored(relPath: string): boolean {
    if (this.#entries.size === 0) return false;
    let p = normalize(relPath);
    // Check the path and each ancestor: depth lookups in a set, whatever the list's length.
    while (p !== '') {
      if (this.#entries.has(p)) return true;
      const slash = p.lastIndexOf('/');
      p = slash < 0 ? '' : p.slice(0, slash);
    }
    return false;
  }

  /** Whether some entry lies strictly under `relPath`: removing `relPath` wholesale would remove it too. */
  hasIgnoredUnder(relPath: string): boolean {
    const p = normalize(relPath);
    const prefix = p === '' ? '' : `${p}/`;
    for (const e of this.#entries) if (e.startsWith(prefix) && e !== p) return true;
    return false;
  }

  /** The entries as absolute paths inside the rootfs, sorted (for logs and `--dry-run`). */
  get entries(): readonly string[] {
    return [...this.#entries].sort().map((e) => `/${e}`);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/** Anything that would make a path differ from its normal form: `.`/`..` components, `//`, edge slashes. */
const NEEDS_NORMALIZING = /(^|\/)\.{1,2}(\/|$)|\/\/|^\/|\/$/;

/** `/a//b/./c/` -> `a/b/c`; `..` cannot climb above the root. */
function normalize(p: string): string {
  // Walks call this per entry with paths already clean: skip the allocation-heavy path for them.
  if (!NEEDS_NORMALIZING.test(p)) return p;
  const clean = posix.normalize(`/${p}`);
  return clean === '/' ? '' : clean.replace(/^\/+/, '').replace(/\/+$/, '');
}

export interface DefaultIgnoreOptions {
  /**
   * `sandbox`: the rootfs is a directory of its own and RUN executes in bwrap over it: only kaniko's
   * `--ignore-path`s (and `/var/run`) are ignored. The kernel filesystems and the host files bwrap
   * mounts for a RUN are no part of the list: their mount points are made before the snapshot baseline
   * is taken (chroot-sandbox.ts `prepare`) and a RUN cannot write through the mounts, so nothing of
   * theirs reaches a layer, while what ADD or COPY puts under /sys, /proc, /dev or /etc/hosts does, as
   * in docker build (BuildKit writes an archive's every entry into the snapshot; those paths are
   * mounted over only while a RUN executes).
   * `container`: the rootfs is `/` of the container kiln runs in: its kernel filesystems, the files the
   * container runtime manages and kiln's own directory are never written, removed or snapshotted.
   * Mount points (from /proc/self/mountinfo) are the build's to add through `extra`.
   *
   * One list serves both never-write and never-snapshot: in container mode a path kiln must not write
   * is one it must not record (and the reverse), and in sandbox mode neither needs the kernel paths.
   */
  readonly mode: 'sandbox' | 'container';
  /** kaniko's `--ignore-var-run` (default true): ignore `/var/run`. */
  readonly ignoreVarRun?: boolean;
  /** Further paths (`--ignore-path`, mount points). */
  readonly extra?: Iterable<string>;
}

/** Container mode: the running container's own kernel filesystems and runtime-managed files. */
export const CONTAINER_KERNEL_FILESYSTEMS = ['/proc', '/sys', '/dev'] as const;
const RUNTIME_MANAGED_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname', '/etc/mtab'];

export function defaultIgnoreList(opts: DefaultIgnoreOptions): IgnoreList {
  const paths: string[] = [];
  if (opts.mode === 'container') {
    paths.push(...CONTAINER_KERNEL_FILESYSTEMS, ...RUNTIME_MANAGED_FILES);
    // /busybox: the debug image's shell and tools, which CI scripts still run after the build (GitLab's
    // after_script, Jenkins' keep-alive `/busybox/cat`); kaniko's debug image keeps it the same way.
    paths.push('/kaniko', '/busybox');
  }
  if (opts.ignoreVarRun ?? true) paths.push('/var/run');
  return IgnoreList.of(paths).with(opts.extra ?? []);
}
