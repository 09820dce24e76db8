// The base images every other test builds FROM are what they claim to be, checked with skopeo and umoci
// against the shared registry that test/global-setup.ts fills.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { maxBuffer: 16 << 20 });
  return stdout;
}

interface InspectJson {
  Layers: string[];
  Architecture: string;
  Os: string;
  Env: string[];
}

describe('base images', () => {
  const images = inject('images');
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-base-test-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('busybox has exactly one layer, linux/amd64, PATH and Cmd sh', async () => {
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${images.busybox}`)) as InspectJson;
    expect(info.Layers).toHaveLength(1);
    expect(info.Architecture).toBe('amd64');
    expect(info.Os).toBe('linux');
    const config = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', `docker://${images.busybox}`)) as {
      config: { Env: string[]; Cmd: string[] };
      rootfs: { diff_ids: string[] };
    };
    expect(config.config.Env).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    expect(config.config.Cmd).toEqual(['sh']);
    expect(config.rootfs.diff_ids).toHaveLength(1);
  });

  it('busyboxDocker is a Docker schema 2 manifest with the same single layer content', async () => {
    const raw = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${images.busyboxDocker}`)) as {
      mediaType: string;
      layers: unknown[];
    };
    expect(raw.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(raw.layers).toHaveLength(1);
    const oci = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', `docker://${images.busybox}`)) as {
      rootfs: { diff_ids: string[] };
    };
    const docker = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', `docker://${images.busyboxDocker}`)) as {
      rootfs: { diff_ids: string[] };
    };
    expect(docker.rootfs.diff_ids).toEqual(oci.rootfs.diff_ids);
  });

  it('busybox unpacks with umoci to a rootfs where sh, id and the app user work in a chroot', async () => {
    const layout = join(work, 'layout');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${images.busybox}`, `oci:${layout}:busybox`);
    const bundle = join(work, 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:busybox`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    const { stdout } = await run('chroot', [rootfs, '/bin/sh', '-c', 'id app; echo ok']);
    expect(stdout).toBe('uid=1000(app) gid=1000(app) groups=1000(app)\nok\n');
    const tmp = await stat(join(rootfs, 'tmp'));
    expect(tmp.mode & 0o7777).toBe(0o1777);
    const home = await stat(join(rootfs, 'home/app'));
    expect([home.uid, home.gid]).toEqual([1000, 1000]);
    expect((await stat(join(rootfs, 'root'))).isDirectory()).toBe(true);
    const passwd = await readFile(join(rootfs, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^root:x:0:0:/m);
    expect(passwd).toMatch(/^nobody:x:65534:65534:/m);
    expect(await readFile(join(rootfs, 'etc/group'), 'utf8')).toMatch(/^app:x:1000:/m);
  });

  it('multi is an OCI index listing linux/amd64 and linux/arm64, each with its /platform file', async () => {
    const index = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${images.multi}`)) as {
      mediaType: string;
      manifests: { digest: string; platform: { os: string; architecture: string } }[];
    };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual([
      'linux/amd64',
      'linux/arm64',
    ]);
    const layout = join(work, 'multi');
    for (const arch of ['amd64', 'arm64']) {
      const entry = index.manifests.find((m) => m.platform.architecture === arch);
      if (entry === undefined) throw new Error(`no ${arch} entry`);
      const byDigest = `docker://${images.multi.replace(/:latest$/, '')}@${entry.digest}`;
      const config = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', byDigest)) as {
        architecture: string;
        os: string;
      };
      expect(config.architecture).toBe(arch);
      expect(config.os).toBe('linux');
      await skopeo('copy', '--quiet', '--src-tls-verify=false', byDigest, `oci:${layout}:${arch}`);
      const bundle = join(work, `bundle-${arch}`);
      await run('umoci', ['unpack', '--image', `${layout}:${arch}`, bundle]);
      expect(await readFile(join(bundle, 'rootfs/platform'), 'utf8')).toBe(arch);
    }
  });
});
