import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodePaxRecords } from '../../src/rootfs/pax-records.js';
import { TarFormatError, TarReader, type TarHeader } from '../../src/rootfs/tar-reader.js';
import { encodePaxRecords, paxEntryBytes } from '../../src/snapshot/pax-header.js';
import { tarBytes, tempDir } from './fixtures.js';

interface Read {
  header: TarHeader;
  body: Buffer;
}

/** Everything a TarReader gives for `bytes` fed in chunks of `chunk` bytes. */
function read(bytes: Buffer, chunk = bytes.length): Read[] {
  const out: Read[] = [];
  let parts: Buffer[] = [];
  let current: TarHeader | undefined;
  const reader = new TarReader({
    entry: (h) => {
      current = h;
      parts = [];
    },
    data: (c) => parts.push(Buffer.from(c)),
    end: () => out.push({ header: current as TarHeader, body: Buffer.concat(parts) }),
  });
  for (let off = 0; off < bytes.length; off += chunk) reader.push(bytes.subarray(off, off + chunk));
  reader.finish();
  return out;
}

/** A capability as setcap writes it (vfs_cap_data v2): binary, with NULs and bytes above 0x7f. */
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

describe('PAX records', () => {
  it('encodes lengths that count their own digits, across digit-count boundaries', () => {
    for (let n = 0; n < 1100; n += 1) {
      const body = encodePaxRecords([['k', 'v'.repeat(n)]]);
      const len = Number.parseInt(body.toString('latin1').split(' ')[0] as string, 10);
      expect(len).toBe(body.length);
    }
  });

  it('keeps binary values byte for byte through encode and decode', () => {
    const body = encodePaxRecords([['path', 'é/ü'], ['SCHILY.xattr.security.capability', CAP], ['uid', '1000000']]);
    const records = decodePaxRecords(body);
    expect(records.get('SCHILY.xattr.security.capability')).toEqual(CAP);
    expect(records.get('path')?.toString()).toBe('é/ü');
    expect(records.get('uid')?.toString()).toBe('1000000');
  });

  it('writes an x entry GNU tar reads, with the binary xattr intact', async () => {
    const tmp = await tempDir();
    try {
      const file = await tarBytes([{ name: 'placeholder', content: 'bin' }]);
      const pax = paxEntryBytes(encodePaxRecords([['path', 'usr/bin/ping'], ['SCHILY.xattr.security.capability', CAP]]), 0);
      await writeFile(join(tmp.path, 'l.tar'), Buffer.concat([pax, file]));
      await mkdir(join(tmp.path, 'x'));
      execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xf', join(tmp.path, 'l.tar'), '-C', join(tmp.path, 'x')]);
      expect(execFileSync('getcap', [join(tmp.path, 'x/usr/bin/ping')]).toString()).toMatch(/cap_net_raw=ep/);
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('TarReader', () => {
  it('gives headers, bodies and raw PAX values, whatever the chunking', async () => {
    const long = `${'d'.repeat(120)}/${'e'.repeat(150)}/f.txt`;
    const tar = Buffer.concat([
      paxEntryBytes(encodePaxRecords([['path', 'bin/ping'], ['SCHILY.xattr.security.capability', CAP], ['mtime', '1600000000.25']]), 0),
      await tarBytes([
        { name: 'x', content: 'ping', mode: 0o4755 },
        { name: long, content: 'x'.repeat(1000), uid: 1_000_000, pax: { uid: '1000000' } },
        { name: 'dir/', type: 'directory', mode: 0o1777 },
        { name: 'l', type: 'symlink', linkname: '../t' },
        { name: 'h', type: 'link', linkname: 'bin/ping' },
        { name: 'p', type: 'fifo' },
      ]),
    ]);
    const whole = read(tar);
    for (const chunk of [1, 7, 511, 512, 513]) expect(read(tar, chunk)).toEqual(whole);
    expect(whole.map((e) => [e.header.name, e.header.type, e.body.length])).toEqual([
      ['bin/ping', 'file', 4],
      [long, 'file', 1000],
      ['dir/', 'directory', 0],
      ['l', 'symlink', 0],
      ['h', 'link', 0],
      ['p', 'fifo', 0],
    ]);
    const ping = whole[0]?.header;
    expect(ping?.pax?.get('SCHILY.xattr.security.capability')).toEqual(CAP);
    expect(ping?.mode).toBe(0o4755);
    expect(ping?.mtime).toBe(1600000000.25);
    expect(whole[1]?.header.uid).toBe(1_000_000);
    expect(whole[2]?.header.mode).toBe(0o1777);
    expect(whole[3]?.header.linkname).toBe('../t');
  });

  it('reads GNU tar output: long names (././@LongLink), base-256 ids', async () => {
    const tmp = await tempDir();
    try {
      const deep = `${'a'.repeat(90)}/${'b'.repeat(90)}/${'c'.repeat(90)}`;
      await mkdir(join(tmp.path, 'src', deep), { recursive: true });
      await writeFile(join(tmp.path, 'src', deep, 'f'), 'gnu');
      execFileSync('tar', ['--format=gnu', '--owner=3000000000', '--group=7', '--numeric-owner', '-cf', join(tmp.path, 'l.tar'), '-C', join(tmp.path, 'src'), '.']);
      const entries = read(execFileSync('cat', [join(tmp.path, 'l.tar')]));
      const f = entries.find((e) => e.header.name.endsWith('/f'));
      expect(f?.header.name).toBe(`./${deep}/f`);
      expect(f?.header.uid).toBe(3_000_000_000);
      expect(f?.body.toString()).toBe('gnu');
    } finally {
      await tmp.cleanup();
    }
  });

  it('takes a header checksummed over signed bytes (old Sun tars) as well as unsigned, and nothing else', async () => {
    const tar = Buffer.from(await tarBytes([{ name: 'a', content: 'x' }]));
    // A byte >= 128 in the header's unused tail (500-511), where the two sums part.
    tar[505] = 0xe9;
    const header = tar.subarray(0, 512);
    let unsigned = 8 * 0x20;
    let signed = 8 * 0x20;
    for (let i = 0; i < 512; i++) {
      if (i >= 148 && i < 156) continue;
      const b = header[i] as number;
      unsigned += b;
      signed += b < 128 ? b : b - 256;
    }
    expect(signed).toBe(unsigned - 256);
    const withSum = (sum: number): Buffer => {
      const t = Buffer.from(tar);
      t.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
      return t;
    };
    expect(read(withSum(unsigned))[0]?.header.name).toBe('a');
    expect(read(withSum(signed))[0]?.header.name).toBe('a');
    expect(() => read(withSum(unsigned + 1))).toThrow(/checksum/);
    expect(() => read(withSum(signed - 1))).toThrow(/checksum/);
  });

  it('fails on a tar cut inside an entry, and on a corrupt header', async () => {
    const tar = await tarBytes([{ name: 'a', content: 'x'.repeat(5000) }]);
    expect(() => read(tar.subarray(0, 1024))).toThrow(TarFormatError);
    expect(() => read(tar.subarray(0, 700))).toThrow(/unexpected end/);
    const bad = Buffer.from(tar);
    bad[10] = 0x41;
    expect(() => read(bad)).toThrow(/checksum/);
  });
});
