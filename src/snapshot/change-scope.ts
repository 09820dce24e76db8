// What is known about the changes since the last snapshot: "anything, anywhere" (a RUN on the walk
// strategy), or a set of paths (COPY/ADD/WORKDIR destinations, an overlay upper dir). A scoped
// snapshot rescans only those paths, so its cost follows the change, not the rootfs.
import { posix } from 'node:path';

export class ChangeScope {
  /** A full walk is needed. */
  all = false;
  /**
   * Whether anything was said about the changes at all. A snapshot with nothing said walks the whole
   * rootfs (the safe default for callers that only call `snapshot`).
   */
  known = false;
  /** Paths rescanned with everything under them. */
  readonly trees = new Set<string>();
  /** Paths rescanned alone (a directory without its children). */
  readonly entries = new Set<string>();
  /** See DiffOptions.rewritten. */
  readonly rewritten = new Set<string>();
  /** See DiffOptions.forced. */
  readonly forced = new Set<string>();
  /** See DiffOptions.stubParents. */
  readonly stubParents = new Set<string>();

  get empty(): boolean {
    return this.known && !this.all && this.trees.size === 0 && this.entries.size === 0;
  }

  /** `rel` and everything under it, plus its ancestors alone (their mtime moves with a new child). */
  addTree(rel: string): void {
    this.known = true;
    if (rel === '') {
      this.all = true;
      return;
    }
    this.trees.add(rel);
    this.addAncestors(rel);
  }

  /** `rel` alone, plus its ancestors. */
  addEntry(rel: string): void {
    this.known = true;
    if (rel === '') return;
    this.entries.add(rel);
    this.addAncestors(rel);
  }

  addAncestors(rel: string): void {
    for (let p = posix.dirname(rel); p !== '.' && p !== '' && p !== '/'; p = posix.dirname(p)) {
      if (this.entries.has(p)) break;
      this.entries.add(p);
    }
  }

  /** Whether `rel` is one of the trees or lies under one. */
  coveredByTree(rel: string): boolean {
    if (this.trees.size === 0) return false;
    for (let p = rel; ; ) {
      if (this.trees.has(p)) return true;
      const slash = p.lastIndexOf('/');
      if (slash < 0) return false;
      p = p.slice(0, slash);
    }
  }
}
