import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { extract } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assembleImage } from '../../src/oci/assemble.js';
import type { Image } from '../../src/oci/image.js';
import { tarballRepoTag, writeDockerTarball } from '../../src/sinks/tarball-sink.js';
import { gzipLayer, testContext, type TestLayer } from './test-layer.js';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  return (await run('skopeo', args, { maxBuffer: 16 << 20 })).stdout;
}

function testImage(layers: readonly TestLayer[]): Image {
  return assembleImage({
    family: 'oci',
    config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] } },
    layers,
  });
}

interface TarEntry {
  name: string;
  mode: number;
  body: Buffer;
}

async function readTar(path: string): Promise<TarEntry[]> {
  const ex = extract();
  const out: TarEntry[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(Buffer.from(c as Uint8Array));
      out.push({ name: entry.header.name, mode: entry.header.mode, body: Buffer.concat(chunks) });
    }
  })();
  createReadStream(path).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return out;
}

describe('writeDockerTarball', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-tarball-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('writes docker-save format that skopeo reads with the same config digest and diffIDs', async () => {
    const image = testImage([
      await gzipLayer([{ path: 'hello.txt', content: 'hello\n' }]),
      await gzipLayer([{ path: 'etc/motd', content: 'motd\n' }]),
    ]);
    const path = join(work, 'image.tar');
    await writeDockerTarball(image, path, ['registry.example/app:1.0'], { ctx: testContext() });

    const raw = JSON.parse(await skopeo('inspect', '--raw', `docker-archive:${path}`)) as { config: { digest: string } };
    expect(raw.config.digest).toBe(await image.configName());
    const cfg = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${path}`)) as { rootfs: { diff_ids: string[] } };
    const layers = await image.layers();
    expect(cfg.rootfs.diff_ids).toEqual(await Promise.all(layers.map((l) => l.diffId())));
    // skopeo finds the image by the tag recorded in manifest.json.
    const byTag = JSON.parse(await skopeo('inspect', '--raw', `docker-archive:${path}:registry.example/app:1.0`)) as {
      config: { digest: string };
    };
    expect(byTag.config.digest).toBe(await image.configName());
  });

  it('lays out entries as go-containerregistry: config, layers by hex digest, manifest.json last', async () => {
    const l1 = await gzipLayer([{ path: 'a', content: 'a' }]);
    const l2 = await gzipLayer([{ path: 'b', content: 'b' }]);
    // The same layer twice is written once, as go-containerregistry dedups by digest.
    const image = testImage([l1, l2, l1]);
    const path = join(work, 'image.tar');
    await writeDockerTarball(image, path, ['a.example/x:latest', 'b.example/y:2'], { ctx: testContext() });
    const entries = await readTar(path);
    const configName = await image.configName();
    const h1 = (await l1.digest()).slice(7);
    const h2 = (await l2.digest()).slice(7);
    expect(entries.map((e) => e.name)).toEqual([configName, `${h1}.tar.gz`, `${h2}.tar.gz`, 'manifest.json']);
    expect(entries.every((e) => e.mode === 0o644)).toBe(true);
    expect(entries[0]?.body.equals(Buffer.from(await image.rawConfig()))).toBe(true);
    expect(entries[1]?.body.equals(l1.gz)).toBe(true);
    expect(entries[3]?.body.toString()).toBe(
      JSON.stringify([
        {
          Config: configName,
          RepoTags: ['a.example/x:latest', 'b.example/y:2'],
          Layers: [`${h1}.tar.gz`, `${h2}.tar.gz`, `${h1}.tar.gz`],
        },
      ]),
    );
  });

  it('can be unpacked by umoci after skopeo copies it to an OCI layout', async () => {
    const image = testImage([await gzipLayer([{ path: 'srv/data.txt', content: 'payload\n' }])]);
    const path = join(work, 'image.tar');
    await writeDockerTarball(image, path, ['kiln.test/img:1'], { ctx: testContext() });
    const layout = join(work, 'layout');
    await skopeo('copy', '--quiet', `docker-archive:${path}`, `oci:${layout}:img`);
    await run('umoci', ['unpack', '--image', `${layout}:img`, join(work, 'bundle')]);
    expect(await readFile(join(work, 'bundle/rootfs/srv/data.txt'), 'utf8')).toBe('payload\n');
  });

  it('a layer stream failing midway leaves no file at the output path', async () => {
    const broken = await gzipLayer([{ path: 'big', content: 'z'.repeat(200_000) }], { failAfter: 30 });
    const image = testImage([await gzipLayer([{ path: 'ok', content: 'ok' }]), broken]);
    const path = join(work, 'image.tar');
    await expect(writeDockerTarball(image, path, ['x.example/y:1'], { ctx: testContext() })).rejects.toThrow(
      /layer source broke midway/,
    );
    expect(await readdir(work)).toEqual([]);
  });

  it('a layer whose bytes do not match its digest fails with DIGEST_MISMATCH and writes nothing', async () => {
    const good = await gzipLayer([{ path: 'a', content: 'a' }]);
    const other = await gzipLayer([{ path: 'b', content: 'b' }]);
    const lying: TestLayer = { ...good, compressed: other.compressed, size: other.size };
    const image = testImage([lying]);
    const path = join(work, 'image.tar');
    await expect(writeDockerTarball(image, path, [], { ctx: testContext() })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(await readdir(work)).toEqual([]);
  });
});

describe('tarballRepoTag', () => {
  it('appends :latest to an untagged destination and keeps the rest as written', () => {
    expect(tarballRepoTag('bob/image')).toBe('bob/image:latest');
    expect(tarballRepoTag('gcr.io/foo/bar:123')).toBe('gcr.io/foo/bar:123');
    expect(tarballRepoTag('localhost:5000/app')).toBe('localhost:5000/app:latest');
  });
});
