// PAX extended header records (POSIX.1-2001 `x` and `g` entries): `<len> <key>=<value>\n`, where
// `len` counts the whole record in bytes. Values are kept as bytes: `SCHILY.xattr.*` values are binary
// (a file capability is a little-endian struct), and decoding them as UTF-8 (as tar-stream does)
// corrupts them.

/** The PAX key under which GNU tar, docker and containerd carry an extended attribute. */
export const XATTR_PAX_PREFIX = 'SCHILY.xattr.';
/** The one extended attribute kiln records and applies: file capabilities (`setcap`). */
export const CAPABILITY_XATTR = 'security.capability';

/** Records in the order they were read; later records of the same key win, as in every reader. */
export type PaxRecords = ReadonlyMap<string, Buffer>;

/** Parses the body of a PAX header entry. Malformed records throw a RangeError naming the offset. */
export function decodePaxRecords(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < body.length) {
    // Trailing NUL padding after the last record is tolerated (some writers leave it).
    if (body[off] === 0) break;
    const space = body.indexOf(0x20, off);
    if (space < 0) throw new RangeError(`PAX record at byte ${off}: no length`);
    const len = Number.parseInt(body.toString('latin1', off, space), 10);
    if (!Number.isSafeInteger(len) || len <= space - off + 1 || off + len > body.length) throw new RangeError(`PAX record at byte ${off}: bad length`);
    const end = off + len;
    if (body[end - 1] !== 0x0a) throw new RangeError(`PAX record at byte ${off}: no newline`);
    const eq = body.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end) throw new RangeError(`PAX record at byte ${off}: no '='`);
    out.set(body.toString('utf8', space + 1, eq), Buffer.from(body.subarray(eq + 1, end - 1)));
    off = end;
  }
  return out;
}

/** A record as text (path, linkpath, uid, mtime, ...), or undefined when absent. */
export function paxText(records: PaxRecords | undefined, key: string): string | undefined {
  return records?.get(key)?.toString('utf8');
}
