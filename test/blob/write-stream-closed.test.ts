import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeStreamClosed } from '../../src/blob/write-stream-closed.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-wsc-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A source that fails at once, before the write stream's lazy open can have landed. */
function failingSource(): Readable {
  return new Readable({
    read() {
      this.destroy(new Error('source broke'));
    },
  });
}

describe('writeStreamClosed', () => {
  it('after it resolves, removing a failed pipeline\'s temp file leaves nothing behind', async () => {
    for (let i = 0; i < 50; i++) {
      const tmp = join(dir, `t${i}`);
      const out = createWriteStream(tmp);
      await expect(pipeline(failingSource(), out)).rejects.toThrow('source broke');
      await writeStreamClosed(out);
      await rm(tmp, { force: true });
    }
    await sleep(50);
    expect(await readdir(dir)).toEqual([]);
  });

  it('resolves for a stream that was never used and one already closed', async () => {
    const unused = createWriteStream(join(dir, 'unused'));
    await writeStreamClosed(unused);
    expect(unused.closed).toBe(true);
    await writeStreamClosed(unused);
  });
});
