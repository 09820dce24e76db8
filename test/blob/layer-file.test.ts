import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decompress, decompressor, UNCOMPRESSED } from '../../src/blob/compression.js';
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

  it('with codec none writes the tar itself: digest is the diffID, media type the plain tar', async () => {
    const tar = await tarBytes([
      { name: 'a.txt', content: 'hello' },
      { name: 'big.bin', content: randomBytes(1024 * 1024) },
    ]);
    const path = join(dir.path, 'layer.tar');
    const layer = await writeLayerFile(Readable.from([tar]), path, { codec: UNCOMPRESSED });
    const onDisk = await readFile(path);
    expect(onDisk.equals(tar)).toBe(true);
    expect(await layer.digest()).toBe(sha256sum(`sha256sum ${path}`));
    expect(await layer.diffId()).toBe(await layer.digest());
    expect(await layer.size()).toBe(tar.length);
    expect(await layer.mediaType()).toBe(MediaType.OciLayer);
    const back = Buffer.concat(await (await layer.uncompressed()).toArray());
    expect(back.equals(tar)).toBe(true);
  });

  it('reopens the bytes on every call to compressed() and uncompressed()', async () => {
    const tar = await tarBytes([{ name: 'x', content: 'x'.repeat(10_000) }]);
    const layer = await writeLayerFile(Readable.from([tar]), join(dir.path, 'l.tgz'), { codec: { kind: 'gzip', level: 9 } });
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

  it('reads zstd media types of both families, concatenated frames included', async () => {
    const tar = await tarBytes([{ name: 'a', content: 'q'.repeat(5000) }]);
    const half = tar.length / 2;
    const frames = Buffer.concat([tar.subarray(0, half), tar.subarray(half)].map((part) => execFileSync('zstd', ['-q', '-c'], { input: part })));
    for (const mt of [MediaType.OciLayerZstd, MediaType.DockerLayerZstd]) {
      const out = Buffer.concat(await decompress(Readable.from([frames]), mt).toArray());
      expect(out.equals(tar)).toBe(true);
    }
  });

  it('fails, naming zstd, on a corrupt zstd blob instead of producing garbage', async () => {
    const bad = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(100)]);
    await expect(decompress(Readable.from([bad]), MediaType.OciLayerZstd).toArray()).rejects.toThrow(/zstd/);
    expect(typeof decompressor).toBe('function');
  });
});

describe('writeLayerFile with each codec', () => {
  /** A tar of several MiB mixing text and random data, so gzip has stored and deflated chunks. */
  async function mixedTar(): Promise<Buffer> {
    return tarBytes([
      { name: 'etc/text.conf', content: 'key = value\n'.repeat(300_000) },
      { name: 'random.bin', content: randomBytes(3 * 1024 * 1024) },
      { name: 'small', content: 'x' },
    ]);
  }

  it('gzip: a multi-chunk layer passes gzip -t and its digests match sha256sum', async () => {
    const path = join(dir.path, 'l.tar.gz');
    const layer = await writeLayerFile(Readable.from([await mixedTar()]), path);
    execFileSync('gzip', ['-t', path]);
    expect(await layer.digest()).toBe(sha256sum(`sha256sum ${path}`));
    expect(await layer.diffId()).toBe(sha256sum(`gunzip -c ${path} | sha256sum`));
    // Random data is stored, not deflated: the blob is barely larger than the random part plus the text's share.
    expect(await layer.size()).toBeLessThan(3.2 * 1024 * 1024);
  });

  it('zstd: writes tar+zstd that zstd -d reads, with digests matching sha256sum', async () => {
    const tar = await mixedTar();
    const path = join(dir.path, 'l.tar.zst');
    const layer = await writeLayerFile(Readable.from([tar]), path, { codec: { kind: 'zstd' } });
    expect(await layer.mediaType()).toBe(MediaType.OciLayerZstd);
    execFileSync('zstd', ['-q', '-t', path]);
    expect(await layer.digest()).toBe(sha256sum(`sha256sum ${path}`));
    expect(await layer.diffId()).toBe(sha256sum(`zstd -q -d -c ${path} | sha256sum`));
    expect(Buffer.concat(await (await layer.uncompressed()).toArray()).equals(tar)).toBe(true);
    // The level changes the bytes but not the content.
    const other = await writeLayerFile(Readable.from([tar]), join(dir.path, 'l9.tar.zst'), { codec: { kind: 'zstd', level: 9 } });
    expect(await other.diffId()).toBe(await layer.diffId());
    expect(await other.digest()).not.toBe(await layer.digest());
  });

  for (const codec of [{ kind: 'gzip' }, { kind: 'zstd' }] as const) {
    it(`${codec.kind}: a source failing after several MiB fails the layer and leaves no file`, async () => {
      let sent = 0;
      const failing = new Readable({
        read() {
          if (sent++ < 6) this.push(randomBytes(1024 * 1024));
          else this.destroy(new Error('disk on fire'));
        },
      });
      await expect(writeLayerFile(failing, join(dir.path, 'l'), { codec })).rejects.toThrow('disk on fire');
      expect(await readdir(dir.path)).toEqual([]);
    });
  }

  it('refuses a level outside the codec\'s range before reading anything', async () => {
    const source = Readable.from([Buffer.from('never read')]);
    await expect(writeLayerFile(source, join(dir.path, 'l'), { codec: { kind: 'gzip', level: 12 } })).rejects.toThrow(/gzip level \(0-9/);
    await expect(writeLayerFile(source, join(dir.path, 'l'), { codec: { kind: 'zstd', level: 0 } })).rejects.toThrow(/zstd level/);
    expect(await readdir(dir.path)).toEqual([]);
  });
});
