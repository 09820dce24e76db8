// Builds an Image value from its parts: the one way a new image (a build result, `FROM scratch`,
// a mutated base) comes into being. Manifest and config bytes are computed once, on first use.
import { digestOfBytes, type Digest } from './digest.js';
import type { Image, Layer } from './image.js';
import { once } from './image.js';
import { jsonBytes } from './json.js';
import {
  configMediaType,
  layerCompression,
  layerMediaType,
  manifestMediaType,
  MediaType,
  type ManifestFamily,
} from './media-types.js';
import type { ConfigFile, Descriptor, Manifest } from './schemas.js';

export interface ImageParts {
  readonly family: ManifestFamily;
  /** The config; its rootfs.diff_ids are replaced by the layers' diffIDs. */
  readonly config: ConfigFile;
  readonly layers: readonly Layer[];
  readonly annotations?: Readonly<Record<string, string>>;
}

/** The manifest family's media type for a layer (gzip stays gzip; foreign layers keep theirs). */
export async function layerMediaTypeFor(family: ManifestFamily, layer: Layer): Promise<string> {
  const mt = await layer.mediaType();
  if (mt === MediaType.DockerForeignLayer || mt.includes('nondistributable')) return mt;
  const compression = layerCompression(mt);
  if (compression === 'none' && family === 'docker') return mt;
  return layerMediaType(family, compression);
}

/**
 * The family the manifest is written in: the parts' own, but OCI when a layer is zstd. Docker's
 * schema 2 has no zstd layer type (`...rootfs.diff.tar.zstd` is go-containerregistry's invention, which
 * podman, skopeo and containerd refuse), so BuildKit switches to OCI media types for zstd too.
 */
async function familyFor(parts: ImageParts): Promise<ManifestFamily> {
  if (parts.family === 'oci') return 'oci';
  for (const l of parts.layers) if (layerCompression(await l.mediaType()) === 'zstd') return 'oci';
  return parts.family;
}

export function assembleImage(parts: ImageParts): Image {
  const layers = parts.layers;
  const family = once(() => familyFor(parts));
  const rawConfig = once(async (): Promise<Uint8Array> => {
    const diffIds: Digest[] = [];
    for (const l of layers) diffIds.push(await l.diffId());
    const config: ConfigFile = { ...parts.config, rootfs: { type: 'layers', diff_ids: diffIds } };
    return jsonBytes(config);
  });
  const configFile = once(async (): Promise<ConfigFile> => {
    const diffIds: Digest[] = [];
    for (const l of layers) diffIds.push(await l.diffId());
    return { ...parts.config, rootfs: { type: 'layers', diff_ids: diffIds } };
  });
  const manifest = once(async (): Promise<Manifest> => {
    const cfg = await rawConfig();
    const layerDescs: Descriptor[] = [];
    for (const l of layers) {
      layerDescs.push({
        mediaType: await layerMediaTypeFor(await family(), l),
        digest: await l.digest(),
        size: await l.size(),
      });
    }
    const m: Manifest = {
      schemaVersion: 2,
      mediaType: manifestMediaType(await family()),
      config: { mediaType: configMediaType(await family()), digest: digestOfBytes(cfg), size: cfg.byteLength },
      layers: layerDescs,
    };
    if (parts.annotations !== undefined && Object.keys(parts.annotations).length > 0) {
      m.annotations = { ...parts.annotations };
    }
    return m;
  });
  const rawManifest = once(async () => jsonBytes(await manifest()));
  return {
    mediaType: async () => manifestMediaType(await family()),
    rawManifest,
    manifest,
    digest: once(async () => digestOfBytes(await rawManifest())),
    rawConfig,
    configFile,
    configName: once(async () => digestOfBytes(await rawConfig())),
    layers: async () => layers,
  };
}
