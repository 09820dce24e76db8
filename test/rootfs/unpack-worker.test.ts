// A large layer's entries applied on a worker thread (src/rootfs/unpack-worker.ts) give the tree the main
// thread gives, and fail with the same errors. The worker runs kiln's compiled code, so these tests use
// dist/ (npm test builds it first): under the test runner's TypeScript sources no worker is started.
import { createHash } from 'node:crypto';
import { lstat, mkdir, rm, utimes } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { capabilityOf, fingerprint, tarBytes, tempDir, type TarEntry } from './fixtures.js';

/** The tar in 64 KiB chunks, as a download arrives. */
async function chunked(entries: readonly TarEntry[]): Promise<Readable> {
  const bytes = await tarBytes(entries);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 64 << 10) parts.push(bytes.subarray(i, i + (64 << 10)));
  return Readable.from(parts);
}

/** fingerprint() with file contents hashed (the big file would fill the report). */
async function tree(dir: string): Promise<string[]> {
  return (await fingerprint(dir)).map((l) => {
    const cut = l.lastIndexOf(' ');
    const what = l.slice(cut + 1);
    return what.length < 64 ? l : `${l.slice(0, cut)} sha256:${createHash('sha256').update(what).digest('hex')}`;
  });
}

const DIST = resolve(import.meta.dirname, '../../dist/rootfs');

interface DistUnpack {
  unpackLayer(root: string, tar: NodeJS.ReadableStream, opts: Record<string, unknown>): Promise<Record<string, number>>;
}
interface DistIgnore {
  IgnoreList: { empty(): unknown; of(paths: Iterable<string>): unknown };
}

const load = async (): Promise<{ unpack: DistUnpack; ignore: DistIgnore }> => ({
  unpack: (await import(pathToFileURL(join(DIST, 'unpack.js')).href)) as DistUnpack,
  ignore: (await import(pathToFileURL(join(DIST, 'ignore-list.js')).href)) as DistIgnore,
});

const T = new Date('2021-03-04T05:06:07Z');

/** A layer with every kind of entry the applier handles, a whiteout and an opaque dir among them. */
function layer(): TarEntry[] {
  // Over the worker's 8 MiB in flight, in 64 KiB chunks (see `chunked`): the stream waits for it.
  const big = Buffer.alloc(10 << 20, 'x');
  return [
    { name: 'etc/', type: 'directory', mode: 0o755, mtime: T },
    { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644, mtime: T },
    { name: 'usr/', type: 'directory', mode: 0o755, mtime: T },
    { name: 'usr/bin/', type: 'directory', mode: 0o755, mtime: T },
    { name: 'usr/bin/ping', content: 'elf', mode: 0o4755, uid: 0, gid: 0, mtime: T, pax: { 'SCHILY.xattr.security.capability': capabilityOf('cap_net_raw+ep').toString('latin1') } },
    { name: 'usr/bin/big', content: big, mode: 0o755, mtime: T },
    { name: 'bin', type: 'symlink', linkname: 'usr/bin', mtime: T },
    { name: 'bin/alias', type: 'link', linkname: 'usr/bin/big', mtime: T },
    { name: 'var/cache/', type: 'directory', mode: 0o700, uid: 5, gid: 6, mtime: T },
    { name: 'var/cache/.wh..wh..opq', content: '' },
    { name: 'var/cache/kept', content: 'kept', uid: 5, gid: 6, mtime: T },
    { name: 'etc/.wh.gone', content: '' },
    { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: T },
    { name: 'proc/self', content: 'ignored' },
  ];
}

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempDir('kiln-unpack-worker-');
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('unpacking a layer on a worker thread', () => {
  it('gives the tree, the stats and the paths the main thread gives', async () => {
    const { unpack, ignore } = await load();
    const results: { tree: string[]; stats: Record<string, number>; paths: string[]; logs: string[] }[] = [];
    for (const offThread of [false, true]) {
      const root = join(tmp.path, offThread ? 'worker' : 'main');
      await mkdir(join(root, 'etc'), { recursive: true });
      await mkdir(join(root, 'var/cache/old'), { recursive: true });
      // What was there before the layer, with the same times in both roots.
      for (const d of ['etc', 'var/cache/old', 'var/cache', 'var']) await utimes(join(root, d), T, T);
      const paths: string[] = [];
      const logs: string[] = [];
      const log = { isLevelEnabled: () => true, debug: (a: unknown, b?: string) => logs.push(typeof a === 'string' ? a : (b ?? '')) };
      const stats = await unpack.unpackLayer(root, await chunked(layer()), {
        ignore: ignore.IgnoreList.of(['/proc']),
        ctx: { log, signal: new AbortController().signal },
        what: 'layer test',
        onPath: (p: string) => paths.push(p),
        offThread,
      });
      results.push({ tree: await tree(root), stats, paths, logs });
    }
    const [main, worker] = results;
    expect(worker?.logs).toContain('unpacking layer test on a worker thread');
    expect(main?.logs).not.toContain('unpacking layer test on a worker thread');
    // The roots themselves differ (made by the test at different times): compare what is inside.
    expect(worker?.tree.slice(1)).toEqual(main?.tree.slice(1));
    expect(worker?.stats).toEqual(main?.stats);
    expect(worker?.paths).toEqual(main?.paths);
    expect(worker?.logs.filter((l) => !l.includes('worker thread'))).toEqual(main?.logs);
    expect(main?.stats['capabilities']).toBe(1);
    expect((await lstat(join(tmp.path, 'worker/bin/alias'))).nlink).toBe(2);
  });

  it('fails as the main thread does: the refused entry named, a broken tar as an unpack error', async () => {
    const { unpack, ignore } = await load();
    const attempt = async (entries: TarEntry[] | Buffer, offThread: boolean): Promise<{ name: string; message: string }> => {
      const root = join(tmp.path, `r-${offThread}`);
      await rm(root, { recursive: true, force: true });
      await mkdir(root);
      const tar = Buffer.isBuffer(entries) ? Readable.from([entries]) : await chunked(entries);
      const err = await unpack.unpackLayer(root, tar, { ignore: ignore.IgnoreList.empty(), what: 'layer bad', offThread }).then(
        () => undefined,
        (e: Error) => e,
      );
      if (err === undefined) throw new Error('the unpack succeeded');
      return { name: err.constructor.name, message: err.message };
    };
    const escape: TarEntry[] = [{ name: 'ok', content: 'fine' }, { name: '../../etc/evil', content: 'x' }];
    const inMain = await attempt(escape, false);
    expect(inMain.name).toBe('EntryRefusedError');
    expect(await attempt(escape, true)).toEqual(inMain);
    // A header block whose checksum is wrong, after a good entry.
    const good = await tarBytes([{ name: 'a', content: 'a' }]);
    const broken = Buffer.concat([good.subarray(0, 1024), Buffer.alloc(512, 'z'), Buffer.alloc(1024)]);
    const brokenMain = await attempt(broken, false);
    expect(brokenMain.name).toBe('UnpackError');
    expect(await attempt(broken, true)).toEqual(brokenMain);
  });
});
