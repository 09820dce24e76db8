// Images from a registry. Manifest and config are the bytes fetched (digests over what was received);
// layers stay remote and stream, verified, each time they are opened.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { KilnError } from '../errors.js';
import { decompressor } from '../blob/compression.js';
import { VerifyingStream } from '../blob/digesting.js';
import type { Digest } from '../oci/digest.js';
import type { Image, Layer } from '../oci/image.js';
import { parseJsonBytes } from '../oci/json.js';
import { isImageManifestMediaType, isIndexMediaType } from '../oci/media-types.js';
import { formatPlatform, platformMatches } from '../oci/platform.js';
import { formatReference, withDigest, type Reference } from '../oci/reference.js';
import { configFileSchema, indexSchema, manifestSchema, type Descriptor, type Platform } from '../oci/schemas.js';
import type { RunContext } from '../log/run-context.js';
import { ALL_MANIFEST_TYPES, type FetchedManifest, type RegistryClient } from '../registry/client.js';
import { mappedReferences, type RegistryMap } from '../registry/registry-map.js';

export interface PullOptions {
  /** For an index or manifest list: which platform's image to take. */
  readonly platform: Platform;
  /**
   * A copy of the image kept elsewhere (`--cache-dir`), asked once its manifest digest is known and
   * before its config or layers are fetched; `undefined`: there is none, fetch it from `ref`.
   */
  readonly local?: (digest: Digest, ref: Reference) => Promise<Image | undefined>;
}

/** Resolves a reference to one image, choosing by platform when it names an index. */
export async function pullImage(client: RegistryClient, ref: Reference, opts: PullOptions): Promise<Image> {
  const what = formatReference(ref);
  let fetched = await client.getManifest(ref, ALL_MANIFEST_TYPES);
  let resolved = ref;
  if (isIndexMediaType(fetched.mediaType)) {
    const index = parseJsonBytes(indexSchema, fetched.bytes, `index ${what}`);
    const desc = chooseManifest(index.manifests, opts.platform, what);
    resolved = withDigest({ ...ref, tag: undefined }, desc.digest);
    fetched = await client.getManifest(resolved, ALL_MANIFEST_TYPES);
    if (isIndexMediaType(fetched.mediaType)) {
      throw new KilnError('INVALID_DOCUMENT', `${what}: platform ${formatPlatform(opts.platform)} names a nested index, which is not supported`);
    }
  }
  if (!isImageManifestMediaType(fetched.mediaType)) {
    throw new KilnError('INVALID_DOCUMENT', `${what}: unsupported manifest media type ${fetched.mediaType}`);
  }
  const local = await opts.local?.(fetched.digest, resolved);
  if (local !== undefined) return local;
  return await remoteImage(client, resolved, fetched, what);
}

export interface PullRoutes {
  /** `--registry-map` / `--registry-mirror`: registries to try before the one a reference names. */
  readonly registryMap: RegistryMap;
  /** `--skip-default-registry-fallback`: fail when no mapped registry has the image. */
  readonly skipDefaultRegistryFallback: boolean;
}

/**
 * kaniko's RetrieveRemoteImage: the mapped registries first, in order, each failure a warning, then the
 * original registry. The image's layers come from whichever registry answered.
 */
export async function pullImageVia(
  client: RegistryClient,
  ref: Reference,
  opts: PullOptions & { readonly routes: PullRoutes; readonly ctx: RunContext },
): Promise<Image> {
  const mapped = mappedReferences(ref, opts.routes.registryMap);
  let last: unknown;
  for (const alt of mapped) {
    opts.ctx.log.info(`Retrieving image ${formatReference(alt)} from mapped registry ${alt.registry}`);
    try {
      return await pullImage(client, alt, opts);
    } catch (err) {
      if (opts.ctx.signal.aborted) throw err;
      last = err;
      opts.ctx.log.warn(
        `Failed to retrieve image ${formatReference(alt)} from remapped registry ${alt.registry}: ${(err as Error).message}. Will try with the next registry, or fallback to the original registry.`,
      );
    }
  }
  if (mapped.length > 0 && opts.routes.skipDefaultRegistryFallback) {
    throw new KilnError(
      'REGISTRY',
      `image not found on any configured mapped registries for ${formatReference(ref)}: ${(last as Error).message}`,
      { cause: last },
    );
  }
  return pullImage(client, ref, opts);
}

/** The index entry for a platform, or an error listing the platforms there are. */
export function chooseManifest(manifests: readonly Descriptor[], platform: Platform, what: string): Descriptor {
  const found = manifests.find(
    (d) => d.platform !== undefined && isImageManifestMediaType(d.mediaType) && platformMatches(platform, d.platform),
  );
  if (found !== undefined) return found;
  const available = manifests
    .filter((d) => d.platform !== undefined && d.platform.os !== 'unknown')
    .map((d) => formatPlatform(d.platform as Platform));
  throw new KilnError(
    'INVALID_DOCUMENT',
    `${what}: no image for platform ${formatPlatform(platform)}; available: ${available.length > 0 ? available.join(', ') : 'none'}`,
  );
}

async function remoteImage(client: RegistryClient, ref: Reference, fetched: FetchedManifest, what: string): Promise<Image> {
  const manifest = parseJsonBytes(manifestSchema, fetched.bytes, `manifest ${what}`);
  const rawConfig = await client.readSmallBlob(ref.registry, ref.repository, manifest.config.digest, manifest.config.size);
  const config = parseJsonBytes(configFileSchema, rawConfig, `config of ${what}`);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length) {
    throw new KilnError(
      'INVALID_DOCUMENT',
      `${what}: manifest has ${manifest.layers.length} layers but config has ${diffIds.length} diff_ids`,
    );
  }
  const layers = manifest.layers.map((desc, i) => remoteLayer(client, ref, desc, diffIds[i] as Digest));
  return {
    mediaType: async () => fetched.mediaType,
    rawManifest: async () => fetched.bytes,
    manifest: async () => manifest,
    digest: async () => fetched.digest,
    rawConfig: async () => rawConfig,
    configFile: async () => config,
    configName: async () => manifest.config.digest,
    layers: async () => layers,
  };
}

/** A layer that lives in a registry repository; each open fetches it anew. */
export function remoteLayer(client: RegistryClient, ref: Reference, desc: Descriptor, diffId: Digest): Layer {
  const compressed = (): Promise<Readable> => client.openBlob(ref.registry, ref.repository, desc.digest, desc.size);
  const what = `layer ${ref.registry}/${ref.repository}@${desc.digest}`;
  return {
    digest: async () => desc.digest,
    diffId: async () => diffId,
    size: async () => desc.size,
    mediaType: async () => desc.mediaType,
    compressed,
    uncompressed: uncompressedOpener(compressed, desc.mediaType, diffId, what),
    origin: { registry: ref.registry, repository: ref.repository },
  };
}

export function uncompressedOpener(
  compressed: () => Promise<Readable>,
  mediaType: string,
  diffId: Digest,
  what: string,
): () => Promise<Readable> {
  return async () => {
    // Made first: an unsupported compression (zstd on an old Node) fails before any download.
    const decompress = decompressor(mediaType);
    const source = await compressed();
    // The uncompressed bytes are checked against the config's diffID too, so a lying config fails here.
    const verify = new VerifyingStream(`${what} (uncompressed)`, diffId);
    return pipeline(source, decompress, verify, () => {});
  };
}
