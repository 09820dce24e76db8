// Compression by media type, for readers of layer blobs. gzip is what we write; zstd is read when the
// running Node has it (zlib gained zstd in Node 22.15), otherwise refused with a clear error.
import { PassThrough, type Readable, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { UnpackError } from '../errors.js';
import { layerCompression, type LayerCompression } from '../oci/media-types.js';

/** A transform turning a compressed layer blob of `mediaType` into its uncompressed tar. */
export function decompressor(mediaType: string): Transform {
  return decompressorFor(layerCompression(mediaType));
}

export function decompressorFor(compression: LayerCompression): Transform {
  switch (compression) {
    case 'gzip':
      // Multi-member gzip (concatenated streams) is handled by zlib's gunzip, as Go's gzip reader does.
      return zlib.createGunzip();
    case 'zstd': {
      const create = (zlib as { createZstdDecompress?: () => Transform }).createZstdDecompress;
      if (create === undefined) throw new UnpackError('zstd-compressed layers need Node.js >= 22.15 (zlib zstd support)');
      return create();
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

/** The gzip compressor layers are written with; `level` is zlib's (-1 default, 0-9). */
export function gzipCompressor(level?: number): Transform {
  return zlib.createGzip(level === undefined ? {} : { level });
}
