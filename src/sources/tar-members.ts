// Where each regular file of a tar archive on disk lies: its name, the offset of its body and its size.
// Only the headers are read (one 512-byte read per member, plus PAX or GNU long-name bodies); the bodies
// are skipped, so a member can later be opened alone with `createReadStream(path, { start, end })`.
// ustar, GNU and PAX headers are understood; a zero block ends the archive, as Go's archive/tar reads it.
import { open, type FileHandle } from 'node:fs/promises';
import { KilnError } from '../errors.js';
import { decodePaxRecords, paxText } from '../rootfs/pax-records.js';
import { headerChecksumMatches } from '../rootfs/tar-checksum.js';

export interface TarMember {
  /** As recorded, without a leading `./`. */
  readonly name: string;
  /** Byte offset of the body in the archive. */
  readonly offset: number;
  readonly size: number;
}

const BLOCK = 512;
/** Largest PAX or GNU long-name body accepted: real ones are a few hundred bytes. */
const MAX_LONG_HEADER = 1 << 20;

/** The regular files of the tar archive at `path`, by name (a later member of the same name wins). */
export async function indexTarMembers(path: string): Promise<ReadonlyMap<string, TarMember>> {
  const fh = await open(path, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    const members = new Map<string, TarMember>();
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let longName: string | undefined;
    for (;;) {
      if (offset + BLOCK > fileSize) throw corrupt(path, `archive ends inside the header at offset ${offset}`);
      await readExactly(fh, header, offset);
      if (header.every((b) => b === 0)) break;
      if (!headerChecksumMatches(header, parseNumber(header.subarray(148, 156)))) throw corrupt(path, `bad header checksum at offset ${offset}`);
      const size = parseNumber(header.subarray(124, 136));
      if (size === undefined) throw corrupt(path, `bad size field at offset ${offset}`);
      const body = offset + BLOCK;
      if (body + size > fileSize) throw corrupt(path, `member at offset ${offset} runs past the end of the archive`);
      const typeflag = String.fromCharCode(header[156] ?? 0);
      if (typeflag === 'x' || typeflag === 'L') {
        if (size > MAX_LONG_HEADER) throw corrupt(path, `extended header of ${size} bytes at offset ${offset}`);
        const data = Buffer.alloc(size);
        await readExactly(fh, data, body);
        longName = typeflag === 'L' ? cString(data) : (paxText(decodePaxRecords(data), 'path') ?? longName);
      } else if (typeflag === '0' || typeflag === '\0' || typeflag === '7') {
        const name = (longName ?? ustarName(header)).replace(/^(\.\/)+/, '');
        members.set(name, { name, offset: body, size });
        longName = undefined;
      } else if (typeflag !== 'g') {
        longName = undefined; // directories, links and the like: nothing to open
      }
      offset = body + Math.ceil(size / BLOCK) * BLOCK;
    }
    return members;
  } finally {
    await fh.close();
  }
}

function corrupt(path: string, why: string): KilnError {
  return new KilnError('INVALID_DOCUMENT', `tar archive ${path}: ${why}`);
}

async function readExactly(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new KilnError('INVALID_DOCUMENT', `unexpected end of file at offset ${position + done}`);
    done += bytesRead;
  }
}

/** An octal field, or GNU base-256 when the high bit of its first byte is set. */
function parseNumber(field: Buffer): number | undefined {
  if (((field[0] ?? 0) & 0x80) !== 0) {
    let n = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

/** ustar's prefix + name (POSIX ustar only: old GNU headers keep times where the prefix would be). */
function ustarName(h: Buffer): string {
  const name = cString(h.subarray(0, 100));
  const prefix = h.toString('latin1', 257, 263) === 'ustar\0' ? cString(h.subarray(345, 500)) : '';
  return prefix === '' ? name : `${prefix}/${name}`;
}
