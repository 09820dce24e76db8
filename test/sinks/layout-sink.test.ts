import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeOciLayout } from '../../src/sinks/layout-sink.js';
import { assembleImage } from '../../src/oci/assemble.js';
import type { Image } from '../../src/oci/image.js';
import type { ManifestFamily } from '../../src/oci/media-types.js';
import { scratchImage } from '../../src/sources/scratch.js';
import { gzipLayer, testContext, type TestLayer } from './test-layer.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  return (await run('skopeo', args, { maxBuffer: 16 << 20 })).stdout;
}

function testImage(layers: readonly TestLayer[], family: ManifestFamily = 'oci'): Image {
  return assembleImage({
    family,
    config: {
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [] },
    },
    layers,
  });
}

describe('writeOciLayout', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-layout-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('writes a layout skopeo reads, whose manifest digest is the image digest', async () => {
    const image = testImage([
      await gzipLayer([{ path: 'hello.txt', content: 'hello\n' }]),
      await gzipLayer([{ path: 'etc/motd', content: 'second layer\n' }]),
    ]);
    const dir = join(work, 'out');
    const desc = await writeOciLayout(image, dir, { ctx: testContext() });
    expect(desc.digest).toBe(await image.digest());

    const raw = await skopeo('inspect', '--raw', `oci:${dir}`);
    expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(await image.digest());
    const cfg = JSON.parse(await skopeo('inspect', '--config', `oci:${dir}`)) as { rootfs: { diff_ids: string[] } };
    const layers = await image.layers();
    expect(cfg.rootfs.diff_ids).toEqual(await Promise.all(layers.map((l) => l.diffId())));
  });

  it('writes oci-layout and index.json byte for byte as go-containerregistry does for kaniko', async () => {
    const image = testImage([await gzipLayer([{ path: 'a', content: 'a' }])]);
    const dir = join(work, 'out');
    await writeOciLayout(image, dir, { ctx: testContext() });
    expect(await readFile(join(dir, 'oci-layout'), 'utf8')).toBe('{\n    "imageLayoutVersion": "1.0.0"\n}');
    const size = (await image.rawManifest()).byteLength;
    expect(await readFile(join(dir, 'index.json'), 'utf8')).toBe(
      [
        '{',
        '   "schemaVersion": 2,',
        '   "mediaType": "application/vnd.oci.image.index.v1+json",',
        '   "manifests": [',
        '      {',
        '         "mediaType": "application/vnd.oci.image.manifest.v1+json",',
        `         "size": ${size},`,
        `         "digest": "${await image.digest()}"`,
        '      }',
        '   ]',
        '}',
      ].join('\n'),
    );
    const blobs = (await readdir(join(dir, 'blobs/sha256'))).sort();
    const layer = (await image.layers())[0];
    const expected = [await image.digest(), await image.configName(), await layer!.digest()].map((d) => d.slice(7)).sort();
    expect(blobs).toEqual(expected);
  });

  it('with a ref name, umoci unpacks the image to the layers\' files', async () => {
    const image = testImage([
      await gzipLayer([{ path: 'hello.txt', content: 'hello\n' }]),
      await gzipLayer([{ path: 'hello.txt', content: 'replaced\n' }, { path: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 }]),
    ]);
    const dir = join(work, 'out');
    await writeOciLayout(image, dir, { ctx: testContext(), refName: 'latest' });
    const bundle = join(work, 'bundle');
    await run('umoci', ['unpack', '--image', `${dir}:latest`, bundle]);
    expect(await readFile(join(bundle, 'rootfs/hello.txt'), 'utf8')).toBe('replaced\n');
    expect(await readFile(join(bundle, 'rootfs/bin/tool'), 'utf8')).toBe('#!/bin/sh\n');
  });

  it('writes a Docker schema 2 image (FROM scratch) that skopeo reads', async () => {
    const image = scratchImage({ os: 'linux', architecture: 'arm64' });
    const dir = join(work, 'out');
    await writeOciLayout(image, dir, { ctx: testContext() });
    const info = JSON.parse(await skopeo('inspect', `oci:${dir}`)) as { Architecture: string; Layers: unknown[] };
    expect(info.Architecture).toBe('arm64');
    expect(info.Layers).toEqual([]);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { mediaType: string }[] };
    expect(index.manifests[0]?.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  });

  it('reusing a layout directory keeps old blobs but index.json names only the new image, as kaniko', async () => {
    const first = testImage([await gzipLayer([{ path: 'one', content: '1' }])]);
    const second = testImage([await gzipLayer([{ path: 'two', content: '2' }])]);
    const dir = join(work, 'out');
    await writeOciLayout(first, dir, { ctx: testContext() });
    await writeOciLayout(second, dir, { ctx: testContext() });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([await second.digest()]);
    const blobs = await readdir(join(dir, 'blobs/sha256'));
    expect(blobs).toContain((await first.digest()).slice(7));
    expect(blobs).toHaveLength(6);
    await skopeo('inspect', `oci:${dir}`);
  });

  it('a layer stream failing midway leaves nothing at a new output path', async () => {
    const broken = await gzipLayer([{ path: 'big', content: 'x'.repeat(100_000) + Math.random() }], { failAfter: 20 });
    const image = testImage([await gzipLayer([{ path: 'ok', content: 'ok' }]), broken]);
    const dir = join(work, 'out');
    await expect(writeOciLayout(image, dir, { ctx: testContext() })).rejects.toThrow(/layer source broke midway/);
    expect(await readdir(work)).toEqual([]);
  });

  it('a failing write into an existing layout leaves its index.json and no temp files', async () => {
    const dir = join(work, 'out');
    await writeOciLayout(testImage([await gzipLayer([{ path: 'one', content: '1' }])]), dir, { ctx: testContext() });
    const indexBefore = await readFile(join(dir, 'index.json'), 'utf8');
    const blobsBefore = (await readdir(join(dir, 'blobs/sha256'))).sort();
    const broken = await gzipLayer([{ path: 'big', content: 'y'.repeat(50_000) }], { failAfter: 10 });
    await expect(writeOciLayout(testImage([broken]), dir, { ctx: testContext() })).rejects.toThrow();
    expect(await readFile(join(dir, 'index.json'), 'utf8')).toBe(indexBefore);
    expect((await readdir(join(dir, 'blobs/sha256'))).sort()).toEqual(blobsBefore);
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('refuses a path that is a file, with an OutputError', async () => {
    const file = join(work, 'file');
    await writeFile(file, 'x');
    await expect(writeOciLayout(testImage([]), file, { ctx: testContext() })).rejects.toMatchObject({ code: 'OUTPUT' });
  });
});
