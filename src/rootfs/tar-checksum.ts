// A tar header's checksum, for both readers of headers (rootfs/tar-reader.ts streams layers,
// sources/tar-members.ts indexes an archive on disk): the sum of the header's 512 bytes with the
// checksum field counted as spaces, unsigned (POSIX) or, in old Sun tars, signed.

const BLOCK = 512;

/**
 * Whether `recorded` (the checksum field's value, as the caller parsed it) is the header's checksum in
 * either convention. Summed four bytes a step around the field, the signed sum only when the unsigned
 * one fails: this runs once a member, mostly before V8 has compiled it (a small build's base of a few
 * hundred entries is read once), where every bytecode executed counts.
 */
export function headerChecksumMatches(block: Buffer, recorded: number | undefined): boolean {
  let unsigned = 8 * 0x20;
  for (let i = 0; i < 148; i += 4) unsigned += (block[i] as number) + (block[i + 1] as number) + (block[i + 2] as number) + (block[i + 3] as number);
  for (let i = 156; i < BLOCK; i += 4) unsigned += (block[i] as number) + (block[i + 1] as number) + (block[i + 2] as number) + (block[i + 3] as number);
  if (recorded === unsigned) return true;
  let high = 0;
  for (let i = 0; i < BLOCK; i++) if ((i < 148 || i >= 156) && (block[i] as number) >= 128) high++;
  return recorded === unsigned - 256 * high;
}
