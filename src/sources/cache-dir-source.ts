// Images from kaniko's local base-image cache (`--cache-dir`, filled by the warmer; see
// src/sinks/cache-dir-sink.ts for the writing side). One image is two files named by its manifest digest:
//   <dir>/sha256:<hex>        a `docker save` tarball (go-containerregistry's tarball.Write)
//   <dir>/sha256:<hex>.json   the manifest exactly as the registry served it
// kaniko's LocalSource reads them; so does this. The manifest must hash to the file's name, the config
// in the tarball to the manifest's config digest, each layer member must have the manifest's size and
// (with `verifyLayers`) digest. Layers are members of the tarball, opened at their offsets on every
// call and checked against their digest (compressed) and diffID (uncompressed) as they stream.
import { createReadStream } from 'node:fs';
import { readFile, stat, type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline, Writable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { z } from 'zod';
import { VerifyingStream } from '../blob/digesting.js';
import { KilnError } from '../errors.js';
import { digestOfBytes, type Digest } from '../oci/digest.js';
import type { BlobOrigin, Image, Layer } from '../oci/image.js';
import { parseJsonBytes } from '../oci/json.js';
import { isImageManifestMediaType, MediaType } from '../oci/media-types.js';
import { configFileSchema, manifestSchema, type Descriptor } from '../oci/schemas.js';
import { validateImage } from '../oci/validate.js';
import { uncompressedOpener } from './registry-source.js';
import { indexTarMembers, type TarMember } from './tar-members.js';

/** The tarball of the image with manifest digest `digest` in cache dir `dir` (its manifest: + `.json`). */
export function cacheDirImagePath(dir: string, digest: Digest): string {
  return join(dir, digest);
}

export type CacheDirLookup =
  | { readonly kind: 'hit'; readonly image: Image; readonly path: string }
  | { readonly kind: 'absent'; readonly path: string }
  /** Older than the TTL (by the tarball's mtime, as kaniko reads it). */
  | { readonly kind: 'expired'; readonly path: string; readonly modified: Date };

export interface CacheDirLookupOptions {
  /** `--cache-ttl`: an entry modified longer ago is `expired`. */
  readonly ttlMs: number;
  readonly now: number;
  /** Read every layer member once and check its digest before answering `hit`. */
  readonly verifyLayers: boolean;
  /** Where the image's blobs also live (the registry it was resolved in), so a push there can mount them. */
  readonly origin?: BlobOrigin | undefined;
  readonly signal: AbortSignal;
}

/** Largest manifest, config or manifest.json read into memory. */
const DOCUMENT_LIMIT = 4 << 20;

/** One image's entry in the tarball's manifest.json (go-containerregistry's field names). */
const tarballManifestSchema = z
  .array(
    z.looseObject({
      Config: z.string().min(1),
      RepoTags: z.array(z.string()).nullable().optional(),
      Layers: z.array(z.string()),
    }),
  )
  .length(1, 'the tarball must hold exactly one image');

/**
 * Looks up the image with manifest digest `digest`. A missing or expired entry is an answer; an entry
 * that is there but unusable (truncated, not a tarball, digests that do not match) throws a KilnError.
 */
export async function lookupCacheDirImage(dir: string, digest: Digest, opts: CacheDirLookupOptions): Promise<CacheDirLookup> {
  const path = cacheDirImagePath(dir, digest);
  const st = await stat(path).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new KilnError('INVALID_DOCUMENT', `cache entry ${path}: ${(err as Error).message}`, { cause: err });
  });
  if (st === undefined) return { kind: 'absent', path };
  if (!st.isFile()) throw new KilnError('INVALID_DOCUMENT', `cache entry ${path} is not a regular file`);
  if (st.mtimeMs + opts.ttlMs < opts.now) return { kind: 'expired', path, modified: st.mtime };
  const image = await cachedImage(path, digest, opts);
  return { kind: 'hit', image, path };
}

