// `--tar-path`: writes the built image in `docker save` format, as go-containerregistry's
// `tarball.MultiWriteToFile` does for kaniko, so `docker load`, `podman load` and
// `skopeo ... docker-archive:PATH` read it:
//   sha256:<hex>          the config blob, exactly the bytes the manifest names
//   <hex>.tar.gz          each distinct layer's compressed blob, named by its digest
//   manifest.json         [{"Config":..., "RepoTags":[...], "Layers":[...]}] (written last)
// Entries are regular files, mode 0644, owner 0:0. Layers stream from `compressed()` straight into
// the tar entry (whose size is fixed up front from `size()`), through a digest check. The tar is
// written to a temp file next to `path` and renamed into place only when complete.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { VerifyingStream } from '../blob/digesting.js';
import { writeStreamClosed } from '../blob/write-stream-closed.js';
import { KilnError, OutputError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { digestHex, type Digest } from '../oci/digest.js';
import type { Image } from '../oci/image.js';
import { parseReference } from '../oci/reference.js';
import { validateImage } from '../oci/validate.js';

/** One image's entry in the tarball's manifest.json (Go field names and order). */
export interface TarballManifestEntry {
  readonly Config: string;
  readonly RepoTags: readonly string[];
  readonly Layers: readonly string[];
  /** Non-distributable (foreign) layers' descriptors by diffID; omitted when empty, as Go does. */
  readonly LayerSources?: Readonly<Record<string, unknown>>;
}

/**
 * The RepoTags string go-containerregistry records for a destination: the reference as written,
 * with `:latest` appended when it names no tag (`docker load` refuses an untagged name).
 */
export function tarballRepoTag(destination: string): string {
  const ref = parseReference(destination, { defaultTag: false });
  return ref.tag === undefined ? `${destination.trim()}:latest` : destination.trim();
}

/** Computes manifest.json for `image` without writing anything. */
export async function tarballManifest(image: Image, repoTags: readonly string[]): Promise<TarballManifestEntry[]> {
  const manifest = await image.manifest();
  const config = await image.configFile();
  const layerSources: Record<string, unknown> = {};
  const layers = manifest.layers.map((d, i) => {
    if (d.mediaType.includes('foreign') || d.mediaType.includes('nondistributable')) {
      const diffId = config.rootfs.diff_ids[i];
      if (diffId !== undefined) layerSources[diffId] = d;
    }
    return layerFileName(d.digest);
  });
  const entry: TarballManifestEntry = {
    Config: manifest.config.digest,
    RepoTags: [...repoTags],
    Layers: layers,
    ...(Object.keys(layerSources).length > 0 ? { LayerSources: layerSources } : {}),
  };
  return [entry];
}

/** Writes `image` tagged `repoTags` (already in their final form, see `tarballRepoTag`) to `path`. */
export async function writeDockerTarball(
  image: Image,
  path: string,
  repoTags: readonly string[],
  opts: { readonly ctx: RunContext },
): Promise<void> {
  const { signal, log } = opts.ctx;
  await validateImage(image, `image for tarball ${path}`);
  const manifestJson = Buffer.from(JSON.stringify(await tarballManifest(image, repoTags)));
  const rawConfig = await image.rawConfig();
  const layers = await image.layers();

  await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
    throw new OutputError(`creating parent of tarball ${path}: ${messageOf(err)}`, { cause: err });
  });
  const tmp = join(dirname(path), `.${basename(path)}.kiln-${randomBytes(6).toString('hex')}`);
  const pack = tarPack();
  const out = createWriteStream(tmp, { mode: 0o644 });
  const written = pipeline(pack, out, { signal });
  // Fill the tar while the pipeline drains it; a failure on either side fails both.
  const filled = (async () => {
    await addEntry(pack, `${await image.configName()}`, rawConfig.byteLength, (copyInto) => copyInto([rawConfig]));
    const seen = new Set<string>();
    for (const layer of layers) {
      signal.throwIfAborted();
      const digest = await layer.digest();
      if (seen.has(digest)) continue;
      seen.add(digest);
      const size = await layer.size();
      const source = await layer.compressed();
      await addEntry(pack, layerFileName(digest), size, (copyInto) =>
        pipeline(source, new VerifyingStream(`layer ${digest}`, digest, size), copyInto, { signal }),
      );
    }
    await addEntry(pack, 'manifest.json', manifestJson.byteLength, (copyInto) => copyInto([manifestJson]));
    pack.finalize();
  })();
  try {
    await Promise.all([
      filled.catch((err: unknown) => {
        pack.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }),
      written,
    ]);
    await rename(tmp, path);
    log.debug({ path, repoTags }, 'wrote image tarball');
  } catch (err) {
    // Both sides may reject; wait for the filler so nothing writes after the temp file is gone.
    await Promise.allSettled([filled, written]);
    await writeStreamClosed(out);
    await rm(tmp, { force: true });
    const cause = await firstRejection(filled, err);
    if (cause instanceof KilnError) throw cause;
    throw new OutputError(`writing tarball ${path}: ${messageOf(cause)}`, { cause });
  }
}

/** go-containerregistry's layer file name: the hex digest (tar reads a colon as a remote host) + `.tar.gz`. */
function layerFileName(digest: Digest): string {
  return `${digestHex(digest)}.tar.gz`;
}

/** tar-stream's entry sink (a streamx Writable, not Node's). */
type TarEntry = ReturnType<Pack['entry']>;

/** Copies chunks into the current tar entry with backpressure; usable as a pipeline's last stage. */
type CopyInto = (chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) => Promise<void>;

/**
 * Adds one regular-file entry of exactly `size` bytes; `fill` moves the data with the copier it is
 * handed (inside a `pipeline()` for streams, so a source error tears down every stage).
 */
async function addEntry(pack: Pack, name: string, size: number, fill: (copyInto: CopyInto) => Promise<void>): Promise<void> {
  let entry!: TarEntry;
  const done = new Promise<void>((resolve, reject) => {
    entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, type: 'file' }, (err) =>
      err ? reject(err) : resolve(),
    );
  });
  // Both are observed through `done` and the pack's pipeline; these keep a failure from also
  // surfacing as an unhandled rejection or an unhandled streamx 'error' event.
  done.catch(() => undefined);
  entry.on('error', () => undefined);
  const copyInto: CopyInto = async (chunks) => {
    for await (const chunk of chunks) {
      if (!entry.write(chunk)) await waitDrain(entry);
    }
  };
  try {
    await fill(copyInto);
  } catch (err) {
    entry.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
  entry.end(undefined); // streamx types want an argument; undefined adds no data
  await done;
}

function waitDrain(w: TarEntry): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      w.off('error', onError);
      w.off('close', onClose);
      resolve();
    };
    const onError = (err: Error): void => {
      w.off('drain', onDrain);
      w.off('close', onClose);
      reject(err);
    };
    const onClose = (): void => {
      w.off('drain', onDrain);
      w.off('error', onError);
      reject(new Error('tar entry closed before its data was written'));
    };
    w.once('drain', onDrain);
    w.once('error', onError);
    w.once('close', onClose);
  });
}

/** The filler's error when it failed (the real cause), else the error caught. */
async function firstRejection(filled: Promise<void>, fallback: unknown): Promise<unknown> {
  try {
    await filled;
    return fallback;
  } catch (err) {
    return err;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

