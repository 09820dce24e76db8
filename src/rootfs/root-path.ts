// Resolving paths inside a rootfs without ever leaving it, after cyphar/filepath-securejoin (which
// containerd and runc use): each component is resolved in turn and symlinks are followed as if the
// rootfs were `/`, so an absolute link `/etc` means `<root>/etc` and `..` stops at the root.
import { lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UnpackError } from '../errors.js';

/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_SYMLINKS = 40;
/** A `.` or `..` component, an empty one, or a leading or trailing slash. */
const UNCLEAN = /(?:^|\/)\.\.?(?:\/|$)|\/\/|^\/|\/$/;

/**
 * Cleans a tar entry name (or hardlink target) into a root-relative path (`a/b`, the root is `''`).
 * Leading `/` and `./` are dropped, `.` and empty components removed, `..` applied; a name whose `..`
 * climbs above the root gets `null`. Symlinks are not consulted: this is the lexical half.
 */
export function cleanEntryName(name: string): string | null {
  // Fast path for the names nearly every layer has (`./usr/bin/x`, `usr/lib/`): nothing to apply.
  let n = name;
  while (n.startsWith('./')) n = n.slice(2);
  if (n.endsWith('/')) n = n.slice(0, -1);
  if (n !== '' && !UNCLEAN.test(n)) return n;
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out.join('/');
}

/**
 * Resolves root-relative `relPath` inside `root`, following every symlink met on the way (final
 * component included) as if `root` were `/`, and returns the resolved root-relative path. Components
 * that do not exist are taken as they are. The result never names anything outside `root`, and none of
 * its existing components is a symlink, so the kernel follows nothing when it is used right away.
 *
 * Synchronous on purpose: it is a handful of lstat calls per path, and hopping through the thread pool
 * for each would cost more than the calls themselves.
 */
export function resolveInRoot(root: string, relPath: string): string {
  const resolved: string[] = [];
  // Components still to resolve, last one first, so `pop()` yields the next.
  const pending = relPath.split('/').reverse();
  let links = 0;
  for (let c = pending.pop(); c !== undefined; c = pending.pop()) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    resolved.push(c);
    const host = join(root, ...resolved);
    let isLink: boolean;
    try {
      isLink = lstatSync(host).isSymbolicLink();
    } catch (err) {
      if (isMissing(err)) continue;
      throw err;
    }
    if (!isLink) continue;
    if (++links > MAX_SYMLINKS) throw new UnpackError(`too many levels of symbolic links resolving /${relPath}`);
    const target = readlinkSync(host);
    resolved.pop();
    if (target.startsWith('/')) resolved.length = 0;
    pending.push(...target.split('/').reverse());
  }
  return resolved.join('/');
}

/** Resolves the parent of `relPath` inside `root` but keeps its last component as it is (not followed). */
export function resolveParentInRoot(root: string, relPath: string): string {
  const slash = relPath.lastIndexOf('/');
  if (slash < 0) return relPath;
  const parent = resolveInRoot(root, relPath.slice(0, slash));
  const base = relPath.slice(slash + 1);
  return parent === '' ? base : `${parent}/${base}`;
}

/**
 * Whether lstat's error says nothing is at that path. ENAMETOOLONG too: a symlink's target may hold a
 * component longer than NAME_MAX (the target itself is only held to PATH_MAX), and no file can have
 * that name, so the path is taken as it is and whatever uses it next refuses it in its own words.
 */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG';
}
