// gzip on all cores: the input is cut into fixed-size chunks, each deflated on libuv's thread pool
// (zlib's async API) with the previous 32 KiB as dictionary, and the pieces are emitted in order as ONE
// gzip member (pigz's layout), so every gzip reader takes it, not only multi-member ones. Chunks that do
// not compress are stored instead of deflated (see deflate-chunk.ts). Memory stays flat: at most
// `concurrency` chunks are out being compressed (plus the one filling and the one held back), and input
// is only taken when one is done: ~(concurrency + 2) x 2 MiB whatever the layer's size.
//
// Why libuv's pool and not worker_threads: zlib's async calls already run there, one call per chunk,
// with no thread start-up (a build makes many small layers), no copying of chunks between isolates, and
// nothing for the main thread to do but the CRC and the hashes.
import { availableParallelism } from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { DEFLATE_WINDOW, deflateChunk, type DeflatedChunk } from './deflate-chunk.js';
import { gzipHeader, gzipTrailer } from './deflate-framing.js';

export interface ParallelGzipOptions {
  /** zlib level: -1 (default, 6), 0 (store only) .. 9. */
  readonly level?: number;
  /** Bytes per independently compressed chunk. Fixed, never derived from the core count: it shapes the output. */
  readonly chunkSize?: number;
  /**
   * Chunks in flight at once. Default: one more than the cores (so a core never waits on the main
   * thread), but at most 3: libuv's pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise, and file
   * reads and writes queue behind the deflate jobs for one. A caller that raised the pool size passes more.
   */
  readonly concurrency?: number;
}

/** libuv's default thread-pool size, less one thread kept for file I/O. */
const DEFAULT_MAX_IN_FLIGHT = 3;

export const DEFAULT_GZIP_CHUNK = 1024 * 1024;

export interface ParallelGzipStats {
  readonly chunks: number;
  readonly storedChunks: number;
}

interface Job {
  readonly result: Promise<DeflatedChunk>;
  /** Set when `result` has resolved, so finished chunks can be emitted without waiting. */
  done: DeflatedChunk | undefined;
}

export class ParallelGzip extends Transform {
  readonly #level: number;
  readonly #chunkSize: number;
  readonly #maxInFlight: number;
  /** The chunk being filled. */
  #fill: Buffer;
  #fillLen = 0;
  /** A full chunk held back until we know whether more data follows (the last chunk closes the stream). */
  #held: Buffer | undefined;
  #dictionary: Buffer | undefined;
  readonly #queue: Job[] = [];
  #crc = 0;
  #size = 0;
  #chunks = 0;
  #stored = 0;

  constructor(opts: ParallelGzipOptions = {}) {
    super();
    this.#level = opts.level ?? -1;
    if (!Number.isInteger(this.#level) || this.#level < -1 || this.#level > 9) throw new RangeError(`gzip level ${this.#level} is not -1..9`);
    this.#chunkSize = opts.chunkSize ?? DEFAULT_GZIP_CHUNK;
    if (this.#chunkSize < DEFLATE_WINDOW) throw new RangeError(`gzip chunk size must be at least ${DEFLATE_WINDOW}`);
    this.#maxInFlight = Math.max(1, opts.concurrency ?? Math.min(availableParallelism() + 1, DEFAULT_MAX_IN_FLIGHT));
    this.#fill = Buffer.allocUnsafeSlow(this.#chunkSize);
    this.push(gzipHeader(this.#level));
  }

  /** How many chunks were written and how many of them stored; complete once the stream has ended. */
  get stats(): ParallelGzipStats {
    return { chunks: this.#chunks, storedChunks: this.#stored };
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    // Synchronous unless a full chunk must wait for room: a tar of small files arrives as two small
    // writes per file, and most of them only get copied.
    let off = 0;
    const step = (): void => {
      for (;;) {
        if (this.#fillLen === this.#chunkSize) {
          if (this.#held !== undefined) {
            const wait = this.#room();
            if (wait !== undefined) {
              wait.then(step, cb);
              return;
            }
            this.#dispatch(this.#held, false);
          }
          this.#held = this.#fill;
          this.#fill = Buffer.allocUnsafeSlow(this.#chunkSize);
          this.#fillLen = 0;
        }
        if (off >= chunk.length) break;
        const n = Math.min(this.#chunkSize - this.#fillLen, chunk.length - off);
        chunk.copy(this.#fill, this.#fillLen, off, off + n);
        this.#fillLen += n;
        off += n;
      }
      this.#emitReady();
      cb();
    };
    step();
  }

  override _flush(cb: TransformCallback): void {
    this.#finish().then(() => cb(), cb);
  }

  /** undefined when another chunk may start now; else a promise for when one may (the backpressure). */
  #room(): Promise<void> | undefined {
    if (this.#queue.length < this.#maxInFlight) return undefined;
    return (async () => {
      while (this.#queue.length >= this.#maxInFlight) await this.#emitHead();
    })();
  }

  async #finish(): Promise<void> {
    const rest = this.#fill.subarray(0, this.#fillLen);
    if (this.#held !== undefined) {
      await this.#room();
      this.#dispatch(this.#held, rest.length === 0);
    }
    if (rest.length > 0 || this.#held === undefined) {
      await this.#room();
      this.#dispatch(rest, true);
    }
    this.#held = undefined;
    while (this.#queue.length > 0) await this.#emitHead();
    this.push(gzipTrailer(this.#crc, this.#size));
  }

  /** Starts compressing `data` (after #room() allowed it). */
  #dispatch(data: Buffer, final: boolean): void {
    this.#crc = zlib.crc32(data, this.#crc);
    this.#size += data.length;
    const result = deflateChunk(data, { level: this.#level, dictionary: this.#dictionary, final });
    const job: Job = { result, done: undefined };
    // A failure is handled when the job's turn comes; this only keeps it from being reported as unhandled.
    result.then((out) => (job.done = out), () => {});
    this.#queue.push(job);
    // Every chunk but the last is at least 32 KiB, so its tail is the whole window the next one needs.
    this.#dictionary = data.subarray(Math.max(0, data.length - DEFLATE_WINDOW));
  }

  async #emitHead(): Promise<void> {
    const job = this.#queue[0];
    if (job === undefined) return;
    const out = await job.result;
    this.#queue.shift();
    this.#record(out);
  }

  /** Pushes the chunks at the head of the queue that are already done, so output flows while input does. */
  #emitReady(): void {
    for (let head = this.#queue[0]; head?.done !== undefined; head = this.#queue[0]) {
      this.#queue.shift();
      this.#record(head.done);
    }
  }

  #record(out: DeflatedChunk): void {
    this.#chunks++;
    if (out.stored) this.#stored++;
    this.push(out.bytes);
  }
}
