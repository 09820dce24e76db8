// Tar header blocks for layer entries, written byte for byte as tar-stream 3 writes them (which kiln
// used before): the same layer gives the same digest. Pure: no I/O. The layer writer (layer-tar.ts)
// puts these blocks, file bytes and padding into one stream itself, instead of going through
// tar-stream's per-entry streams and callbacks, which cost ~50 us an entry.
//
// ustar: name split into prefix/name at a `/` when over 100 bytes; a name or link target that ustar
// cannot hold (non-ASCII, too long), or explicit PAX records (uid/gid too large for 6 octal digits),
// go in a PAX `x` entry named `PaxHeader` before the entry, whose own header is then named
// `PaxHeader` too (readers take the records' path), as tar-stream does.

export const BLOCK = 512;

export type UstarType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo';

export interface UstarHeader {
  readonly name: string;
  /** Permission bits (and type bits, which are masked off). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtimeSeconds: number;
  readonly type: UstarType;
  readonly linkname?: string | undefined;
  readonly devmajor?: number | undefined;
  readonly devminor?: number | undefined;
  /** PAX records forced onto the entry (string values: tar-stream's records). */
  readonly pax?: Readonly<Record<string, string>> | undefined;
}

const TYPEFLAG: Record<UstarType | 'pax-header', number> = {
  file: 0,
  link: 1,
  symlink: 2,
  'character-device': 3,
  'block-device': 4,
  directory: 5,
  fifo: 6,
  'pax-header': 72,
};

/** The header block(s) of one entry: a PAX `x` entry first when ustar cannot hold it. */
export function headerBlocks(h: UstarHeader): Buffer {
  if (h.pax === undefined) {
    const plain = encode(h.name, h.linkname, h, h.type);
    if (plain !== null) return plain;
  }
  const body = paxBody(h);
  const first = encode('PaxHeader', h.linkname ? 'PaxHeader' : undefined, { ...h, size: body.length }, 'pax-header');
  const second = encode('PaxHeader', h.linkname ? 'PaxHeader' : undefined, h, h.type);
  if (first === null || second === null) throw new Error('PaxHeader did not encode');
  return Buffer.concat([first, body, padding(body.length), second]);
}

/** Zero bytes that complete `size` bytes of entry data to whole blocks. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest);
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

const EMPTY = Buffer.alloc(0);

function paxBody(h: UstarHeader): Buffer {
  let text = '';
  if (h.name) text += record(` path=${h.name}\n`);
  if (h.linkname) text += record(` linkpath=${h.linkname}\n`);
  for (const [k, v] of Object.entries(h.pax ?? {})) text += record(` ${k}=${v}\n`);
  return Buffer.from(text, 'utf8');
}

/** `<len><rest>`, len counting the whole record in bytes, its own digits included. */
function record(rest: string): string {
  const len = Buffer.byteLength(rest);
  let digits = Math.floor(Math.log(len) / Math.log(10)) + 1;
  if (len + digits >= 10 ** digits) digits++;
  return `${len + digits}${rest}`;
}

function encode(fullName: string, linkname: string | undefined, h: UstarHeader, type: UstarType | 'pax-header'): Buffer | null {
  let name = fullName;
  let prefix = '';
  if (Buffer.byteLength(name) !== name.length) return null; // not ASCII
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i === -1) return null;
    prefix += prefix ? `/${name.slice(0, i)}` : name.slice(0, i);
    name = name.slice(i + 1);
  }
  if (name.length > 100 || Buffer.byteLength(prefix) > 155) return null;
  if (linkname && Buffer.byteLength(linkname) > 100) return null;

  const buf = Buffer.alloc(BLOCK);
  buf.write(name, 0, 'utf8');
  buf.write(octal(h.mode & 0o7777, 6), 100, 'latin1');
  buf.write(octal(h.uid, 6), 108, 'latin1');
  buf.write(octal(h.gid, 6), 116, 'latin1');
  writeSize(buf, h.size, 124);
  buf.write(octal(h.mtimeSeconds | 0, 11), 136, 'latin1');
  buf[156] = 0x30 + TYPEFLAG[type];
  if (linkname) buf.write(linkname, 157, 'utf8');
  buf.write('ustar\u000000', 257, 'latin1');
  buf.write(octal(h.devmajor ?? 0, 6), 329, 'latin1');
  buf.write(octal(h.devminor ?? 0, 6), 337, 'latin1');
  if (prefix) buf.write(prefix, 345, 'utf8');
  buf.write(octal(checksum(buf), 6), 148, 'latin1');
  return buf;
}

/** `n` octal digits and a space; all sevens when the value does not fit (tar-stream's encodeOct). */
function octal(value: number, n: number): string {
  const text = value.toString(8);
  return text.length > n ? `${'7'.repeat(n)} ` : `${text.padStart(n, '0')} `;
}

/** The size field: 11 octal digits, or base-256 beyond them (8 GiB and more). */
function writeSize(buf: Buffer, size: number, off: number): void {
  if (size.toString(8).length <= 11) {
    buf.write(octal(size, 11), off, 'latin1');
    return;
  }
  buf[off] = 0x80;
  let n = size;
  for (let i = 11; i > 0; i--) {
    buf[off + i] = n & 0xff;
    n = Math.floor(n / 0x100);
  }
}

/** The header's checksum, its own field counted as eight spaces. */
function checksum(block: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += block[i] as number;
  for (let i = 156; i < BLOCK; i++) sum += block[i] as number;
  return sum;
}
