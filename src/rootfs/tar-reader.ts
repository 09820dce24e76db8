// A push parser for tar streams (ustar, GNU and PAX, as layers are written by docker, BuildKit, GNU tar
// and kiln), feeding a synchronous sink chunk by chunk.
//
// Why not tar-stream's extractor: it decodes PAX values as UTF-8, which corrupts binary xattr values
// (`SCHILY.xattr.security.capability`), and it hands out every entry as a stream with its own promises
// and events, which cost more than the syscalls that apply a small file (docs/snapshots.md). Here an
// entry is three plain calls (`entry`, `data`*, `end`), made while the chunk that holds it is parsed.
//
// Follows Go's archive/tar (what docker and containerd read layers with) where formats disagree: the
// body of header-only types (links, symlinks, devices, directories, FIFOs) is empty whatever the size
// field says, either checksum convention (unsigned or signed bytes) is accepted, and a zero block ends
// the archive (what follows it is not read as entries).
import { decodePaxRecords, type PaxRecords, paxText } from './pax-records.js';
import { headerChecksumMatches } from './tar-checksum.js';

export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'other';

export interface TarHeader {
  /** As recorded (PAX `path`, GNU long name or ustar prefix + name applied); not cleaned. */
  readonly name: string;
  readonly type: TarEntryType;
  /** The raw typeflag character, for messages about `other` entries. */
  readonly typeflag: string;
  /** Permission bits with setuid, setgid and sticky. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Bytes of the body that follow (0 for header-only types). */
  readonly size: number;
  /** Seconds since the epoch, with the sub-second part of a PAX `mtime`. */
  readonly mtime: number;
  /** PAX `atime` when present, else the mtime. */
  readonly atime: number;
  readonly linkname: string;
  readonly devmajor: number;
  readonly devminor: number;
  /** The PAX records that applied to this entry (global ones included), values as raw bytes. */
  readonly pax: PaxRecords | undefined;
}

/** Receives entries in order. `data` chunks are views of the input: copy them to keep them. */
export interface TarEntrySink {
  entry(header: TarHeader): void;
  data(chunk: Buffer): void;
  /** After the last byte of the entry's body (right after `entry` when it has none). */
  end(): void;
}

export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
}

const BLOCK = 512;
/** Largest PAX or GNU long-name body accepted: real ones are a few hundred bytes. */
const MAX_LONG_HEADER = 1 << 20;
const HEADER_ONLY = new Set<TarEntryType>(['link', 'symlink', 'character-device', 'block-device', 'directory', 'fifo']);

type LongKind = 'pax' | 'global-pax' | 'gnu-name' | 'gnu-link';

export class TarReader {
  readonly #sink: TarEntrySink;
  #state: 'header' | 'body' | 'long' | 'padding' | 'done' = 'header';
  /** A header split across chunks. */
  readonly #block = Buffer.alloc(BLOCK);
  #blockFill = 0;
  /** Bytes left in the current body (entry or long header), then padding to the next block. */
  #remaining = 0;
  #padding = 0;
  #long: { kind: LongKind; buf: Buffer; fill: number } | undefined;
  #pax: Map<string, Buffer> | undefined;
  #globalPax: Map<string, Buffer> | undefined;
  #gnuName: string | undefined;
  #gnuLink: string | undefined;
  /** Offset of the block being parsed, for messages. */
  #offset = 0;

  constructor(sink: TarEntrySink) {
    this.#sink = sink;
  }

