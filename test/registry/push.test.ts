import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { errorBody, startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { captureContext, MemoryLayer, newClient, sha256, skopeo, testImage } from './fixtures.js';

describe('pushing to a registry', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry({ accessLog: true });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pushes an image that skopeo reads back byte for byte, logging as kaniko does', async () => {
    const ctx = captureContext('info');
    const client = newClient(ctx);
    const layers = [await MemoryLayer.of({ 'a.txt': 'hello' }), await MemoryLayer.of({ 'b.txt': 'world' })];
    const image = testImage(layers);
    const dest = parseReference(`${reg.host}/kiln/push:v1`);
    const digest = await pushImage(client, image, [dest], ctx);
    client.close();

    expect(digest).toBe(await image.digest());
    const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/push:v1`);
    expect(Buffer.from(raw)).toEqual(Buffer.from(await image.rawManifest()));
    expect(sha256(Buffer.from(raw))).toBe(digest);
    const config = await skopeo('inspect', '--tls-verify=false', '--config', `docker://${reg.host}/kiln/push:v1`);
    const parsed = JSON.parse(config) as { rootfs: { diff_ids: string[] }; config: { Labels: Record<string, string> } };
    expect(parsed.rootfs.diff_ids).toEqual([await layers[0]!.diffId(), await layers[1]!.diffId()]);
    expect(parsed.config.Labels['kiln.test']).toBe('yes');
    // skopeo copies every blob and checks their digests on the way.
    await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/kiln/push:v1`, `dir:${reg.dir}/copy`);

    const text = ctx.lines.join('');
    expect(text).toMatch(new RegExp(`INFO\\[\\d{4}\\] Pushing image to ${reg.host}/kiln/push:v1\\n`));
    expect(text).toContain(`INFO[`);
    expect(text).toContain(`] Pushed ${reg.host}/kiln/push@${digest}\n`);
  });

  it('uploads no large blob again when the same image is pushed a second time, and a tiny one without a HEAD', async () => {
    const ctx = captureContext();
    // Random text: its gzip stays well above the 16 KiB up to which a blob is uploaded unasked.
    const big = await MemoryLayer.of({ 'again.txt': randomBytes(48 * 1024).toString('base64') });
    expect(await big.size()).toBeGreaterThan(16 * 1024);
    const image = testImage([big], { label: 'again' });
    const configDigest = await image.configName();
    const layerDigest = await big.digest();
    const dest = parseReference(`${reg.host}/kiln/again:one`);
    const c1 = newClient(ctx);
    await pushImage(c1, image, [dest], ctx);
    c1.close();
    const before = reg.requests().length;

    const c2 = newClient(ctx);
    await pushImage(c2, image, [parseReference(`${reg.host}/kiln/again:two`)], ctx);
    c2.close();
    const second = reg.requests().slice(before);
    // The layer: asked for and found. The config (a few hundred bytes): uploaded again, never asked for.
    expect(second.filter((r) => r.method === 'HEAD' && r.path.includes('/blobs/')).map((r) => [r.path, r.status])).toEqual([[`/v2/kiln/again/blobs/${layerDigest}`, 200]]);
    const puts = second.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/'));
    expect(puts).toHaveLength(1);
    expect(decodeURIComponent(puts[0]?.path ?? '')).toContain(`digest=${configDigest}`);
    expect(second.filter((r) => r.method === 'POST')).toHaveLength(1);
    expect(second.filter((r) => r.method === 'PUT' && r.path === '/v2/kiln/again/manifests/two')).toHaveLength(1);
  });

  // Found by bench/soak.mjs: docker-registry killed while it wrote a manifest left an empty file in its
  // place; the retried PUT found the file "present", linked the tag to it and answered 201, and kiln
  // reported the push while the tag answered 500. The same registry state, made by hand.
  it('fails, naming the tag, when the registry accepts a manifest but cannot serve it back', async () => {
    const ctx = captureContext();
    const client = newClient(ctx, { retries: 1, retryDelayMs: 5 });
    const image = testImage([await MemoryLayer.of({ 'empty.txt': 'manifest stored empty' })], { label: 'empty-manifest' });
    const digest = await image.digest();
    const hex = digest.slice('sha256:'.length);
    const blobDir = join(reg.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex);
    await mkdir(blobDir, { recursive: true });
    await writeFile(join(blobDir, 'data'), '');
    const err = await pushImage(client, image, [parseReference(`${reg.host}/kiln/empty-manifest:v1`)], ctx).catch((e: unknown) => e);
    client.close();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(new RegExp(`^registry ${reg.host.replace(/\./g, '\\.')} accepted the manifest of ${reg.host.replace(/\./g, '\\.')}/kiln/empty-manifest:v1 \\(${digest}\\) but does not serve it back: .*500`));
    expect(ctx.lines.join('')).not.toContain(`Pushed ${reg.host}/kiln/empty-manifest@`);
    // The registry really is in that state: the tag is there and broken.
    await expect(skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/empty-manifest:v1`)).rejects.toThrow();
  });

  describe('reading the manifest back (through a proxy that answers the GET instead)', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startFaultProxy(reg.host);
    });
    afterAll(async () => {
      await proxy?.stop();
    });
    const readBack = (repo: string) => (r: { method: string; path: string }) => r.method === 'GET' && r.path === `/v2/kiln/${repo}/manifests/v1`;

    it('push-only credentials (403 on the GET) are no failure', async () => {
      const ctx = captureContext();
      proxy.fault = (r) => (readBack('rb-403')(r) ? { status: 403, body: errorBody('DENIED', 'pull not allowed') } : undefined);
      const client = newClient(ctx);
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ rb: '403' })], { label: 'rb-403' }), [parseReference(`${proxy.host}/kiln/rb-403:v1`)], ctx);
      client.close();
      expect(ctx.lines.join('')).toContain(`Pushed ${proxy.host}/kiln/rb-403@${digest}`);
      expect(ctx.lines.join('')).toContain(`not reading back ${proxy.host}/kiln/rb-403:v1: the push credentials may not pull it`);
    });

    it('a 404 is asked again: a registry whose reads lag its writes for a moment', async () => {
      const ctx = captureContext();
      let misses = 0;
      proxy.fault = (r) => (readBack('rb-404')(r) && misses++ < 2 ? { status: 404, body: errorBody('MANIFEST_UNKNOWN', 'not yet') } : undefined);
      const client = newClient(ctx);
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ rb: '404' })], { label: 'rb-404' }), [parseReference(`${proxy.host}/kiln/rb-404:v1`)], ctx);
      client.close();
      expect(misses).toBe(3);
      expect(ctx.lines.join('')).toContain(`Pushed ${proxy.host}/kiln/rb-404@${digest}`);
    });

    it('a registry gone just after the PUT is asked again; gone for good, the build fails saying so', async () => {
      const ctx = captureContext();
      let drops = 0;
      proxy.fault = (r) => (readBack('rb-gone')(r) && drops++ < 2 ? { status: 0, drop: true } : undefined);
      const client = newClient(ctx, { retries: 0 });
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ rb: 'gone' })], { label: 'rb-gone' }), [parseReference(`${proxy.host}/kiln/rb-gone:v1`)], ctx);
      expect(drops).toBe(3);
      expect(ctx.lines.join('')).toContain(`Pushed ${proxy.host}/kiln/rb-gone@${digest}`);
      proxy.fault = (r) => (readBack('rb-gone2')(r) ? { status: 0, drop: true } : undefined);
      const image = testImage([await MemoryLayer.of({ rb: 'gone for good' })], { label: 'rb-gone2' });
      const err = await pushImage(client, image, [parseReference(`${proxy.host}/kiln/rb-gone2:v1`)], ctx).catch((e: unknown) => e);
      client.close();
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as Error).message).toMatch(new RegExp(`^registry ${proxy.host.replace(/\./g, '\\.')} accepted the manifest of .*/kiln/rb-gone2:v1 \\(${await image.digest()}\\) but could not be reached to read it back: unable to reach registry`));
    });

    it('another digest under the tag (a later push of it) is a warning', async () => {
      const ctx = captureContext();
      const other = testImage([await MemoryLayer.of({ rb: 'other' })], { label: 'rb-other' });
      const otherBytes = Buffer.from(await other.rawManifest());
      const otherType = await other.mediaType();
      proxy.fault = (r) =>
        readBack('rb-moved')(r)
          ? { status: 200, headers: { 'Content-Type': otherType, 'Docker-Content-Digest': sha256(otherBytes) }, body: otherBytes.toString('utf8') }
          : undefined;
      const client = newClient(ctx);
      const digest = await pushImage(client, testImage([await MemoryLayer.of({ rb: 'moved' })], { label: 'rb-moved' }), [parseReference(`${proxy.host}/kiln/rb-moved:v1`)], ctx);
      client.close();
      expect(ctx.lines.join('')).toContain(`${proxy.host}/kiln/rb-moved:v1 now holds ${sha256(otherBytes)}, not the ${digest} just pushed`);
    });
  });

  it('uploads each blob once per repository however many tags are pushed, manifest tags last', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const image = testImage([await MemoryLayer.of({ 'x': '1' }), await MemoryLayer.of({ 'y': '2' })], { label: 'tags' });
    const before = reg.requests().length;
    const digest = await pushImage(
      client,
      image,
      [parseReference(`${reg.host}/kiln/tags:a`), parseReference(`${reg.host}/kiln/tags:b`), parseReference(`${reg.host}/kiln/other:c`)],
      ctx,
    );
    client.close();
    const reqs = reg.requests().slice(before);
    const uploads = (repo: string) => reqs.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${repo}/blobs/uploads/`));
    expect(uploads('kiln/tags')).toHaveLength(3); // two layers and the config
    expect(uploads('kiln/other')).toHaveLength(3);
    const tagsReqs = reqs.filter((r) => r.path.startsWith('/v2/kiln/tags/'));
    const firstManifest = tagsReqs.findIndex((r) => r.path.includes('/manifests/'));
    const lastBlob = tagsReqs.map((r) => r.path.includes('/blobs/')).lastIndexOf(true);
    expect(firstManifest).toBeGreaterThan(lastBlob);
    for (const tag of ['tags:a', 'tags:b', 'other:c']) {
      const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/${tag}`);
      expect(sha256(Buffer.from(raw))).toBe(digest);
    }
  });

  it('mounts blobs from the repository a pulled image came from instead of uploading them', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const source = parseReference(`${reg.host}/kiln/mount-src:v1`);
    await pushImage(client, testImage([await MemoryLayer.of({ m: 'mount me' })], { label: 'mount' }), [source], ctx);
    const pulled = await pullImage(client, source, { platform: { os: 'linux', architecture: 'amd64' } });
    const layerDigest = await (await pulled.layers())[0]!.digest();
    const before = reg.requests().length;
    const digest = await pushImage(client, pulled, [parseReference(`${reg.host}/kiln/mount-dst:v1`)], ctx);
    client.close();
    expect(digest).toBe(await pulled.digest());
    const reqs = reg.requests().slice(before);
    expect(reqs).toContainEqual({
      method: 'POST',
      path: `/v2/kiln/mount-dst/blobs/uploads/?mount=${encodeURIComponent(layerDigest)}&from=${encodeURIComponent('kiln/mount-src')}`,
      status: 201,
    });
    // Only the config (which has no origin) is uploaded.
    expect(reqs.filter((r) => r.method === 'PUT' && r.path.includes('/blobs/uploads/'))).toHaveLength(1);
    await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/kiln/mount-dst:v1`, `dir:${reg.dir}/copy-mount`);
  });

  it('pushes a Docker schema 2 image with its media type', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const image = testImage([await MemoryLayer.of({ 'd': 'docker' })], { family: 'docker' });
    await pushImage(client, image, [parseReference(`${reg.host}/kiln/docker:v1`)], ctx);
    client.close();
    const out = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/docker:v1`)) as { mediaType: string };
    expect(out.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  });
});
