// Resolving a path inside the build context the way docker does for COPY sources (moby's
// FollowSymlinkInScope, continuity's RootPath used by BuildKit): symlinks are followed, but an
// absolute target restarts at the context root and `..` stops at it, so resolution never leaves
// the context. We also report whether a link *tried* to leave, so a caller can refuse to follow it.
import { lstat, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { ContextError } from '../errors.js';

export interface ScopedPath {
  /** Context-relative slash path after resolution (`.` for the root). */
  readonly path: string;
  /** A followed link had an absolute target or climbed above the context root. */
  readonly escaped: boolean;
  /** Whether the resolved path exists. */
  readonly exists: boolean;
}

const MAX_LINKS = 255;

/** Resolves `rel` (context-relative) under `root`; with `followLast: false` the last component is not followed. */
export async function resolveInContext(root: string, rel: string, opts: { followLast: boolean }): Promise<ScopedPath> {
  const queue = rel.split('/').filter((c) => c !== '' && c !== '.');
  const current: string[] = [];
  let escaped = false;
  let links = 0;
  let exists = true;
  while (queue.length > 0) {
    const c = queue.shift() as string;
    if (c === '.' || c === '') continue;
    if (c === '..') {
      if (current.length === 0) escaped = true;
      else current.pop();
      continue;
    }
    current.push(c);
    if (!exists) continue; // below a missing component nothing can be a link
    if (queue.length === 0 && !opts.followLast) {
      exists = (await lstatOrUndefined(join(root, ...current))) !== undefined;
      break;
    }
    const st = await lstatOrUndefined(join(root, ...current));
    if (st === undefined) {
      exists = false;
      continue;
    }
    if (!st.isSymbolicLink()) continue;
    if (++links > MAX_LINKS) throw new ContextError(`too many levels of symbolic links resolving ${rel} in the build context`);
    const target = await readlink(join(root, ...current));
    current.pop();
    if (target.startsWith('/')) {
      escaped = true;
      current.length = 0;
    }
    queue.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
  }
  return { path: current.length === 0 ? '.' : current.join('/'), escaped, exists };
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new ContextError(`stat ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}
