// A pass-through transform that hashes and counts the bytes flowing through it, so digests and sizes
// come out of the same pass that moves the data (no second read, no buffering).
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError } from '../errors.js';
import { sha256Digest, type Digest } from '../oci/digest.js';

export class DigestingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #digest: Digest | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#digest = sha256Digest(this.#hash.digest('hex'));
    cb();
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The sha256 of everything that passed; only after the stream has ended. */
  get digest(): Digest {
    if (this.#digest === undefined) throw new Error('DigestingStream: digest read before the stream ended');
    return this.#digest;
  }
}

/**
 * A pass-through that fails the stream (instead of ending it) when the bytes do not hash to `expected`
 * or, if given, do not add up to `expectedSize`: a consumer never sees a clean end on bad data.
 */
export class VerifyingStream extends Transform {
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  readonly #expected: Digest;
  readonly #expectedSize: number | undefined;
  readonly #what: string;

  constructor(what: string, expected: Digest, expectedSize?: number) {
    super();
    this.#what = what;
    this.#expected = expected;
    this.#expectedSize = expectedSize;
  }

  /** The digest the bytes must hash to: a consumer that wants the same check need not hash them again. */
  get expected(): Digest {
    return this.#expected;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    if (this.#expectedSize !== undefined && this.#bytes > this.#expectedSize) {
      cb(new DigestMismatchError(`${this.#what}: more bytes than the ${this.#expectedSize} expected`, this.#expected, 'a longer blob'));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const actual = sha256Digest(this.#hash.digest('hex'));
    if (this.#expectedSize !== undefined && this.#bytes !== this.#expectedSize) {
      cb(new DigestMismatchError(`${this.#what}: size ${this.#bytes} instead of ${this.#expectedSize}`, this.#expected, actual));
      return;
    }
    if (actual !== this.#expected) {
      cb(new DigestMismatchError(this.#what, this.#expected, actual));
      return;
    }
    cb();
  }
}