async function cachedImage(path: string, digest: Digest, opts: CacheDirLookupOptions): Promise<Image> {
  const what = `cache entry ${path}`;
  const rawManifest = await readSmallFile(`${path}.json`, `manifest of ${what}`);
  const actual = digestOfBytes(rawManifest);
  if (actual !== digest) throw new KilnError('INVALID_DOCUMENT', `${what}: manifest ${path}.json hashes to ${actual}, not to its name`);
  const manifest = parseJsonBytes(manifestSchema, rawManifest, `manifest ${path}.json`);
  const mediaType = manifest.mediaType ?? MediaType.OciManifest;
  if (!isImageManifestMediaType(mediaType)) throw new KilnError('INVALID_DOCUMENT', `${what}: unsupported manifest media type ${mediaType}`);

  const members = await indexTarMembers(path).catch((err: unknown) => {
    throw new KilnError('INVALID_DOCUMENT', `${what}: ${(err as Error).message}`, { cause: err });
  });
  const member = (name: string): TarMember => {
    const m = members.get(name.replace(/^(\.\/)+/, ''));
    if (m === undefined) throw new KilnError('INVALID_DOCUMENT', `${what}: the tarball has no member ${name}`);
    return m;
  };
  const [entry] = parseJsonBytes(tarballManifestSchema, await readMember(path, member('manifest.json'), what), `manifest.json of ${what}`);
  if (entry === undefined) throw new KilnError('INVALID_DOCUMENT', `${what}: manifest.json lists no image`);
  const rawConfig = await readMember(path, member(entry.Config), what);
  if (digestOfBytes(rawConfig) !== manifest.config.digest) {
    throw new KilnError('INVALID_DOCUMENT', `${what}: config ${entry.Config} does not hash to the manifest's ${manifest.config.digest}`);
  }
  const config = parseJsonBytes(configFileSchema, rawConfig, `config of ${what}`);
  if (entry.Layers.length !== manifest.layers.length || config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new KilnError('INVALID_DOCUMENT', `${what}: manifest.json, manifest and config disagree on the number of layers`);
  }
  const layers = manifest.layers.map((desc, i) => {
    const m = member(entry.Layers[i] ?? '');
    if (m.size !== desc.size) throw new KilnError('INVALID_DOCUMENT', `${what}: layer ${desc.digest} is ${m.size} bytes, the manifest says ${desc.size}`);
    return memberLayer(path, m, desc, config.rootfs.diff_ids[i] as Digest, opts.origin);
  });
  if (opts.verifyLayers) {
    for (const layer of layers) {
      opts.signal.throwIfAborted();
      await pipelineAsync(await layer.compressed(), discard(), { signal: opts.signal });
    }
  }
  const image: Image = {
    mediaType: async () => mediaType,
    rawManifest: async () => rawManifest,
    manifest: async () => manifest,
    digest: async () => digest,
    rawConfig: async () => rawConfig,
    configFile: async () => config,
    configName: async () => manifest.config.digest,
    layers: async () => layers,
  };
  await validateImage(image, what);
  return image;
}

/** A layer stored as the tarball member `m`; each open reads the member anew, verified. */
function memberLayer(path: string, m: TarMember, desc: Descriptor, diffId: Digest, origin: BlobOrigin | undefined): Layer {
  const what = `layer ${desc.digest} in ${path}`;
  const compressed = async (): Promise<Readable> => {
    const source = createReadStream(path, { start: m.offset, end: m.offset + m.size - 1 });
    return pipeline(source, new VerifyingStream(what, desc.digest, desc.size), () => {});
  };
  return {
    digest: async () => desc.digest,
    diffId: async () => diffId,
    size: async () => desc.size,
    mediaType: async () => desc.mediaType,
    compressed,
    uncompressed: uncompressedOpener(compressed, desc.mediaType, diffId, what),
    ...(origin !== undefined ? { origin } : {}),
  };
}

async function readSmallFile(path: string, what: string): Promise<Uint8Array> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw new KilnError('INVALID_DOCUMENT', `${what}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const { size } = await fh.stat();
    if (size > DOCUMENT_LIMIT) throw new KilnError('INVALID_DOCUMENT', `${what} is ${size} bytes, more than the ${DOCUMENT_LIMIT} allowed`);
    return new Uint8Array(await readFile(fh));
  } finally {
    await fh.close();
  }
}

async function readMember(path: string, m: TarMember, what: string): Promise<Uint8Array> {
  if (m.size > DOCUMENT_LIMIT) throw new KilnError('INVALID_DOCUMENT', `${what}: member ${m.name} is ${m.size} bytes, more than the ${DOCUMENT_LIMIT} allowed`);
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(m.size);
    const { bytesRead } = await fh.read(buf, 0, m.size, m.offset);
    if (bytesRead !== m.size) throw new KilnError('INVALID_DOCUMENT', `${what}: member ${m.name} is truncated`);
    return new Uint8Array(buf);
  } finally {
    await fh.close();
  }
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}
