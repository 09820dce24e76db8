// --tar-path, --oci-layout-path and the digest files describe the same image the registry got,
// as skopeo reads them.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, skopeoJson, skopeoRaw, tagExists, writeContext } from '../support/executor.js';

const run = promisify(execFile);

interface Inspect {
  Digest: string;
  Layers: string[];
}
interface ConfigJson {
  rootfs: { diff_ids: string[] };
}

describe('local outputs and digest files', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  let out: string;
  let stderr: string;

  beforeAll(async () => {
    ctx = await writeContext({ 'f.txt': 'x\n', Dockerfile: `FROM ${images.busyboxDocker}\nCOPY f.txt /f.txt\nRUN echo y > /g.txt\n` });
    out = await mkdtemp(join(tmpdir(), 'kiln-out-'));
    const r = await executor([
      '--context', ctx,
      '--destination', `${registry}/e2e/outputs:1`,
      '--destination', `${registry}/e2e/outputs:latest`,
      '--insecure', '--insecure-pull',
      '--tar-path', join(out, 'image.tar'),
      '--oci-layout-path', join(out, 'layout'),
      '--digest-file', join(out, 'digest'),
      '--image-name-with-digest-file', join(out, 'names'),
    ]);
    stderr = r.stderr;
    if (r.code !== 0) throw new Error(r.stderr);
  });

  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  it('keeps a Docker schema 2 base in the Docker media types', async () => {
    const m = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${registry}/e2e/outputs:1`])) as { mediaType: string; layers: Array<{ mediaType: string }> };
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    for (const l of m.layers) expect(l.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar.gzip');
  });

  it('writes the pushed digest to --digest-file and every destination to --image-name-with-digest-file', async () => {
    const pushed = (await skopeoJson(['inspect', '--tls-verify=false', `docker://${registry}/e2e/outputs:1`])) as Inspect;
    const latest = (await skopeoJson(['inspect', '--tls-verify=false', `docker://${registry}/e2e/outputs:latest`])) as Inspect;
    expect(latest.Digest).toBe(pushed.Digest);
    expect(await readFile(join(out, 'digest'), 'utf8')).toBe(pushed.Digest);
    expect(await readFile(join(out, 'names'), 'utf8')).toBe(`${registry}/e2e/outputs@${pushed.Digest}\n${registry}/e2e/outputs@${pushed.Digest}\n`);
  });

  it('writes an OCI layout holding the same manifest as the push', async () => {
    const pushed = (await skopeoJson(['inspect', '--tls-verify=false', `docker://${registry}/e2e/outputs:1`])) as Inspect;
    const layout = (await skopeoJson(['inspect', `oci:${join(out, 'layout')}`])) as Inspect;
    expect(layout.Digest).toBe(pushed.Digest);
    expect(layout.Layers).toEqual(pushed.Layers);
  });

  it('writes a docker-save tarball with the same config and diffIDs', async () => {
    const pushedRaw = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${registry}/e2e/outputs:1`])) as { config: { digest: string } };
    const pushedCfg = (await skopeoJson(['inspect', '--tls-verify=false', '--config', `docker://${registry}/e2e/outputs:1`])) as ConfigJson;
    const tarRaw = JSON.parse(await skopeoRaw(['inspect', '--raw', `docker-archive:${join(out, 'image.tar')}`])) as { config: { digest: string } };
    const tarCfg = (await skopeoJson(['inspect', '--config', `docker-archive:${join(out, 'image.tar')}`])) as ConfigJson;
    expect(tarRaw.config.digest).toBe(pushedRaw.config.digest);
    expect(tarCfg.rootfs.diff_ids).toEqual(pushedCfg.rootfs.diff_ids);
    expect(stderr).toContain(`Wrote image to tarball ${join(out, 'image.tar')}`);
  });

  it('writes a tarball that podman load accepts under the destination\'s name', async () => {
    const store = await mkdtemp(join(tmpdir(), 'kiln-podman-'));
    try {
      const podman = ['--storage-driver', 'vfs', '--root', join(store, 'root'), '--runroot', join(store, 'run')];
      const load = await run('podman', [...podman, 'load', '-i', join(out, 'image.tar')]);
      expect(load.stdout + load.stderr).toContain(`Loaded image: ${registry}/e2e/outputs:1`);
      const { stdout } = await run('podman', [...podman, 'image', 'inspect', `${registry}/e2e/outputs:1`, '--format', '{{json .RootFS.Layers}}']);
      const pushedCfg = (await skopeoJson(['inspect', '--tls-verify=false', '--config', `docker://${registry}/e2e/outputs:1`])) as ConfigJson;
      expect(JSON.parse(stdout)).toEqual(pushedCfg.rootfs.diff_ids);
    } finally {
      await rm(store, { recursive: true, force: true });
    }
  });

  it('--no-push writes the local outputs and pushes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-nopush-'));
    try {
      const r = await executor(['--context', ctx, '--destination', `${registry}/e2e/nopush:1`, '--no-push', '--insecure-pull', '--oci-layout-path', join(dir, 'layout')]);
      expect(r.code).toBe(0);
      expect(await tagExists(`${registry}/e2e/nopush:1`)).toBe(false);
      const layout = (await skopeoJson(['inspect', `oci:${join(dir, 'layout')}`])) as Inspect;
      expect(layout.Layers.length).toBeGreaterThan(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
