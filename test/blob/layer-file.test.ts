import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decompress, decompressor } from '../../src/blob/compression.js';
import { FileLayer, writeLayerFile } from '../../src/blob/layer-file.js';
import { MediaType } from '../../src/oci/media-types.js';
import { tarBytes, tempDir } from '../rootfs/fixtures.js';

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await dir.cleanup();
});

function sha256sum(args: string): string {
  return `sha256:${execFileSync('sh', ['-c', args]).toString().split(' ')[0]}`;
}

describe('writeLayerFile', () => {
  it('records digest and size of the gzip file and diffID of the tar, as sha256sum sees them', async () => {
    const tar = await tarBytes([
      { name: 'a.txt', content: 'hello' },
      { name: 'big.bin', content: randomBytes(3 * 1024 * 1024) },
    ]);
    const path = join(dir.path, 'layer.tar.gz');
    const layer = await writeLayerFile(Readable.from([tar]), path);
    expect(await layer.digest()).toBe(sha256sum(`sha256sum ${path}`));
    expect(await layer.diffId()).toBe(sha256sum(`gunzip -c ${path} | sha256sum`));
    expect(await layer.diffId()).not.toBe(await layer.digest());
    expect(await layer.size()).toBe((await stat(path)).size);
    expect(await layer.mediaType()).toBe(MediaType.OciLayerGzip);
    expect(execFileSync('tar', ['-tzf', path]).toString()).toBe('a.txt\nbig.bin\n');
  });

  it('reopens the bytes on every call to compressed() and uncompressed()', async () => {
    const tar = await tarBytes([{ name: 'x', content: 'x'.repeat(10_000) }]);
    const layer = await writeLayerFile(Readable.from([tar]), join(dir.path, 'l.tgz'), { level: 9 });
    for (let i = 0; i < 2; i++) {
      const raw = Buffer.concat(await (await layer.uncompressed()).toArray());
      expect(raw.equals(tar)).toBe(true);
      const gz = Buffer.concat(await (await layer.compressed()).toArray());
      expect(gz.length).toBe(await layer.size());
    }
  });

  it('leaves no file behind when the tar stream fails', async () => {
    const failing = new Readable({
      read() {
        this.destroy(new Error('boom'));
      },
    });
    await expect(writeLayerFile(failing, join(dir.path, 'l.tgz'))).rejects.toThrow('boom');
    expect(await readdir(dir.path)).toEqual([]);
  });

  it('replaces a layer at the same path by rename and leaves no temp file', async () => {
    const path = join(dir.path, 'l.tgz');
    const a = await writeLayerFile(Readable.from([await tarBytes([{ name: 'a' }])]), path);
    const b = await writeLayerFile(Readable.from([await tarBytes([{ name: 'b' }])]), path);
    expect(await a.diffId()).not.toBe(await b.diffId());
    expect(await readdir(dir.path)).toEqual(['l.tgz']);
  });

  it('a FileLayer built from known parts reads back the file it names', async () => {
    const path = join(dir.path, 'l.tgz');
    const written = await writeLayerFile(Readable.from([await tarBytes([{ name: 'a', content: 'z' }])]), path);
    const known = new FileLayer({ path, digest: await written.digest(), diffId: await written.diffId(), size: await written.size() });
    expect((await text(await known.uncompressed())).startsWith('a')).toBe(true);
  });
});

describe('decompression by media type', () => {
  it('passes an uncompressed tar through and gunzips gzip media types of both families', async () => {
    const tar = await tarBytes([{ name: 'a', content: 'q' }]);
    const gz = execFileSync('gzip', ['-c'], { input: tar });
    for (const mt of [MediaType.OciLayerGzip, MediaType.DockerLayerGzip]) {
      const out = Buffer.concat(await decompress(Readable.from([gz]), mt).toArray());
      expect(out.equals(tar)).toBe(true);
    }
    const plain = Buffer.concat(await decompress(Readable.from([tar]), MediaType.OciLayer).toArray());
    expect(plain.equals(tar)).toBe(true);
  });

  it('reports zstd as unsupported on a Node without zlib zstd instead of producing garbage', () => {
    if ('createZstdDecompress' in zlib) expect(() => decompressor(MediaType.OciLayerZstd)).not.toThrow();
    else expect(() => decompressor(MediaType.OciLayerZstd)).toThrow(/zstd/);
  });
});
