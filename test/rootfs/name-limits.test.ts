// Issue 14, item 4: tar entries whose paths or link targets Linux cannot take (a component over 255
// bytes, a path of 4096 or more, a symlink target as long) are refused from the header in one short
// line, on the main thread and on the worker, with nothing written for them and nothing outside the
// root. Before, the kernel's ENAMETOOLONG came back with the whole path in it twice: 10 KB on one line.
import { mkdir, readdir, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EntryRefusedError } from '../../src/rootfs/layer-applier.js';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { unpackLayer } from '../../src/rootfs/unpack.js';
import { tarBytes, tempDir, type TarEntry } from './fixtures.js';

// The worker runs dist/ (built by `npm test` first), as in unpack-worker.test.ts.
const DIST = resolve(import.meta.dirname, '../../dist/rootfs');
interface DistUnpack {
  unpackLayer(root: string, tar: NodeJS.ReadableStream, opts: Record<string, unknown>): Promise<unknown>;
}

const deepPath = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}${'d'.repeat(248)}`).join('/');
const CASES: { what: string; entries: TarEntry[]; refused: string; reason: RegExp }[] = [
  {
    what: 'a path longer than PATH_MAX',
    entries: [{ name: `${deepPath}/f`, content: 'x' }],
    refused: `${deepPath}/f`,
    reason: /^its path would be \d{4} bytes on the host, longer than the 4095 Linux allows \(PATH_MAX\)$/,
  },
  {
    what: 'a name longer than NAME_MAX',
    entries: [{ name: `a/${'n'.repeat(300)}`, content: 'x' }],
    refused: `a/${'n'.repeat(300)}`,
    reason: /^a name in its path is 300 bytes, longer than the 255 a filesystem allows \(NAME_MAX\)$/,
  },
  {
    what: 'a symlink target longer than PATH_MAX',
    entries: [{ name: 'l', type: 'symlink', linkname: `/${'t'.repeat(5000)}` }],
    refused: 'l',
    reason: /^its symlink target is 5001 bytes, longer than the 4095 Linux allows \(PATH_MAX\)$/,
  },
  {
    what: 'a hardlink target longer than PATH_MAX',
    entries: [{ name: 'f', content: 'x' }, { name: 'h', type: 'link', linkname: `${'x/'.repeat(2100)}f` }],
    refused: 'h',
    reason: /^its link target would be \d{4} bytes on the host, longer than the 4095 Linux allows \(PATH_MAX\)$/,
  },
];

describe('paths and link targets longer than Linux allows', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ path: dir, cleanup } = await tempDir('kiln-names-')));
  afterEach(async () => cleanup());

  for (const c of CASES) {
    for (const offThread of [false, true]) {
      it(`${c.what} is refused in one line${offThread ? ' (worker)' : ''}, nothing written for it`, async () => {
        const root = join(dir, 'root');
        await mkdir(root);
        const tar = await tarBytes([{ name: 'before.txt', content: 'ok' }, ...c.entries, { name: 'after.txt', content: 'never' }]);
        const unpack = offThread ? ((await import(pathToFileURL(join(DIST, 'unpack.js')).href)) as DistUnpack).unpackLayer : unpackLayer;
        const ignore = offThread ? ((await import(pathToFileURL(join(DIST, 'ignore-list.js')).href)) as { IgnoreList: typeof IgnoreList }).IgnoreList.empty() : IgnoreList.empty();
        const err = await unpack(root, Readable.from([tar]), { ignore, what: 'layer sha256:abc', whiteouts: true, offThread }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        const message = (err as Error).message;
        expect(message).not.toContain('\n');
        expect(message.length).toBeLessThan(400);
        expect(message).toMatch(/^layer sha256:abc: refusing entry /);
        if (!offThread) {
          expect(err).toBeInstanceOf(EntryRefusedError);
          expect((err as EntryRefusedError).entry).toBe(c.refused);
          expect((err as EntryRefusedError).reason).toMatch(c.reason);
        } else expect(message.slice(message.indexOf(': ', message.indexOf('refusing entry')) + 2)).toMatch(c.reason);
        // The entries before stay; the refused one made nothing (not even its parents); nothing beside the root.
        const made = (await readdir(root)).sort();
        expect(made.filter((n) => n !== 'f')).toEqual(['before.txt']);
        expect(await readdir(dir)).toEqual(['root']);
      });
    }
  }
});

// Found by unpack-property.test.ts: a symlink's target is held to PATH_MAX only, so one component of it
// may be longer than NAME_MAX; resolving a path through that link then met lstat's ENAMETOOLONG, which
// escaped as a bare Node error (at the end of the layer, when directory times were set again).
describe('a symlink whose target holds a name longer than NAME_MAX', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ path: dir, cleanup } = await tempDir('kiln-names-')));
  afterEach(async () => cleanup());
  const long = 'x'.repeat(300);

  it('is unpacked as it is, over a directory an earlier entry made', async () => {
    const root = join(dir, 'root');
    await mkdir(root);
    const tar = await tarBytes([{ name: 'a/a', type: 'directory' }, { name: 'a', type: 'symlink', linkname: `${long}/a` }]);
    await unpackLayer(root, Readable.from([tar]), { ignore: IgnoreList.empty(), what: 'layer sha256:abc', whiteouts: true });
    expect(await readlink(join(root, 'a'))).toBe(`${long}/a`);
    expect(await readdir(dir)).toEqual(['root']);
  });

  it('refuses an entry written through it in one line, naming the long name', async () => {
    const root = join(dir, 'root');
    await mkdir(root);
    const tar = await tarBytes([{ name: 'l', type: 'symlink', linkname: `/${long}` }, { name: 'l/f', content: 'x' }]);
    const err = await unpackLayer(root, Readable.from([tar]), { ignore: IgnoreList.empty(), what: 'layer sha256:abc', whiteouts: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EntryRefusedError);
    expect((err as EntryRefusedError).entry).toBe('l/f');
    expect((err as EntryRefusedError).reason).toMatch(/^a name in its path is 300 bytes, longer than the 255 a filesystem allows \(NAME_MAX\)$/);
    expect((err as Error).message).not.toContain('\n');
    expect(await readdir(root)).toEqual(['l']);
  });
});
