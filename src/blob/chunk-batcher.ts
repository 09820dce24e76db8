// Coalesces small chunks into larger ones before a stage that pays per chunk. zlib's streams hop to
// the thread pool for every write, and a tar of many small files arrives as two tiny chunks per file
// (header, padded content): batching cuts a 100,000-file layer's gzip time several times over.
import { Transform, type TransformCallback } from 'node:stream';

export class ChunkBatcher extends Transform {
  readonly #target: number;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /** `target`: bytes to gather before passing them on (memory held is at most this plus one chunk). */
  constructor(target = 64 * 1024) {
    super();
    this.#target = target;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= this.#target) this.#emit();
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.#pendingBytes > 0) this.#emit();
    cb();
  }

  #emit(): void {
    const out = this.#pending.length === 1 ? this.#pending[0] : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.push(out);
  }
}
