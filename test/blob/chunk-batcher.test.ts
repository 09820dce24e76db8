import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChunkBatcher } from '../../src/blob/chunk-batcher.js';

describe('ChunkBatcher', () => {
  it('passes the same bytes on in chunks of at least the target size (but the last)', async () => {
    const input = Array.from({ length: 500 }, (_, i) => randomBytes(1 + (i % 700)));
    const out = await Readable.from(input).pipe(new ChunkBatcher(4096)).toArray() as Buffer[];
    expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
    expect(out.slice(0, -1).every((c) => c.length >= 4096)).toBe(true);
  });
});
