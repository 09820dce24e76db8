// What an archive is, from its first bytes: docker's archive.DetectCompression on the magic numbers,
// then whether the (decompressed) start is a tar header. Used by ADD and by tar build contexts.

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** archive.DetectCompression: the compression named by a file's first bytes. */
export function detectCompression(head: Buffer): Compression {
  const starts = (...bytes: number[]): boolean => bytes.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b, 0x08)) return 'gzip';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  return 'none';
}

/** Whether 512 bytes are a tar header: its checksum matches (POSIX ustar and old v7 tars alike). */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
  return sum === Number.parseInt(field, 8);
}