  /** Parses `chunk`, calling the sink for what it completes. Throws what the sink throws. */
  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.#state) {
        case 'done':
          return;
        case 'header': {
          let block: Buffer;
          if (this.#blockFill === 0 && chunk.length - off >= BLOCK) {
            block = chunk.subarray(off, off + BLOCK);
            off += BLOCK;
          } else {
            const n = Math.min(BLOCK - this.#blockFill, chunk.length - off);
            chunk.copy(this.#block, this.#blockFill, off, off + n);
            this.#blockFill += n;
            off += n;
            if (this.#blockFill < BLOCK) return;
            this.#blockFill = 0;
            block = this.#block;
          }
          this.#header(block);
          this.#offset += BLOCK;
          break;
        }
        case 'body': {
          const n = Math.min(this.#remaining, chunk.length - off);
          this.#sink.data(chunk.subarray(off, off + n));
          off += n;
          this.#advance(n);
          if (this.#remaining === 0) {
            this.#state = 'padding';
            this.#sink.end();
          }
          break;
        }
        case 'long': {
          const long = this.#long as { kind: LongKind; buf: Buffer; fill: number };
          const n = Math.min(this.#remaining, chunk.length - off);
          chunk.copy(long.buf, long.fill, off, off + n);
          long.fill += n;
          off += n;
          this.#advance(n);
          if (this.#remaining === 0) {
            this.#state = 'padding';
            this.#finishLong(long.kind, long.buf);
          }
          break;
        }
        case 'padding': {
          const n = Math.min(this.#padding, chunk.length - off);
          off += n;
          this.#padding -= n;
          this.#offset += n;
          if (this.#padding === 0) this.#state = 'header';
          break;
        }
      }
    }
    if (this.#state === 'padding' && this.#padding === 0) this.#state = 'header';
  }

  /** The input ended: throws when it ended inside a header or an entry's body. */
  finish(): void {
    if (this.#state === 'done') return;
    if (this.#state === 'header' && this.#blockFill === 0 && this.#long === undefined && this.#pax === undefined) return;
    throw new TarFormatError(`unexpected end of the tar at byte ${this.#offset + this.#blockFill}`);
  }

  #advance(n: number): void {
    this.#remaining -= n;
    this.#offset += n;
  }

  #header(block: Buffer): void {
    if (isZeroBlock(block)) {
      this.#state = 'done';
      return;
    }
    if (!headerChecksumMatches(block, numeric(block, 148, 8))) throw new TarFormatError(`invalid tar header checksum at byte ${this.#offset} (is the layer compressed with an unknown codec?)`);
    const typeflag = block[156] === 0 ? '0' : String.fromCharCode(block[156] as number);
    const size = numeric(block, 124, 12);
    switch (typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K': {
        if (size > MAX_LONG_HEADER) throw new TarFormatError(`tar extended header of ${size} bytes at byte ${this.#offset}`);
        const kind: LongKind = typeflag === 'x' ? 'pax' : typeflag === 'g' ? 'global-pax' : typeflag === 'L' ? 'gnu-name' : 'gnu-link';
        this.#long = { kind, buf: Buffer.alloc(size), fill: 0 };
        this.#startBody(size, 'long');
        if (size === 0) this.#finishLong(kind, Buffer.alloc(0));
        return;
      }
    }
    const pax = this.#takePax();
    let name = this.#gnuName ?? fieldText(block, 0, 100);
    if (this.#gnuName === undefined && isUstar(block) && block[345] !== 0) name = `${fieldText(block, 345, 155)}/${name}`;
    name = paxText(pax, 'path') ?? name;
    const linkname = paxText(pax, 'linkpath') ?? this.#gnuLink ?? fieldText(block, 157, 100);
    this.#gnuName = undefined;
    this.#gnuLink = undefined;
    let type = typeOf(typeflag);
    if (type === 'file' && typeflag === '0' && name.endsWith('/')) type = 'directory';
    const paxSize = paxText(pax, 'size');
    const bodySize = HEADER_ONLY.has(type) ? 0 : paxSize !== undefined ? Number.parseInt(paxSize, 10) : size;
    const mtime = paxNumber(pax, 'mtime', Number.parseFloat) ?? numeric(block, 136, 12);
    const header: TarHeader = {
      name,
      type,
      typeflag,
      mode: numeric(block, 100, 8) & 0o7777,
      uid: paxNumber(pax, 'uid', (s) => Number.parseInt(s, 10)) ?? numeric(block, 108, 8),
      gid: paxNumber(pax, 'gid', (s) => Number.parseInt(s, 10)) ?? numeric(block, 116, 8),
      size: bodySize,
      mtime,
      atime: paxNumber(pax, 'atime', Number.parseFloat) ?? mtime,
      linkname,
      devmajor: numeric(block, 329, 8),
      devminor: numeric(block, 337, 8),
      pax,
    };
    if (!Number.isSafeInteger(bodySize) || bodySize < 0) throw new TarFormatError(`entry ${JSON.stringify(name)}: invalid size`);
    this.#sink.entry(header);
    this.#startBody(bodySize, 'body');
    if (bodySize === 0) this.#sink.end();
  }

  #startBody(size: number, state: 'body' | 'long'): void {
    this.#remaining = size;
    this.#padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.#state = size === 0 ? 'padding' : state;
  }

  #finishLong(kind: LongKind, buf: Buffer): void {
    this.#long = undefined;
    switch (kind) {
      case 'pax':
        this.#pax = this.#decodePax(buf);
        return;
      case 'global-pax':
        this.#globalPax = new Map([...(this.#globalPax ?? []), ...this.#decodePax(buf)]);
        return;
      case 'gnu-name':
        this.#gnuName = cString(buf);
        return;
      case 'gnu-link':
        this.#gnuLink = cString(buf);
        return;
    }
  }

  #decodePax(buf: Buffer): Map<string, Buffer> {
    try {
      return decodePaxRecords(buf);
    } catch (err) {
      throw new TarFormatError(`invalid PAX header before byte ${this.#offset}: ${(err as Error).message}`);
    }
  }

  /** The records for the next entry: global ones overlaid with the entry's own. */
  #takePax(): PaxRecords | undefined {
    const local = this.#pax;
    this.#pax = undefined;
    if (this.#globalPax === undefined) return local;
    return local === undefined ? this.#globalPax : new Map([...this.#globalPax, ...local]);
  }
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '1':
      return 'link';
    case '2':
      return 'symlink';
    case '3':
      return 'character-device';
    case '4':
      return 'block-device';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    default:
      return 'other';
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function isUstar(block: Buffer): boolean {
  // "ustar\0" (POSIX; has the prefix field), not GNU's "ustar " (whose bytes there are times).
  return block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72 && block[262] === 0;
}

/** An octal field (space or NUL terminated, leading spaces allowed) or a GNU base-256 one. */
function numeric(block: Buffer, off: number, len: number): number {
  const first = block[off] as number;
  if ((first & 0x80) !== 0) {
    if (first === 0xff) throw new TarFormatError('negative number in a tar header');
    let v = first & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + (block[off + i] as number);
    return v;
  }
  let v = 0;
  let i = off;
  const end = off + len;
  while (i < end && block[i] === 0x20) i++;
  for (; i < end; i++) {
    const c = block[i] as number;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarFormatError('invalid octal number in a tar header');
    v = v * 8 + (c - 0x30);
  }
  return v;
}

function fieldText(block: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && block[end] !== 0) end++;
  return block.toString('utf8', off, end);
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.toString('utf8', 0, nul < 0 ? buf.length : nul);
}

function paxNumber(pax: PaxRecords | undefined, key: string, parse: (s: string) => number): number | undefined {
  const text = paxText(pax, key);
  if (text === undefined) return undefined;
  const v = parse(text);
  return Number.isFinite(v) ? v : undefined;
}
