// A layer written to a file under the build's work dir, and the one-pass writer that makes it:
// tar -> hash (diffID) -> compress (gzip on all cores, or zstd) -> hash + count (digest, size) -> file. The layer reopens its file on
// every read, so sinks can read it any number of times.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../oci/digest.js';
import type { Layer } from '../oci/image.js';
import { MediaType } from '../oci/media-types.js';
import { codecMediaType, compressor, decompress, DEFAULT_CODEC, type LayerCodec } from './compression.js';
import { DigestingStream } from './digesting.js';
import { writeStreamClosed } from './write-stream-closed.js';

export interface FileLayerParts {
  readonly path: string;
  /** sha256 of the compressed file. */
  readonly digest: Digest;
  /** sha256 of the uncompressed tar. */
  readonly diffId: Digest;
  /** Size of the compressed file in bytes. */
  readonly size: number;
  readonly mediaType?: string;
}

export class FileLayer implements Layer {
  readonly path: string;
  readonly #digest: Digest;
  readonly #diffId: Digest;
  readonly #size: number;
  readonly #mediaType: string;

  /** For a file whose digests are already known (just written, or recorded in a cache). */
  constructor(parts: FileLayerParts) {
    this.path = parts.path;
    this.#digest = parts.digest;
    this.#diffId = parts.diffId;
    this.#size = parts.size;
    this.#mediaType = parts.mediaType ?? MediaType.OciLayerGzip;
  }

  async digest(): Promise<Digest> {
    return this.#digest;
  }
  async diffId(): Promise<Digest> {
    return this.#diffId;
  }
  async size(): Promise<number> {
    return this.#size;
  }
  async mediaType(): Promise<string> {
    return this.#mediaType;
  }
  async compressed(): Promise<Readable> {
    return createReadStream(this.path, { highWaterMark: 1024 * 1024 });
  }
  async uncompressed(): Promise<Readable> {
    return decompress(createReadStream(this.path, { highWaterMark: 1024 * 1024 }), this.#mediaType);
  }
}

export interface WriteLayerOptions {
  /** How to compress (default gzip at zlib's default level). */
  readonly codec?: LayerCodec;
}

/**
 * Streams `tar` into a compressed layer file at `path` in one pass and returns it with both digests.
 * The file appears at `path` only when complete: bytes go to a sibling temp file renamed at the end,
 * so a failed or aborted write never leaves a truncated layer behind under the final name.
 */
export async function writeLayerFile(tar: Readable, path: string, opts: WriteLayerOptions = {}): Promise<FileLayer> {
  const codec = opts.codec ?? DEFAULT_CODEC;
  const tmp = `${path}.partial-${randomBytes(6).toString('hex')}`;
  const tarHash = new DigestingStream();
  const blobHash = new DigestingStream();
  let out: WriteStream | undefined;
  try {
    // Made before the pipeline so a bad level fails before the tar stream is touched.
    const compress = compressor(codec);
    out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    await pipeline(tar, tarHash, compress, blobHash, out);
    await rename(tmp, path);
  } catch (err) {
    if (out !== undefined) await writeStreamClosed(out);
    await rm(tmp, { force: true });
    throw err;
  }
  return new FileLayer({ path, diffId: tarHash.digest, digest: blobHash.digest, size: blobHash.bytes, mediaType: codecMediaType(codec) });
}
