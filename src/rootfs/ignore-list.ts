// The set of paths a build never unpacks into, snapshots or deletes: an immutable value passed to every
// operation on a rootfs (kaniko's shared mutable ignore list was a whole class of bugs).
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
   * `sandbox`: the rootfs is a directory of its own and RUN executes in a chroot: only the kernel
   * filesystems and the files the sandbox bind-mounts for RUN are ignored.
   * `container`: the rootfs is `/` of the container kiln runs in: kiln's own directory and the files the
   * container runtime manages are ignored too. Mount points (from /proc/self/mountinfo) are the
   * build's to add through `extra`.
   */
  readonly mode: 'sandbox' | 'container';
  /** kaniko's `--ignore-var-run` (default true): ignore `/var/run`. */
  readonly ignoreVarRun?: boolean;
  /** Further paths (`--ignore-path`, mount points). */
  readonly extra?: Iterable<string>;
}

const KERNEL_FILESYSTEMS = ['/proc', '/sys', '/dev'];
const RUNTIME_MANAGED_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname', '/etc/mtab'];

export function defaultIgnoreList(opts: DefaultIgnoreOptions): IgnoreList {
  const paths = [...KERNEL_FILESYSTEMS, ...RUNTIME_MANAGED_FILES];
  // /busybox: the debug image's shell and tools, which CI scripts still run after the build (GitLab's
  // after_script, Jenkins' keep-alive `/busybox/cat`); kaniko's debug image keeps it the same way.
  if (opts.mode === 'container') paths.push('/kaniko', '/busybox');
  if (opts.ignoreVarRun ?? true) paths.push('/var/run');
  return IgnoreList.of(paths).with(opts.extra ?? []);
}
