// An archive from outside (a context tar, an ADD file) is refused at its limits, in one line, before
// the entry that would pass them is written: a gzip bomb costs a few KB of reading, not the disk.
import { readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGzip, createGunzip } from 'node:zlib';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { UnpackError } from '../../src/errors.js';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { tarBytes, tempDir } from './fixtures.js';

let root: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ path: root, cleanup } = await tempDir('kiln-limits-')));
afterEach(async () => cleanup());

/** A gzip of a tar whose one file is `mib` MiB of zeros: ~1000x smaller than what it unpacks to. */
async function gzipBomb(mib: number): Promise<Buffer> {
  const tar = await tarBytes([{ name: 'zeros', content: Buffer.alloc(mib * 1024 * 1024) }]);
  const chunks: Buffer[] = [];
  for await (const c of Readable.from([tar]).pipe(createGzip())) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

it('refuses an archive that unpacks past maxBytes, writing nothing of the entry', async () => {
  const bomb = await gzipBomb(64);
  expect(bomb.length).toBeLessThan(1024 * 1024);
  const err = await unpackLayer(root, Readable.from([bomb]).pipe(createGunzip()), {
    ignore: IgnoreList.empty(),
    what: 'build context bomb.tar.gz',
    whiteouts: false,
    limits: { maxBytes: 8 * 1024 * 1024, maxEntries: 100 },
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UnpackError);
  expect((err as Error).message).toBe('build context bomb.tar.gz: unpacks to more than 8 MiB (--archive-max-mib)');
  expect(await readdir(root)).toEqual([]);
});

it('refuses an archive with more entries than maxEntries', async () => {
  const tar = await tarBytes(Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, content: '' })));
  const err = await unpackLayer(root, Readable.from([tar]), {
    ignore: IgnoreList.empty(),
    what: 'extracting many.tar',
    whiteouts: false,
    limits: { maxBytes: 1024 ** 3, maxEntries: 10 },
  }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UnpackError);
  expect((err as Error).message).toBe('extracting many.tar: more than 10 entries (--archive-max-entries)');
});

it('unpacks an archive within its limits', async () => {
  const tar = await tarBytes([{ name: 'a', content: 'x'.repeat(1000) }]);
  await unpackLayer(root, Readable.from([tar]), { ignore: IgnoreList.empty(), whiteouts: false, limits: { maxBytes: 1000, maxEntries: 1 } });
  expect(await readdir(root)).toEqual(['a']);
});
