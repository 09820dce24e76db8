// Compression of layer blobs: the codecs kiln writes (`--compression gzip|zstd`, `--compression-level`)
// and the decompressors readers of pulled layers use, chosen by media type.
//
// gzip is written by ParallelGzip (all cores, one gzip member). zstd: Node 20's zlib has none, so both
// directions go through Debian's `zstd` binary (already needed by ADD of .tar.zst archives), which
// compresses on all cores itself (-T) and gives the same bytes whatever the thread count; npm's zstd
// bindings either fetch prebuilt binaries from outside npm at install time or are wasm without streaming.
// A Node whose zlib has zstd (>= 22.15) decompresses in process instead.
import { PassThrough, type Duplex, type Readable } from 'node:stream';
import { availableParallelism } from 'node:os';
import * as zlib from 'node:zlib';
import { KilnError, UnpackError, UsageError } from '../errors.js';
import { layerCompression, MediaType, type LayerCompression } from '../oci/media-types.js';
import { ChildProcessStream } from './child-process-stream.js';
import { ParallelGzip } from './parallel-gzip.js';

/** How new layers are compressed. `level` as kaniko's --compression-level: undefined or -1 is the codec's default. */
export type LayerCodec =
  | { readonly kind: 'gzip'; readonly level?: number }
  | { readonly kind: 'zstd'; readonly level?: number };

export const DEFAULT_CODEC: LayerCodec = { kind: 'gzip' };

/**
 * How a layer file may be written: a user's codec, or not compressed at all (`none`: the plain tar,
 * its digest its diffID) for layers that never leave the build (a stage no output holds, without the
 * layer cache), as BuildKit keeps its snapshots and compresses only what it exports.
 */
export type LayerFileCodec = LayerCodec | { readonly kind: 'none' };
export const UNCOMPRESSED: LayerFileCodec = { kind: 'none' };

/** Levels each codec accepts (besides -1, the default): zlib's 0-9; zstd's 1-19 without --ultra. */
export const CODEC_LEVELS = { gzip: { min: 0, max: 9 }, zstd: { min: 1, max: 19 } } as const;

/**
 * A codec from kaniko's flags, checked: `level` undefined or -1 means the codec's default (zlib's 6,
 * zstd's 3). A level outside the codec's range is a usage error, reported before anything is built.
 */
export function layerCodec(kind: LayerCodec['kind'], level?: number): LayerCodec {
  if (level === undefined || level === -1) return { kind };
  const { min, max } = CODEC_LEVELS[kind];
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new UsageError(`invalid flag --compression-level: ${level} is not a ${kind} level (${min}-${max}, or -1 for the default)`);
  }
  return { kind, level };
}

/** The OCI media type of a layer written with `codec` (assembly maps it to the docker family if needed). */
export function codecMediaType(codec: LayerFileCodec): string {
  switch (codec.kind) {
    case 'none':
      return MediaType.OciLayer;
    case 'gzip':
      return MediaType.OciLayerGzip;
    case 'zstd':
      return MediaType.OciLayerZstd;
  }
}

/** A stream turning an uncompressed tar into a blob compressed with `codec`. */
export function compressor(codec: LayerFileCodec): Duplex {
  if (codec.kind === 'none') return new PassThrough();
  const { level } = layerCodec(codec.kind, codec.level);
  switch (codec.kind) {
    case 'gzip':
      return new ParallelGzip(level === undefined ? {} : { level });
    case 'zstd':
      // -T: zstd's own threads; its output does not depend on their number (checked in the tests).
      return new ChildProcessStream({
        command: 'zstd',
        args: ['-q', '-c', `-T${availableParallelism()}`, `-${level ?? 3}`],
        error: (detail, cause) => new KilnError('OUTPUT', `compressing a layer with zstd: ${detail}`, { cause }),
      });
  }
}

/** A stream turning a compressed layer blob of `mediaType` into its uncompressed tar. */
export function decompressor(mediaType: string): Duplex {
  return decompressorFor(layerCompression(mediaType));
}

export function decompressorFor(compression: LayerCompression): Duplex {
  switch (compression) {
    case 'gzip':
      // Multi-member gzip (concatenated streams) is read whole by zlib's gunzip, as by Go's gzip reader.
      // 256 KiB output chunks: a sixteenth of the thread-pool round trips of the 16 KiB default.
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'zstd': {
      const create = (zlib as { createZstdDecompress?: () => Duplex }).createZstdDecompress;
      if (create !== undefined) return create();
      return new ChildProcessStream({
        command: 'zstd',
        args: ['-q', '-d', '-c'],
        error: (detail, cause) => new UnpackError(`decompressing a zstd layer: ${detail}`, { cause }),
      });
    }
    case 'none':
      return new PassThrough();
  }
}

/** `compressed` piped through the decompressor for `mediaType`; errors on either side reach the result. */
export function decompress(compressed: Readable, mediaType: string): Readable {
  const out = decompressor(mediaType);
  compressed.on('error', (err) => out.destroy(err));
  return compressed.pipe(out);
}
