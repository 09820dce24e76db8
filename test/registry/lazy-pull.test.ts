// Base images are pulled lazily: manifest and config when the stage starts, layers only when something
// reads them, then all of them at once into the work dir (spooled), each downloaded once.
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { unpackImage } from '../../src/builder/rootfs-materializer.js';
import { RegistryError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { spoolingImage } from '../../src/sources/registry-spool.js';
import { executor, writeContext } from '../support/executor.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { captureContext, MemoryLayer, newClient, readAll, skopeo, testImage } from './fixtures.js';

const linux = { os: 'linux', architecture: 'amd64' };
/** Retries `check` for up to 5 s: downloads started in the background finish when they finish. */
async function eventually(check: () => Promise<unknown>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await check();
      return;
    } catch (err) {
      if (i >= 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150)); // the access log comes through a pipe

describe('lazily pulled base images', () => {
  let reg: RunningRegistry;
  let spoolDir: string;
  beforeAll(async () => {
    reg = await startRegistry({ accessLog: true });
    spoolDir = await mkdtemp(join(tmpdir(), 'kiln-spool-'));
  });
  afterAll(async () => {
    await reg?.stop();
    await rm(spoolDir, { recursive: true, force: true });
  });

  // Found by bench/soak.mjs: the registry gone between the manifest and the layers failed the build with
  // `error building image: unable to reach registry HOST: ...` and no word of what was being fetched.
  it('a layer that cannot be fetched when the rootfs is made names the layer', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 0 });
    const layer = await MemoryLayer.of({ gone: 'before it was read' });
    const ref = parseReference(`${reg.host}/kiln/lazy-gone:v1`);
    await pushImage(client, testImage([layer], { label: 'lazy-gone' }), [ref], ctx);
    const pulled = await pullImage(client, ref, { platform: linux });
    await reg.kill();
    const root = await mkdtemp(join(tmpdir(), 'kiln-lazy-gone-'));
    try {
      // Straight from the registry, and through the spool (as a build reads a base: the download's
      // failure reaches the unpacker through the stream it follows).
      for (const image of [pulled, spoolingImage(pulled, { dir: join(root, 'spool'), ctx })]) {
        const err = await unpackImage(join(root, 'fs'), image, IgnoreList.empty(), ctx).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RegistryError);
        expect((err as RegistryError).retryable).toBe(true);
        expect((err as Error).message).toBe(`pulling layer ${await layer.digest()}: unable to reach registry ${reg.host}: connect ECONNREFUSED ${reg.host}`);
      }
    } finally {
      client.close();
      await reg.restart();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('downloads no layer until one is read, then every layer once, in parallel, into the spool dir', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const layers = [await MemoryLayer.of({ a: '1' }), await MemoryLayer.of({ b: '2' }), await MemoryLayer.of({ c: '3' })];
    const ref = parseReference(`${reg.host}/kiln/lazy:v1`);
    await pushImage(client, testImage(layers, { label: 'lazy' }), [ref], ctx);
    const digests = await Promise.all(layers.map((l) => l.digest()));
    const layerGets = () => reg.requests().filter((r) => r.method === 'GET' && digests.some((d) => r.path.endsWith(d)));

    const image = spoolingImage(await pullImage(client, ref, { platform: linux }), { dir: spoolDir, ctx });
    const spooled = await image.layers();
    expect((await image.configFile()).config?.Labels).toEqual({ 'kiln.test': 'lazy' });
    await settle();
    expect(layerGets()).toEqual([]);

    expect(await readAll(await spooled[0]!.uncompressed())).toEqual(layers[0]!.tar);
    // Reading the first layer brought the later ones too, without anyone opening them.
    for (const d of digests) await eventually(() => access(join(spoolDir, d.slice(7))));
    expect(await readAll(await spooled[2]!.compressed())).toEqual(layers[2]!.gz);
    expect(await readAll(await spooled[1]!.uncompressed())).toEqual(layers[1]!.tar);
    await settle();
    expect(layerGets().map((r) => r.status)).toEqual([200, 200, 200]);
    expect((await readdir(spoolDir)).sort()).toEqual(digests.map((d) => d.slice(7)).sort());
    // A second image sharing the layers reuses the files.
    const again = spoolingImage(await pullImage(client, ref, { platform: linux }), { dir: spoolDir, ctx });
    expect(await readAll(await (await again.layers())[1]!.compressed())).toEqual(layers[1]!.gz);
    client.close();
    await settle();
    expect(layerGets()).toHaveLength(3);
    expect(spooled[0]!.origin).toEqual({ registry: reg.host, repository: 'kiln/lazy' });
  });

  it('builds a stage of metadata instructions without downloading the base layers', async () => {
    const images = inject('images');
    const base = `${reg.host}/kiln/busybox:latest`;
    await skopeo('copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${images.busybox}`, `docker://${base}`);
    const layerDigests = (JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${base}`)) as { layers: { digest: string }[] }).layers.map(
      (l) => l.digest,
    );
    const ctx = await writeContext({ Dockerfile: `FROM ${base}\nENV A=b\nLABEL lazy=yes\nCMD ["sh"]\n` });
    const mark = reg.requests().length;
    try {
      const r = await executor(['--context', ctx, '--destination', `${reg.host}/kiln/lazy-build:1`]);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('error building image'))).toEqual([]);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain('Skipping unpacking as no commands require it.');
    } finally {
      await rm(ctx, { recursive: true, force: true });
    }
    await settle();
    const reqs = reg.requests().slice(mark);
    expect(reqs.filter((q) => q.method === 'GET' && layerDigests.some((d) => q.path.endsWith(d)))).toEqual([]);
    // The push mounted the base layers from the base's repository.
    expect(reqs.filter((q) => q.method === 'POST' && q.path.includes('mount=') && q.status === 201)).toHaveLength(layerDigests.length);
  });
});
