// The layer writer's headers are byte for byte what tar-stream (which wrote kiln's layers before)
// makes of the same entry, so layer digests did not change with the writer; and GNU tar reads them.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pack } from 'tar-stream';
import { END_OF_ARCHIVE, headerBlocks, padding, type UstarHeader } from '../../src/snapshot/ustar.js';
import { readAll } from '../registry/fixtures.js';
import { Readable } from 'node:stream';

const base = { mode: 0o644, uid: 0, gid: 0, mtimeSeconds: 1_700_000_000 } as const;
const CASES: (UstarHeader & { body?: string })[] = [
  { ...base, name: 'etc/passwd', type: 'file', size: 5, body: 'root\n' },
  { ...base, name: 'etc/', type: 'directory', size: 0, mode: 0o755 },
  { ...base, name: 'etc/shadow', type: 'file', size: 0, mode: 0 },
  { ...base, name: 'usr/bin/sudo', type: 'file', size: 1, mode: 0o4755, body: 'x' },
  { ...base, name: 'bin/sh', type: 'symlink', size: 0, linkname: 'busybox' },
  { ...base, name: 'bin/ash', type: 'link', size: 0, linkname: 'bin/busybox' },
  { ...base, name: 'dev/null', type: 'character-device', size: 0, devmajor: 1, devminor: 3 },
  { ...base, name: 'dev/sda', type: 'block-device', size: 0, devmajor: 8, devminor: 0 },
  { ...base, name: 'run/fifo', type: 'fifo', size: 0 },
  { ...base, name: `${'a'.repeat(80)}/${'b'.repeat(70)}/${'c'.repeat(90)}`, type: 'file', size: 2, body: 'ab' },
  { ...base, name: `${'a'.repeat(200)}`, type: 'file', size: 0 },
  { ...base, name: 'données/é.txt', type: 'file', size: 1, body: 'e' },
  { ...base, name: 'lib/long', type: 'symlink', size: 0, linkname: 't'.repeat(150) },
  { ...base, name: 'home/big', type: 'file', size: 0, uid: 3_000_000, gid: 3_000_001, pax: { uid: '3000000', gid: '3000001' } },
  { ...base, name: 'epoch', type: 'file', size: 0, mtimeSeconds: 0 },
];

async function viaTarStream(c: UstarHeader & { body?: string }): Promise<Buffer> {
  const p = pack();
  const typeBits = { file: 0o100000, directory: 0o040000, symlink: 0o120000, link: 0o100000, fifo: 0o010000, 'character-device': 0o020000, 'block-device': 0o060000 }[c.type];
  p.entry(
    {
      name: c.name,
      type: c.type,
      mode: typeBits | c.mode,
      uid: c.uid,
      gid: c.gid,
      size: c.size,
      mtime: new Date(c.mtimeSeconds * 1000),
      ...(c.linkname !== undefined ? { linkname: c.linkname } : {}),
      ...(c.devmajor !== undefined ? { devmajor: c.devmajor } : {}),
      ...(c.devminor !== undefined ? { devminor: c.devminor } : {}),
      ...(c.pax !== undefined ? { pax: { ...c.pax } } : {}),
    },
    Buffer.from(c.body ?? ''),
  );
  p.finalize();
  return readAll(Readable.from(p as AsyncIterable<Buffer>));
}

function viaUstar(c: UstarHeader & { body?: string }): Buffer {
  const body = Buffer.from(c.body ?? '');
  return Buffer.concat([headerBlocks({ ...c, size: body.length }), body, padding(body.length), END_OF_ARCHIVE]);
}

describe('ustar headers', () => {
  it.each(CASES.map((c) => [c.name.slice(0, 40), c] as const))('%s: the same bytes as tar-stream', async (_name, c) => {
    expect(viaUstar(c).equals(await viaTarStream(c))).toBe(true);
  });

  it('GNU tar lists every entry with its name, type, owner and link target', () => {
    const tar = Buffer.concat([...CASES.map((c) => viaUstar(c).subarray(0, -END_OF_ARCHIVE.length)), END_OF_ARCHIVE]);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', '-'], { input: tar }).toString().trim().split('\n');
    expect(listing).toHaveLength(CASES.length);
    for (const [i, c] of CASES.entries()) {
      const line = listing[i] ?? '';
      expect(line).toContain(c.type === 'directory' ? c.name : c.name.replace(/\/$/, ''));
      expect(line).toContain(`${c.uid}/${c.gid}`);
      if (c.linkname !== undefined) expect(line).toContain(c.linkname);
    }
  });
});
