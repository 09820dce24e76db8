// RUN output of overlapping stages: whole lines, each after its stage's name, never split inside a
// UTF-8 sequence, and the last partial line closed so another stage's line cannot continue it.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { endStream, prefixLines } from '../../src/log/line-prefixer.js';

const sink = () => {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      done();
    },
  });
  return { w, text: () => Buffer.concat(chunks).toString('utf8'), chunks };
};

describe('prefixLines', () => {
  it('prefixes each line, across chunk boundaries and inside a multi-byte character', async () => {
    const s = sink();
    const p = prefixLines(s.w, '[one] ');
    const bytes = Buffer.from('héllo\nwor', 'utf8');
    p.write(bytes.subarray(0, 2)); // cuts 'é' in half
    p.write(bytes.subarray(2));
    p.write('ld\n\nlast');
    await endStream(p);
    expect(s.text()).toBe('[one] héllo\n[one] world\n[one] \n[one] last\n');
    expect(s.w.writableEnded).toBe(false);
  });

  it('writes each line whole, so two stages sharing a stream never mix within a line', async () => {
    const s = sink();
    const a = prefixLines(s.w, '[a] ');
    const b = prefixLines(s.w, '[b] ');
    a.write('a1 ');
    b.write('b1\n');
    a.write('a1 end\na2');
    b.write('b2\n');
    await Promise.all([endStream(a), endStream(b)]);
    expect(s.text().split('\n').filter(Boolean).sort()).toEqual(['[a] a1 a1 end', '[a] a2', '[b] b1', '[b] b2']);
  });

  it('writes nothing for a stage that printed nothing', async () => {
    const s = sink();
    await endStream(prefixLines(s.w, '[quiet] '));
    expect(s.chunks.filter((c) => c.length > 0)).toEqual([]);
  });
});
