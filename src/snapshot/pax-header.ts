// PAX extended headers written by kiln itself, for entries whose records hold binary values.
//
// tar-stream builds PAX records from a `Record<string, string>` and encodes them as UTF-8, so a binary
// value (a file capability: `SCHILY.xattr.security.capability`) cannot survive it. For such entries the
// layer writer emits the `x` entry itself (the body encoded here, written through tar-stream as an
// entry of type `pax-header`), followed by the real entry with a header tar-stream can encode without
// records of its own: its `path`/`linkpath` then travel in these records, as GNU tar does.

/** One PAX record: the value is written byte for byte. */
export type PaxRecord = readonly [key: string, value: Buffer | string];

/**
 * The body of a PAX header entry: `<len> <key>=<value>\n` per record, `len` counting the whole record
 * in bytes, its own digits included.
 */
export function encodePaxRecords(records: readonly PaxRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    if (key === '' || key.includes('=') || key.includes('\n')) throw new RangeError(`invalid PAX key ${JSON.stringify(key)}`);
    const rest = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from('\n')]);
    // The length includes its own digits: grow the digit count until it is self-consistent.
    let digits = String(rest.length).length;
    while (String(rest.length + digits).length !== digits) digits++;
    parts.push(Buffer.from(String(rest.length + digits), 'latin1'), rest);
  }
  return Buffer.concat(parts);
}

/** The fields of a layer entry that a hand-written PAX header carries alongside its records. */
export interface PaxEntry {
  readonly name: string;
  readonly linkname?: string;
  readonly uid: number;
  readonly gid: number;
}

/** Largest uid/gid the octal header fields hold; beyond it the value travels in a record. */
const MAX_OCTAL_ID = 0o777777;

/**
 * The bytes of the `x` entry for `entry` with `extra` records (header block, body, padding to the
 * block size), and the header to write the entry itself with, which then needs no records of its own
 * (its `pax` is dropped). That header's name is the real one when ustar can hold it, else an ASCII
 * stand-in that readers replace by the `path` record.
 */
export function withPaxRecords<H extends { name: string; linkname?: string | undefined; uid: number; gid: number; pax?: unknown }>(
  header: H,
  entry: PaxEntry,
  extra: readonly PaxRecord[],
  mtimeSeconds: number,
): { paxEntry: Buffer; header: Omit<H, 'pax'> } {
  const records: PaxRecord[] = [['path', entry.name]];
  if (entry.linkname !== undefined) records.push(['linkpath', entry.linkname]);
  const largeIds = entry.uid > MAX_OCTAL_ID || entry.gid > MAX_OCTAL_ID;
  if (largeIds) records.push(['uid', String(entry.uid)], ['gid', String(entry.gid)]);
  records.push(...extra);
  const body = encodePaxRecords(records);
  const { pax: _dropped, ...rest } = header;
  const plain = {
    ...rest,
    name: ustarSafe(entry.name, 100),
    ...(entry.linkname !== undefined ? { linkname: ustarSafe(entry.linkname, 100) } : {}),
    ...(largeIds ? { uid: 0, gid: 0 } : {}),
  };
  return { paxEntry: paxEntryBytes(body, Math.max(0, mtimeSeconds)), header: plain };
}

/** A complete `x` entry: ustar header block (name `PaxHeader`, as tar-stream names its own), body, padding. */
export function paxEntryBytes(body: Buffer, mtimeSeconds: number): Buffer {
  const padded = Math.ceil(body.length / BLOCK) * BLOCK;
  const out = Buffer.alloc(BLOCK + padded);
  out.write('PaxHeader', 0, 'latin1');
  out.write(octal(0o644, 7), 100, 'latin1');
  out.write(octal(0, 7), 108, 'latin1');
  out.write(octal(0, 7), 116, 'latin1');
  out.write(octal(body.length, 11), 124, 'latin1');
  out.write(octal(mtimeSeconds, 11), 136, 'latin1');
  out.write('x', 156, 'latin1');
  out.write('ustar\u000000', 257, 'latin1');
  // The checksum is computed with its own field as eight spaces.
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += out[i] as number;
  out.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  body.copy(out, BLOCK);
  return out;
}

const BLOCK = 512;

/** A zero-padded octal field of `digits` digits and its NUL terminator. */
function octal(value: number, digits: number): string {
  const text = value.toString(8);
  if (text.length > digits) throw new RangeError(`${value} does not fit a ${digits}-digit tar field`);
  return `${text.padStart(digits, '0')}\u0000`;
}
/** `name` when it is printable ASCII of at most `max` bytes, else its last bytes made so. */
function ustarSafe(name: string, max: number): string {
  if (name.length <= max && /^[\x20-\x7e]*$/.test(name)) return name;
  return name.replace(/[^\x20-\x7e]/g, '_').slice(-max);
}
