// A layer written to a file under the build's work dir, and the one-pass writer that makes it:
// tar -> hash (diffID) -> compress (gzip on all cores, or zstd) -> hash + count (digest, size) -> file. The layer reopens its file on
// every read, so sinks can read it any number of times.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../oci/digest.js';
import type { Layer } from '../oci/image.js';
import { MediaType } from '../oci/media-types.js';
import { codecMediaType, compressor, decompress, DEFAULT_CODEC, type LayerFileCodec } from './compression.js';
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
  readonly codec?: LayerFileCodec;
  /** Told once, when the write starts, how to follow the compressed blob while it is written. */
  readonly onWriting?: (writing: LayerWriting) => void;
}

/** A layer file being written: its compressed bytes can be read (e.g. uploaded) before it is complete. */
export interface LayerWriting {
  /** Compressed bytes in the file so far. */
  written(): number;
  /** The finished layer, or the write's failure. */
  readonly done: Promise<FileLayer>;
  /**
   * The compressed blob from its first byte, read from the file as it grows: ends once the layer is
   * complete, fails if its write does. Any number of readers, each from the start.
   */
  follow(): Readable;
}

/** How often a reader of a growing layer file looks for more bytes when it has caught up. */
const FOLLOW_POLL_MS = 15;
const FOLLOW_CHUNK = 1024 * 1024;

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
  // What readers following the write see: the end (size known) or the failure.
  const state: { out: WriteStream | undefined; size: number | undefined; failed: unknown } = { out: undefined, size: undefined, failed: undefined };
  let settle: { resolve: (l: FileLayer) => void; reject: (e: unknown) => void } | undefined;
  if (opts.onWriting !== undefined) {
    const done = new Promise<FileLayer>((resolve, reject) => (settle = { resolve, reject }));
    // Whoever follows handles the failure through follow(); this only keeps it from being unhandled.
    done.catch(() => {});
    opts.onWriting({ written: () => state.size ?? state.out?.bytesWritten ?? 0, done, follow: () => Readable.from(followFile(tmp, path, state)) });
  }
  try {
    // Made before the pipeline so a bad level fails before the tar stream is touched.
    const compress = compressor(codec);
    out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    state.out = out;
    // Not compressed: the blob is the tar, hashed once.
    if (codec.kind === 'none') await pipeline(tar, tarHash, out);
    else await pipeline(tar, tarHash, compress, blobHash, out);
    state.size = codec.kind === 'none' ? tarHash.bytes : blobHash.bytes;
    await rename(tmp, path);
  } catch (err) {
    state.failed = err ?? new Error('layer write failed');
    if (out !== undefined) await writeStreamClosed(out);
    await rm(tmp, { force: true });
    settle?.reject(err);
    throw err;
  }
  const blob = codec.kind === 'none' ? tarHash : blobHash;
  const layer = new FileLayer({ path, diffId: tarHash.digest, digest: blob.digest, size: blob.bytes, mediaType: codecMediaType(codec) });
  settle?.resolve(layer);
  return layer;
}

/**
 * The bytes of `file` while a layer write fills it: up to what the write stream has written (whole
 * writes only), waiting for more until the size is final. The descriptor stays valid across the
 * rename of the finished file.
 */
async function* followFile(file: string, final: string, state: { readonly out: WriteStream | undefined; readonly size: number | undefined; readonly failed: unknown }): AsyncGenerator<Buffer> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    for (let pos = 0; ; ) {
      if (state.failed !== undefined) throw state.failed;
      const size = state.size;
      const limit = size ?? state.out?.bytesWritten ?? 0;
      if (pos < limit) {
        // Renamed to its final name once complete: a reader starting that late opens it there.
        fh ??= await open(file, 'r').catch((err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || state.size === undefined) throw err;
          return open(final, 'r');
        });
        const buf = Buffer.allocUnsafe(Math.min(FOLLOW_CHUNK, limit - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) throw new Error(`layer file ${file} ended at ${pos} bytes, short of ${limit}`);
        pos += bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
        continue;
      }
      if (size !== undefined) return;
      await sleep(FOLLOW_POLL_MS);
    }
  } finally {
    await fh?.close();
  }
}
