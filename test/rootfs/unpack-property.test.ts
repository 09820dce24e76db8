// Property (issue 14): whatever archive a registry or a context hands us, the tar reader throws
// nothing but TarFormatError, and unpacking a layer throws nothing but a KilnError and writes nothing
// outside the root: names with `..`, absolute names, symlinks and hard links that point out, and
// entries written through a symlink planted by an earlier entry. Kept to a few seconds for CI.
import { lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { KilnError } from '../../src/errors.js';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { TarFormatError, TarReader } from '../../src/rootfs/tar-reader.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { tarBytes, tempDir, type TarEntry } from './fixtures.js';

const none = IgnoreList.empty();

/** Path elements chosen to provoke escapes: parent links, absolute starts, names the links use. */
const element = fc.constantFrom('a', 'b', 'l', '..', '.', '', 'etc', 'x'.repeat(300), 'outside', '.wh.a', '.wh..wh..opq');
const path = fc.array(element, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
const target = fc.oneof(path, path.map((p) => `/${p}`), fc.constant('../../..'), fc.constant('/'));

const entry: fc.Arbitrary<TarEntry> = fc.oneof(
  fc.record({ name: path, type: fc.constant('file' as const), content: fc.string({ maxLength: 40 }) }),
  fc.record({ name: path, type: fc.constant('directory' as const) }),
  fc.record({ name: path, type: fc.constant('symlink' as const), linkname: target }),
  fc.record({ name: path, type: fc.constant('link' as const), linkname: target }),
  fc.record({ name: path, type: fc.constant('file' as const), content: fc.constant('evil'), pax: fc.record({ path: target }) }),
);

/** Splits bytes into chunks at arbitrary points, as a network would. */
function chunked(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

let parent: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir: parent, cleanup } = await tempDirWithCleanup());
  await writeFile(join(parent, 'sentinel'), 'untouched');
});
afterAll(async () => cleanup());

async function tempDirWithCleanup(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const { path: dir, cleanup } = await tempDir('kiln-unpack-prop-');
  return { dir, cleanup };
}

/** Where an escape through `..` or an absolute link would land: the temp dir and / (names from `element`). */
function escapeTargets(): string[] {
  const names = ['a', 'b', 'l', 'outside', 'x'.repeat(300), 'etc/a', 'etc/b', 'etc/l', 'etc/outside'];
  return [dirname(parent), '/'].flatMap((d) => names.map((n) => join(d, n)));
}

async function existing(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const p of paths) if (await lstat(p).then(() => true, () => false)) found.push(p);
  return found;
}

test('the tar reader throws only TarFormatError, on mutated archives in any chunking', async () => {
  const sink = { entry: () => undefined, data: () => undefined, end: () => undefined };
  await fc.assert(
    fc.asyncProperty(
      fc.array(entry, { maxLength: 6 }),
      fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.nat(),
      async (entries, flips, cuts, truncate) => {
        const bytes = Buffer.from(await tarBytes(entries));
        for (const f of flips) if (bytes.length > 0) bytes[f.at % bytes.length] = f.byte;
        const cut = bytes.subarray(0, bytes.length === 0 ? 0 : bytes.length - (truncate % bytes.length));
        const reader = new TarReader(sink);
        try {
          for (const c of chunked(cut, cuts)) reader.push(c);
          reader.finish();
        } catch (err) {
          if (!(err instanceof TarFormatError)) throw err;
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('unpacking a hostile layer throws only KilnError and writes nothing outside the root', async () => {
  let n = 0;
  const before = await existing(escapeTargets());
  await fc.assert(
    fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 4 }), async (entries, cuts) => {
      const root = join(parent, `root${n++}`);
      await mkdir(root);
      try {
        const bytes = await tarBytes(entries);
        await unpackLayer(root, Readable.from(chunked(bytes, cuts)), { ignore: none });
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        expect(err.message).not.toContain('\n');
      }
      // Only the roots (this one and earlier ones, removed below) and the sentinel are in the parent.
      expect((await readdir(parent)).filter((e) => e !== 'sentinel' && !/^root\d+$/.test(e))).toEqual([]);
      expect(await readFile(join(parent, 'sentinel'), 'utf8')).toBe('untouched');
      expect(await existing(escapeTargets())).toEqual(before);
      await rm(root, { recursive: true, force: true });
    }),
    { numRuns: 300 },
  );
});
