// The byte-level pieces of a gzip member (RFC 1952) around a raw deflate stream (RFC 1951) that
// ParallelGzip assembles from independently compressed chunks: header, trailer and stored blocks.

/** Largest payload of one stored deflate block (LEN is 16 bits). */
const STORED_BLOCK_MAX = 0xffff;

/**
 * The 10-byte gzip header: no name, no mtime (so equal input gives an equal blob), OS "unknown" (255)
 * as Go's compress/gzip writes it. XFL hints the level as zlib does (2 = best, 4 = fastest).
 */
export function gzipHeader(level: number): Buffer {
  const xfl = level === 9 ? 2 : level === 1 ? 4 : 0;
  return Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0xff]);
}

/** The 8-byte gzip trailer: CRC-32 and size modulo 2^32 of the uncompressed data, little-endian. */
export function gzipTrailer(crc: number, size: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(size % 2 ** 32, 4);
  return t;
}

/**
 * `data` as stored (uncompressed) deflate blocks, starting on a byte boundary (every chunk before it
 * ended with a sync flush, or the stream just began). `final` sets BFINAL on the last block; empty data
 * still yields one block so a final chunk can always close the stream. Cost: one copy, 5 bytes per 64 KiB.
 */
export function storedBlocks(data: Buffer, final: boolean): Buffer {
  const blocks = Math.max(1, Math.ceil(data.length / STORED_BLOCK_MAX));
  const out = Buffer.allocUnsafe(data.length + blocks * 5);
  let at = 0;
  for (let b = 0; b < blocks; b++) {
    const start = b * STORED_BLOCK_MAX;
    const len = Math.min(STORED_BLOCK_MAX, data.length - start);
    // Header bits: BFINAL, then BTYPE=00 (stored); the rest of the byte is padding to the boundary.
    out[at] = final && b === blocks - 1 ? 1 : 0;
    out.writeUInt16LE(len, at + 1);
    out.writeUInt16LE(~len & 0xffff, at + 3);
    data.copy(out, at + 5, start, start + len);
    at += 5 + len;
  }
  return out;
}
