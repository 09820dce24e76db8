// What a base image holds, as far as a COPY of one file needs to know, read from its layers' tar
// headers without unpacking them. docker copies a file to `/opt/app` as `/opt/app/<name>` when the
// base has a directory there, and follows a symlink on the way; only a destination that is neither,
// under parents that are directories or absent, lands where it is written whatever the base holds.
// A deferred stage (src/builder/stage-builder.ts) may then take such a COPY without the base's files.
import { pipeline } from 'node:stream/promises';
import type { Image } from '../oci/image.js';
import { TarReader, type TarEntrySink, type TarHeader } from './tar-reader.js';

/** Root-relative paths (`opt/app`, no leading `/` or `./`, no trailing `/`) by what some layer made them. */
export interface BasePaths {
  readonly dirs: ReadonlySet<string>;
  readonly symlinks: ReadonlySet<string>;
  /** Everything that is not a directory: files, symlinks, hardlinks, devices, whiteout markers. */
  readonly nonDirs: ReadonlySet<string>;
}

function clean(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
}

/**
 * Every path any layer of `image` writes, by kind. A path that was a directory in any layer counts as
 * one, even if a later layer removed it: what this answers only ever costs a deferral, never a wrong
 * image, when it says "may be a directory".
 */
export async function readBasePaths(image: Image, signal?: AbortSignal): Promise<BasePaths> {
  const dirs = new Set<string>();
  const symlinks = new Set<string>();
  const nonDirs = new Set<string>();
  const sink: TarEntrySink = {
    entry(h: TarHeader) {
      const rel = clean(h.name);
      if (rel === '' || rel === '.') return;
      if (h.type === 'directory') {
        dirs.add(rel);
        return;
      }
      nonDirs.add(rel);
      if (h.type === 'symlink') symlinks.add(rel);
    },
    data() {},
    end() {},
  };
  for (const layer of await image.layers()) {
    const reader = new TarReader(sink);
    await pipeline(await layer.uncompressed(), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        signal?.throwIfAborted();
        reader.push(chunk);
      }
      reader.finish();
    });
  }
  return { dirs, symlinks, nonDirs };
}

/**
 * Whether a file copied to the absolute path `dest` lands at `dest` whatever the base holds: `dest` is
 * no directory and no symlink there (a file is replaced), and each parent is a directory or absent.
 */
export function fileLandsAt(paths: BasePaths, dest: string): boolean {
  const rel = clean(dest);
  // A symlink at the destination itself: docker writes through it (or into the directory it names).
  if (rel === '' || paths.dirs.has(rel) || paths.symlinks.has(rel)) return false;
  for (let i = rel.indexOf('/'); i > 0; i = rel.indexOf('/', i + 1)) {
    if (paths.nonDirs.has(rel.slice(0, i))) return false;
  }
  return true;
}
