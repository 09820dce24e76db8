// The part of a layer-cache key that stands for the files a COPY or ADD reads: names, types, modes
// and content of every source, walked the way the copy walks them (.dockerignore applied to context
// sources). Modification times are left out, as kaniko's cache hasher leaves them out: a fresh checkout
// of the same files is the same key. Owners count only for `--from` sources (the copy keeps them);
// context files are copied as 0:0 or as `--chown` says, which is part of the instruction's text.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import type { IgnoreMatcher } from '../context/dockerignore.js';

export interface SourceTree {
  /** Host directory the sources are relative to (the context, or a stage's or image's rootfs). */
  readonly root: string;
  /** Root-relative source paths (`''` is the root itself), as the copy resolved them. */
  readonly sources: readonly string[];
  /** Whether a root-relative path is left out (.dockerignore); never for `--from` sources. */
  readonly excluded: (rel: string, isDir: boolean) => boolean;
  /** `--exclude` patterns, matched against paths below each source (below its `bases` entry's pivot with --parents). */
  readonly exclude?: IgnoreMatcher;
  /** `COPY --parents`: per source, its path below its pivot (where it goes, and what --exclude sees). */
  readonly bases?: readonly string[];
  /**
   * Per source, the path it was named by when that is not `sources`' (a followed symlink): the copy
   * takes its name from there, so the key does too.
   */
  readonly named?: readonly string[];
  /** Whether owners are part of what is copied (`--from` sources keep theirs). */
  readonly withOwners: boolean;
}

/** sha256 hex over every source's entries, in a fixed order. */
export async function digestSources(tree: SourceTree): Promise<string> {
  const h = createHash('sha256');
  for (const [i, src] of tree.sources.entries()) {
    const base = tree.bases?.[i];
    h.update(base === undefined ? `source\0${src}\0` : `source\0${src}\0${base}\0`);
    const named = tree.named?.[i];
    if (named !== undefined && named !== src) h.update(`named\0${named}\0`);
    const ex = tree.exclude;
    const excludePath = (rel: string): string => {
      const below = src === '' ? rel : rel.slice(src.length + 1);
      return base === undefined || base === '' ? below : `${base}/${below}`;
    };
    const skip = (rel: string, isDir: boolean): boolean =>
      tree.excluded(rel, isDir) || (ex !== undefined && ex.matches(excludePath(rel)) && !(isDir && ex.hasExceptions));
    await digestEntry(h, tree, src, skip);
  }
  return h.digest('hex');
}

async function digestEntry(h: Hash, tree: SourceTree, rel: string, skip: (rel: string, isDir: boolean) => boolean): Promise<void> {
  const path = rel === '' ? tree.root : join(tree.root, rel);
  const st = await lstat(path);
  const owner = tree.withOwners ? `${st.uid}:${st.gid}` : '';
  const mode = (st.mode & 0o7777).toString(8);
  if (st.isDirectory()) {
    h.update(`d\0${rel}\0${mode}\0${owner}\0`);
    const names = (await readdir(path)).sort();
    for (const name of names) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const childStat = await lstat(join(tree.root, child));
      if (skip(child, childStat.isDirectory())) continue;
      await digestEntry(h, tree, child, skip);
    }
    return;
  }
  if (st.isSymbolicLink()) {
    h.update(`l\0${rel}\0${owner}\0${await readlink(path)}\0`);
    return;
  }
  if (st.isFile()) {
    h.update(`f\0${rel}\0${mode}\0${owner}\0${st.size}\0`);
    await pipeline(
      createReadStream(path),
      new Writable({
        write(chunk: Buffer, _enc, done) {
          h.update(chunk);
          done();
        },
      }),
    );
    return;
  }
  // FIFOs, devices, sockets: only their kind and name.
  h.update(`o\0${rel}\0${mode}\0${owner}\0${st.mode & 0o170000}\0`);
}
