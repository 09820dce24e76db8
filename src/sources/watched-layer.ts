// A remote layer whose reads are downloads the build's Transfers see (progress lines, `download`
// events, the summary's "pulled"), for readers that stream a layer once instead of going through the
// spool (registry-spool.ts), such as the warmer writing it into a cache-dir tarball.
import type { Readable } from 'node:stream';
import type { RunContext } from '../log/run-context.js';
import { counted } from '../log/transfers.js';
import type { Image, Layer } from '../oci/image.js';
import { uncompressedOpener } from './registry-source.js';

/** `layer`, each open of its compressed bytes one download: ended when they have all been read, failed otherwise. */
export function watchedLayer(layer: Layer, ctx: RunContext): Layer {
  const transfers = ctx.transfers;
  if (transfers === undefined) return layer;
  const compressed = async (): Promise<Readable> => {
    const digest = await layer.digest();
    const t = transfers.start({ kind: 'download', label: digest, digest, total: await layer.size() });
    let source: Readable;
    try {
      source = await layer.compressed();
    } catch (err) {
      t.fail();
      throw err;
    }
    const out = counted(source, t);
    // 'end': every byte read (the source verified them); 'close' before that: an error or a reader that gave up.
    out.once('end', () => t.end());
    out.once('close', () => t.fail());
    return out;
  };
  return {
    digest: () => layer.digest(),
    diffId: () => layer.diffId(),
    size: () => layer.size(),
    mediaType: () => layer.mediaType(),
    compressed,
    uncompressed: async () => uncompressedOpener(compressed, await layer.mediaType(), await layer.diffId(), `layer ${await layer.digest()}`)(),
    origin: layer.origin,
  };
}

/** `image` with its layers watched (see watchedLayer); manifest and config are the image's own. */
export function withWatchedLayers(image: Image, ctx: RunContext): Image {
  return {
    mediaType: () => image.mediaType(),
    rawManifest: () => image.rawManifest(),
    manifest: () => image.manifest(),
    digest: () => image.digest(),
    rawConfig: () => image.rawConfig(),
    configFile: () => image.configFile(),
    configName: () => image.configName(),
    layers: async () => (await image.layers()).map((l) => watchedLayer(l, ctx)),
  };
}
