// Compresses one chunk of a layer into a piece of a raw deflate stream, on libuv's thread pool (zlib's
// async API), deciding first whether deflate pays for it at all.
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { storedBlocks } from './deflate-framing.js';

const deflateRaw = promisify(zlib.deflateRaw) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

/** deflate's window: the dictionary a chunk may refer back into. */
export const DEFLATE_WINDOW = 32 * 1024;

/** Slices probed to decide whether a chunk compresses, and their size. */
const PROBE_SLICES = 4;
const PROBE_SLICE_BYTES = 8 * 1024;
/**
 * A chunk whose probe shrinks by less than this is stored. Random, already-compressed and encrypted
 * data probe at ~1.0; text and binaries at 0.2-0.6, so the exact value hardly matters.
 */
const STORE_RATIO = 0.97;

export interface DeflatedChunk {
  readonly bytes: Buffer;
  readonly stored: boolean;
}

export interface DeflateChunkParams {
  /** zlib level: -1 default, 0 store everything, 1-9. */
  readonly level: number;
  /** Up to the last 32 KiB of the data before this chunk; matches may refer into it. */
  readonly dictionary: Buffer | undefined;
  /** The last chunk ends the deflate stream (BFINAL); the others end with a sync flush on a byte boundary. */
  readonly final: boolean;
}

/**
 * `data` as a piece of one deflate stream. Each piece but the last ends with a sync flush, so pieces
 * made independently (and in parallel) concatenate into a valid stream, as pigz does; with the previous
 * 32 KiB as dictionary the ratio is that of a serial deflate. The bytes depend only on the data and the
 * level, never on timing or core count, so layer digests are reproducible.
 */
export async function deflateChunk(data: Buffer, p: DeflateChunkParams): Promise<DeflatedChunk> {
  if (p.level === 0 || (await incompressible(data))) return { bytes: storedBlocks(data, p.final), stored: true };
  const opts: zlib.ZlibOptions = {
    level: p.level,
    // zlib's output buffer; its default of 16 KiB makes a 1 MiB chunk ~16 trips between the thread pool
    // and the main thread, where a busy main thread (hashing, I/O) leaves the pool thread idle.
    chunkSize: outputBound(data.length),
    finishFlush: p.final ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
  };
  if (p.dictionary !== undefined && p.dictionary.length > 0) opts.dictionary = p.dictionary;
  return { bytes: await deflateRaw(data, opts), stored: false };
}

/** Room for deflate's output of `n` bytes in one go: stored blocks add 5 bytes per 16-64 KiB. */
function outputBound(n: number): number {
  return Math.max(64 * 1024, n + (n >> 10) + 1024);
}

/**
 * Whether deflate would gain (next to) nothing on `data`, judged from a level-1 deflate of a few slices
 * spread over it: ~1/32 of a 1 MiB chunk, where deflating all of it would run at ~40 MB/s on random data.
 */
async function incompressible(data: Buffer): Promise<boolean> {
  if (data.length < PROBE_SLICES * PROBE_SLICE_BYTES * 2) return false;
  const stride = Math.floor((data.length - PROBE_SLICE_BYTES) / (PROBE_SLICES - 1));
  const probe = Buffer.allocUnsafe(PROBE_SLICES * PROBE_SLICE_BYTES);
  for (let i = 0; i < PROBE_SLICES; i++) data.copy(probe, i * PROBE_SLICE_BYTES, i * stride, i * stride + PROBE_SLICE_BYTES);
  const out = await deflateRaw(probe, { level: 1, chunkSize: outputBound(probe.length) });
  return out.length >= probe.length * STORE_RATIO;
}
