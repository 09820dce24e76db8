import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DigestMismatchError, KilnError, RegistryError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { validateImage } from '../../src/oci/validate.js';
import { pushImage } from '../../src/sinks/registry-sink.js';
import { pullImage } from '../../src/sources/registry-source.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { captureContext, MemoryLayer, newClient, readAll, sha256, skopeo, testImage, writeLayout } from './fixtures.js';

const linuxAmd64 = { os: 'linux', architecture: 'amd64' };

/** Where docker-registry's filesystem driver keeps a blob (manifests are blobs too). */
function blobFile(reg: RunningRegistry, digest: string): string {
  const hex = digest.slice(7);
  return join(reg.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

describe('pulling from a registry', () => {
  let reg: RunningRegistry;
  let layoutDir: string;
  const layers: MemoryLayer[] = [];
  let amd64Digest = '';
  let arm64Digest = '';
  let indexDigest = '';

  beforeAll(async () => {
    reg = await startRegistry();
    layoutDir = await mkdtemp(join(tmpdir(), 'kiln-layout-'));
    layers.push(await MemoryLayer.of({ 'etc/amd64': 'x86' }), await MemoryLayer.of({ 'etc/arm64': 'arm' }));
    const amd64 = testImage([layers[0]!], { architecture: 'amd64', label: 'amd64' });
    const arm64 = testImage([layers[1]!], { architecture: 'arm64', label: 'arm64' });
    amd64Digest = await amd64.digest();
    arm64Digest = await arm64.digest();
    await writeLayout(
      layoutDir,
      [
        { tag: 'amd64', image: amd64, platform: linuxAmd64 },
        { tag: 'arm64', image: arm64, platform: { os: 'linux', architecture: 'arm64' } },
      ],
      'multi',
    );
    // skopeo, not kiln, puts the images in the registry.
    for (const tag of ['amd64', 'multi']) {
      await skopeo('copy', '--all', '--dest-tls-verify=false', `oci:${layoutDir}:${tag}`, `docker://${reg.host}/kiln/pull:${tag}`);
    }
    indexDigest = sha256(Buffer.from(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/pull:multi`)));
  });
  afterAll(async () => {
    await reg?.stop();
    await rm(layoutDir, { recursive: true, force: true });
  });

  it('pulls an image by tag with the manifest and config bytes the registry holds', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const img = await pullImage(client, parseReference(`${reg.host}/kiln/pull:amd64`), { platform: linuxAmd64 });
    expect(await img.digest()).toBe(amd64Digest);
    const raw = await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/kiln/pull:amd64`);
    expect(Buffer.from(await img.rawManifest())).toEqual(Buffer.from(raw));
    const cfg = await skopeo('inspect', '--tls-verify=false', '--config', `docker://${reg.host}/kiln/pull:amd64`);
    expect(JSON.parse(Buffer.from(await img.rawConfig()).toString())).toEqual(JSON.parse(cfg));
    await validateImage(img);
    const [layer] = await img.layers();
    expect(layer?.origin).toEqual({ registry: reg.host, repository: 'kiln/pull' });
    expect(await layer!.diffId()).toBe(await layers[0]!.diffId());
    expect(await readAll(await layer!.compressed())).toEqual(layers[0]!.gz);
    expect(await readAll(await layer!.uncompressed())).toEqual(layers[0]!.tar);
    // Each open is a fresh stream.
    expect(await readAll(await layer!.compressed())).toEqual(layers[0]!.gz);
    client.close();
  });

  it('pulls by digest, and refuses manifest bytes that do not hash to the digest asked for', async () => {
    const client = newClient(captureContext());
    const ref = parseReference(`${reg.host}/kiln/pull@${amd64Digest}`);
    const img = await pullImage(client, ref, { platform: linuxAmd64 });
    expect(await img.digest()).toBe(amd64Digest);
    await validateImage(img);

    // Append a newline to the stored arm64 manifest (still valid JSON): the registry serves it as is.
    const file = blobFile(reg, arm64Digest);
    const original = await readFile(file, 'utf8');
    await writeFile(file, `${original}\n`);
    try {
      const err = await client.getManifest(parseReference(`${reg.host}/kiln/pull@${arm64Digest}`)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect((err as Error).message).toContain(`manifest ${reg.host}/kiln/pull@${arm64Digest}: digest mismatch`);
    } finally {
      await writeFile(file, original);
    }
    await expect(
      client.getManifest(parseReference(`${reg.host}/kiln/pull@sha256:${'0'.repeat(64)}`)),
    ).rejects.toMatchObject({ status: 404, registryCodes: ['MANIFEST_UNKNOWN'] });
    client.close();
  });

  it('picks the platform from an index, and lists the platforms there are when none matches', async () => {
    const client = newClient(captureContext());
    const ref = parseReference(`${reg.host}/kiln/pull:multi`);
    const arm = await pullImage(client, ref, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    expect(await arm.digest()).toBe(arm64Digest);
    expect((await arm.configFile()).architecture).toBe('arm64');
    const amd = await pullImage(client, ref, { platform: linuxAmd64 });
    expect(await amd.digest()).toBe(amd64Digest);
    const byIndexDigest = await pullImage(client, parseReference(`${reg.host}/kiln/pull@${indexDigest}`), { platform: linuxAmd64 });
    expect(await byIndexDigest.digest()).toBe(amd64Digest);

    const err = await pullImage(client, ref, { platform: { os: 'linux', architecture: 's390x' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as Error).message).toBe(
      `${reg.host}/kiln/pull:multi: no image for platform linux/s390x; available: linux/amd64, linux/arm64`,
    );
    client.close();
  });

  it('names the reference, status and MANIFEST_UNKNOWN when a tag does not exist', async () => {
    const client = newClient(captureContext());
    const err = await pullImage(client, parseReference(`${reg.host}/kiln/pull:nope`), { platform: linuxAmd64 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    const e = err as RegistryError;
    expect(e.status).toBe(404);
    expect(e.registryCodes).toContain('MANIFEST_UNKNOWN');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(new RegExp(`^GET (https|http)://${reg.host}/v2/kiln/pull/manifests/nope: 404 Not Found: MANIFEST_UNKNOWN`));
    expect(e.message).not.toContain('\n');
    client.close();
  });

  it('fails the uncompressed stream when the layer does not match the diffID its config names', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    const honest = await MemoryLayer.of({ 'lie.txt': 'config says otherwise' });
    const liar = Object.assign(Object.create(honest) as MemoryLayer, { diffId: async () => sha256(Buffer.from('not this tar')) });
    const ref = parseReference(`${reg.host}/kiln/liar:v1`);
    await pushImage(client, testImage([liar]), [ref], ctx);
    const [layer] = await (await pullImage(client, ref, { platform: linuxAmd64 })).layers();
    expect(await readAll(await layer!.compressed())).toEqual(honest.gz);
    await expect(readAll(await layer!.uncompressed())).rejects.toThrow(/\(uncompressed\): digest mismatch/);
    client.close();
  });

  it('fails the layer stream, never ending it cleanly, when a stored blob is corrupt', async () => {
    const d = await layers[0]!.digest();
    const file = blobFile(reg, d);
    const { size } = await stat(file);
    const client = newClient(captureContext());
    const img = await pullImage(client, parseReference(`${reg.host}/kiln/pull:amd64`), { platform: linuxAmd64 });
    const [layer] = await img.layers();
    await writeFile(file, Buffer.alloc(size, 0x5a));
    await expect(readAll(await layer!.compressed())).rejects.toBeInstanceOf(DigestMismatchError);
    const err = await readAll(await layer!.compressed()).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`blob ${reg.host}/kiln/pull@${d}: digest mismatch: expected ${d}, got sha256:`);
    await expect(readAll(await layer!.uncompressed())).rejects.toThrow();
    await writeFile(file, layers[0]!.gz);
    expect(await readAll(await layer!.compressed())).toEqual(layers[0]!.gz);
    client.close();
  });
});
