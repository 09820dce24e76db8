// Writes an image into kaniko's local base-image cache, as kaniko's warmer does (pkg/cache/warm.go),
// so that kaniko's executor and kiln's (src/sources/cache-dir-source.ts) both read it:
//   <dir>/sha256:<hex>        the image as a `docker save` tarball (tarball-sink.ts: go-containerregistry's
//                             tarball.Write layout; layers stream from the source, verified, never buffered)
//   <dir>/sha256:<hex>.json   the manifest, the bytes its digest was computed over
// Each file is written to a temp name in `dir` and renamed into place, the manifest first: readers look
// for the tarball, so an entry appears only once both files are complete, and a failed write leaves none.
import { randomBytes } from 'node:crypto';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OutputError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { Image } from '../oci/image.js';
import { writeDockerTarball } from './tarball-sink.js';

/**
 * Writes `image` as the cache entry named by its manifest digest; returns the tarball's path.
 * `repoTags`: the tarball's RepoTags (go-containerregistry records the tag it was asked for; none for a
 * digest reference).
 */
export async function writeCacheDirImage(image: Image, dir: string, repoTags: readonly string[], opts: { readonly ctx: RunContext }): Promise<string> {
  const path = join(dir, await image.digest());
  await replaceFile(`${path}.json`, await image.rawManifest());
  try {
    await writeDockerTarball(image, path, repoTags, opts);
  } catch (err) {
    // The manifest of an entry that was already there (--force) is the same bytes: keep it then.
    if ((await stat(path).catch(() => undefined)) === undefined) await rm(`${path}.json`, { force: true });
    throw err;
  }
  return path;
}

async function replaceFile(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.kiln-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(tmp, bytes, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new OutputError(`writing ${path}: ${(err as Error).message}`, { cause: err });
  }
}
