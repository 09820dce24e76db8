// Layers kiln compresses (multi-chunk parallel gzip, and zstd) pushed to a real registry and read back
// by Go's readers: skopeo (containers/image) decompresses them and umoci unpacks the gzip image.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chrootRun, executor, unpackWithUmoci, writeContext } from '../support/executor.js';

const run = promisify(execFile);

interface Manifest {
  config: { digest: string };
  layers: Array<{ mediaType: string; digest: string }>;
}

/** skopeo copies the image to a `dir:` with every layer decompressed; the sha256 of each must be its diffID. */
async function decompressedDiffIdsMatch(ref: string): Promise<{ mediaTypes: string[]; ok: boolean }> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-codec-'));
  try {
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', '--dest-decompress', `docker://${ref}`, `dir:${dir}/img`]);
    const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`])).stdout) as Manifest;
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${ref}`])).stdout) as {
      rootfs: { diff_ids: string[] };
    };
    const manifest = JSON.parse(await readFile(join(dir, 'img', 'manifest.json'), 'utf8')) as Manifest;
    const hashes = await Promise.all(
      manifest.layers.map(async (l) => `sha256:${createHash('sha256').update(await readFile(join(dir, 'img', l.digest.replace('sha256:', '')))).digest('hex')}`),
    );
    return { mediaTypes: raw.layers.map((l) => l.mediaType), ok: JSON.stringify(hashes) === JSON.stringify(config.rootfs.diff_ids) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('layers read back by Go tools after a push', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;

  beforeAll(async () => {
    // ~5 MiB of mixed text and random data: several 1 MiB chunks, some stored, some deflated.
    ctx = await writeContext({
      Dockerfile: [`FROM ${images.busybox}`, 'RUN seq 1 400000 > /numbers && head -c 3000000 /dev/urandom > /random && sha256sum /numbers /random > /sums', ''].join('\n'),
    });
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
  });

  it('gzip: skopeo decompresses every layer to its diffID and umoci unpacks the files intact', async () => {
    const dest = `${registry}/codecs/gzip:1`;
    const r = await executor(['--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull']);
    expect(r.code, r.stderr).toBe(0);
    const check = await decompressedDiffIdsMatch(dest);
    expect(check.ok).toBe(true);
    expect(check.mediaTypes.at(-1)).toMatch(/tar\+gzip$|tar\.gzip$/);
    const unpacked = await unpackWithUmoci(`docker://${dest}`);
    try {
      expect(await chrootRun(unpacked.rootfs, ['sha256sum', '-c', '/sums'])).toContain('/random: OK');
    } finally {
      await unpacked.cleanup();
    }
  });

  it('zstd: --compression zstd pushes tar+zstd layers that skopeo decompresses to their diffIDs', async () => {
    const dest = `${registry}/codecs/zstd:1`;
    const r = await executor(['--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull', '--compression', 'zstd', '--compression-level', '9']);
    expect(r.code, r.stderr).toBe(0);
    const check = await decompressedDiffIdsMatch(dest);
    expect(check.ok).toBe(true);
    expect(check.mediaTypes.at(-1)).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
    // And kiln pulls it back: an image FROM the zstd one unpacks its layers through the zstd decompressor.
    const next = await writeContext({ Dockerfile: [`FROM ${dest}`, 'RUN sha256sum -c /sums > /checked', ''].join('\n') });
    try {
      const r2 = await executor(['--context', `dir://${next}`, '--no-push', '--insecure-pull']);
      expect(r2.code, r2.stderr).toBe(0);
    } finally {
      await rm(next, { recursive: true, force: true });
    }
  });

  it('zstd on a Docker schema 2 base: the manifest becomes OCI (schema 2 has no zstd layer type), and skopeo copies it', async () => {
    const images = inject('images');
    const dockerCtx = await writeContext({ Dockerfile: [`FROM ${images.busyboxDocker}`, 'RUN echo z > /z', ''].join('\n') });
    try {
      const dest = `${registry}/codecs/zstd-on-docker:1`;
      const r = await executor(['--context', `dir://${dockerCtx}`, '--destination', dest, '--insecure', '--insecure-pull', '--compression', 'zstd']);
      expect(r.code, r.stderr).toBe(0);
      const raw = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${dest}`])).stdout) as Manifest & { mediaType: string; config: { mediaType: string } };
      expect(raw.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
      expect(raw.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
      // The base's gzip layer keeps its bytes under the OCI name; the new one is OCI zstd.
      expect(raw.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd']);
      const check = await decompressedDiffIdsMatch(dest);
      expect(check.ok).toBe(true);
    } finally {
      await rm(dockerCtx, { recursive: true, force: true });
    }
  });

  it('refuses a level the codec does not have, as a usage error', async () => {
    const r = await executor(['--context', `dir://${ctx}`, '--no-push', '--compression-level', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--compression-level: 10 is not a gzip level');
  });
});
