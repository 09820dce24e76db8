import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { storedBlocks } from '../../src/blob/deflate-framing.js';
import { ParallelGzip, type ParallelGzipOptions } from '../../src/blob/parallel-gzip.js';

const CHUNK = 64 * 1024;

/** Text-like data that deflates well but not trivially (no long exact repeats). */
function textish(bytes: number): Buffer {
  const words = ['layer', 'digest', 'manifest', 'snapshot', 'rootfs', 'kiln', 'tar', 'gzip', 'zstd', 'whiteout'];
  let s = '';
  for (let i = 0; s.length < bytes; i++) s += `${words[(i * 7919) % words.length]}-${i % 997} `;
  return Buffer.from(s.slice(0, bytes));
}

async function gzipWith(input: Buffer | Buffer[], opts: ParallelGzipOptions): Promise<{ gz: Buffer; stats: ParallelGzip['stats'] }> {
  const stream = new ParallelGzip({ chunkSize: CHUNK, ...opts });
  const parts = Array.isArray(input) ? input : [input];
  const gz = Buffer.concat(await Readable.from(parts).pipe(stream).toArray());
  return { gz, stats: stream.stats };
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

describe('ParallelGzip', () => {
  it('writes many chunks as ONE gzip member that gzip -t, gunzip and zlib read back exactly', async () => {
    const input = Buffer.concat([textish(300_000), randomBytes(200_000), textish(150_000)]);
    const { gz, stats } = await gzipWith(input, { concurrency: 3 });
    expect(stats.chunks).toBe(Math.ceil(input.length / CHUNK));
    execFileSync('gzip', ['-t'], { input: gz });
    expect(sha256(execFileSync('gunzip', ['-c'], { input: gz, maxBuffer: 1 << 24 }))).toBe(sha256(input));
    expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
    // One member: the deflate stream after the 10-byte header ends (BFINAL) right before an 8-byte
    // trailer whose CRC and size cover the whole input, not just a last member's share of it.
    const body = gz.subarray(10, gz.length - 8);
    expect(zlib.inflateRawSync(body).equals(input)).toBe(true);
    expect(gz.readUInt32LE(gz.length - 8)).toBe(zlib.crc32(input));
    expect(gz.readUInt32LE(gz.length - 4)).toBe(input.length);
  });

  it('stores chunks of random data instead of deflating them, and deflates compressible chunks', async () => {
    const random = randomBytes(8 * CHUNK);
    const text = textish(4 * CHUNK);
    const { gz, stats } = await gzipWith(Buffer.concat([random, text]), {});
    expect(stats).toEqual({ chunks: 12, storedChunks: 8 });
    // Stored costs 5 bytes per 64 KiB block; the text shrinks.
    expect(gz.length).toBeLessThan(random.length + 8 * 16 + text.length / 3);
    expect(zlib.gunzipSync(gz).equals(Buffer.concat([random, text]))).toBe(true);
  });

  it('gives the same bytes whatever the concurrency and however the input is sliced (reproducible digests)', async () => {
    const input = Buffer.concat([textish(200_000), randomBytes(150_000), textish(100_000)]);
    const one = await gzipWith(input, { concurrency: 1 });
    const slices: Buffer[] = [];
    for (let at = 0; at < input.length; at += 1 + (at % 5003)) slices.push(input.subarray(at, Math.min(input.length, at + 1 + (at % 5003))));
    const many = await gzipWith(slices, { concurrency: 4 });
    expect(many.gz.equals(one.gz)).toBe(true);
  });

  it('keeps chunks in order when later chunks finish first', async () => {
    // Text chunks deflate slowly next to stored random chunks, so completion order differs from input order.
    const parts = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? textish(CHUNK) : randomBytes(CHUNK)));
    const input = Buffer.concat(parts);
    const { gz } = await gzipWith(input, { concurrency: 4 });
    expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
  });

  it('handles empty input, input of exactly one chunk and of one byte', async () => {
    for (const input of [Buffer.alloc(0), textish(CHUNK), Buffer.from('x'), textish(2 * CHUNK)]) {
      const { gz } = await gzipWith(input, {});
      execFileSync('gzip', ['-t'], { input: gz });
      expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
    }
  });

  it('level 0 stores everything; levels outside -1..9 are refused', async () => {
    const input = textish(3 * CHUNK);
    const { gz, stats } = await gzipWith(input, { level: 0 });
    expect(stats.storedChunks).toBe(3);
    expect(zlib.gunzipSync(gz).equals(input)).toBe(true);
    const best = await gzipWith(input, { level: 9 });
    expect(best.gz.length).toBeLessThan(gz.length / 3);
    expect(() => new ParallelGzip({ level: 10 })).toThrow(RangeError);
  });

  it('fails when its source fails midway', async () => {
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent++ < 5) this.push(randomBytes(CHUNK));
        else this.destroy(new Error('source broke'));
      },
    });
    const { pipeline } = await import('node:stream/promises');
    const { Writable } = await import('node:stream');
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    await expect(pipeline(source, new ParallelGzip({ chunkSize: CHUNK }), sink)).rejects.toThrow('source broke');
  });
});

describe('stored deflate blocks', () => {
  it('split data at 65535 bytes and inflate back, final or followed by more', () => {
    const data = randomBytes(200_000);
    expect(zlib.inflateRawSync(storedBlocks(data, true)).equals(data)).toBe(true);
    const empty = storedBlocks(Buffer.alloc(0), true);
    expect([...empty]).toEqual([1, 0, 0, 0xff, 0xff]);
    const joined = Buffer.concat([storedBlocks(data.subarray(0, 70_000), false), storedBlocks(data.subarray(70_000), true)]);
    expect(zlib.inflateRawSync(joined).equals(data)).toBe(true);
  });
});
