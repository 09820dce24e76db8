import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { ChildProcessStream } from '../../src/blob/child-process-stream.js';

const error = (detail: string) => new Error(`filter: ${detail}`);

describe('ChildProcessStream', () => {
  it('passes bytes through a filter with backpressure (a slow consumer, many MiB)', async () => {
    const input = randomBytes(8 * 1024 * 1024);
    const out: Buffer[] = [];
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        setImmediate(cb);
      },
    });
    await pipeline(Readable.from([input]), new ChildProcessStream({ command: 'cat', args: [], error }), slow);
    expect(Buffer.concat(out).equals(input)).toBe(true);
  });

  it('fails with the exit status and first stderr line of a failing child', async () => {
    const stream = new ChildProcessStream({ command: 'sh', args: ['-c', 'cat >/dev/null; echo "bad input" >&2; exit 3'], error });
    await expect(pipeline(Readable.from([Buffer.from('x')]), stream, new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow(
      'filter: sh failed (exit 3): bad input',
    );
  });

  it('says which package to install when the binary is missing', async () => {
    const stream = new ChildProcessStream({ command: 'kiln-no-such-filter', args: [], error });
    await expect(pipeline(Readable.from([Buffer.from('x')]), stream, new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow(
      /kiln-no-such-filter is not installed/,
    );
  });

  it('fails when the child stops reading and exits 0 early (output would be truncated)', async () => {
    const stream = new ChildProcessStream({ command: 'head', args: ['-c', '10'], error });
    const input = Readable.from(Array.from({ length: 64 }, () => randomBytes(64 * 1024)));
    await expect(pipeline(input, stream, new Writable({ write: (_c, _e, cb) => cb() }))).rejects.toThrow(/stopped reading|EPIPE/);
  });
});
