// The foundation end to end: a Dockerfile with every basic instruction is built in sandbox mode,
// pushed to a real registry, and checked with skopeo and umoci, never with kiln's own reader.
import { lstat, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chrootRun, executor, layerEntries, skopeoJson, skopeoRaw, unpackWithUmoci, writeContext, type UnpackedImage } from '../support/executor.js';

interface SkopeoConfig {
  architecture: string;
  os: string;
  config: Record<string, unknown>;
  rootfs: { diff_ids: string[] };
  history: Array<{ created_by?: string; empty_layer?: boolean }>;
}
interface RawManifest {
  mediaType: string;
  config: { mediaType: string; digest: string };
  layers: Array<{ mediaType: string; digest: string }>;
}

describe('building a Dockerfile and pushing it (sandbox mode)', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dest = `${registry}/e2e/basic:1`;
  let ctx: string;
  let result: { code: number; stdout: string; stderr: string };
  let unpacked: UnpackedImage;
  let manifest: RawManifest;
  let config: SkopeoConfig;
  let baseLayers: number;

  beforeAll(async () => {
    ctx = await writeContext({
      'hello.txt': 'hello from the context\n',
      'bin/tool.sh': '#!/bin/sh\necho tool ran\n',
      'data/a.json': '{"a":1}\n',
      'data/b.json': '{"b":2}\n',
      'data/skip.md': 'not copied\n',
      'secret.key': 'must not be copied\n',
      '.dockerignore': 'secret.key\n',
      Dockerfile: [
        `FROM ${images.busybox}`,
        'ARG GREETING=hi',
        'ENV APP_HOME=/app MODE=test',
        'WORKDIR $APP_HOME',
        'COPY hello.txt .',
        'COPY bin/ /usr/local/bin/',
        'COPY data/*.json ./data/',
        'RUN chmod 0755 /usr/local/bin/tool.sh && echo "$GREETING $MODE" > greeting && ln -s greeting link && ln greeting hard && rm /etc/group && mkdir -p /var/empty-dir',
        'RUN ["/bin/sh", "-c", "id -u > /app/uid-root"]',
        'USER app',
        'RUN id -u > /home/app/uid && pwd > /home/app/pwd',
        'RUN true',
        'LABEL org.example.name="basic" org.example.version=1',
        'EXPOSE 8080 9090/udp',
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'CMD ["cat /app/greeting && /usr/local/bin/tool.sh"]',
        '',
      ].join('\n'),
    });
    result = await executor(['--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull', '--build-arg', 'GREETING=howdy']);
    if (result.code !== 0) throw new Error(`executor failed (${result.code}): ${result.stderr}`);
    manifest = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${dest}`])) as RawManifest;
    config = (await skopeoJson(['inspect', '--tls-verify=false', '--config', `docker://${dest}`])) as SkopeoConfig;
    const base = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${images.busybox}`])) as RawManifest;
    baseLayers = base.layers.length;
    unpacked = await unpackWithUmoci(`docker://${dest}`);
  });

  afterAll(async () => {
    await unpacked?.cleanup();
    await rm(ctx, { recursive: true, force: true });
  });

  it('logs kaniko\'s main lines and the pushed digest', () => {
    expect(result.stderr).toMatch(/^INFO\[\d{4}\] Retrieving image manifest /m);
    expect(result.stderr).toMatch(/^INFO\[\d{4}\] Unpacking rootfs as cmd WORKDIR requires it\./m);
    expect(result.stderr).toMatch(/^INFO\[\d{4}\] Taking snapshot of full filesystem\.\.\./m);
    expect(result.stderr).toContain(`Pushing image to ${dest}`);
    expect(result.stderr).toMatch(new RegExp(`Pushed ${registry}/e2e/basic@sha256:[a-f0-9]{64}`));
  });

  it('pushes an OCI manifest whose layers extend the base image', () => {
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.config.mediaType).toBe('application/vnd.oci.image.config.v1+json');
    for (const l of manifest.layers) expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    // WORKDIR, 3 COPYs, 2 RUNs that write, the USER RUN; `RUN true` changes nothing and adds no layer.
    expect(manifest.layers.length).toBe(baseLayers + 7);
    expect(config.rootfs.diff_ids.length).toBe(manifest.layers.length);
  });

  it('records the config a user of docker build would get', () => {
    const c = config.config;
    expect(config.architecture).toBe('amd64');
    expect(config.os).toBe('linux');
    expect(c['Env']).toEqual(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'APP_HOME=/app', 'MODE=test']);
    expect(c['WorkingDir']).toBe('/app');
    expect(c['User']).toBe('app');
    expect(c['Entrypoint']).toEqual(['/bin/sh', '-c']);
    expect(c['Cmd']).toEqual(['cat /app/greeting && /usr/local/bin/tool.sh']);
    expect(c['ExposedPorts']).toEqual({ '8080/tcp': {}, '9090/udp': {} });
    expect(c['Labels']).toEqual({ 'org.example.name': 'basic', 'org.example.version': '1' });
    const nonEmpty = config.history.filter((h) => h.empty_layer !== true);
    expect(nonEmpty.length).toBe(manifest.layers.length);
    expect(config.history.some((h) => h.created_by === 'RUN |1 GREETING=howdy /bin/sh -c true' && h.empty_layer === true)).toBe(true);
  });

  it('unpacks (umoci) to exactly the files the Dockerfile made, with their modes and owners', async () => {
    const r = unpacked.rootfs;
    expect(await readFile(join(r, 'app/hello.txt'), 'utf8')).toBe('hello from the context\n');
    expect(await readFile(join(r, 'app/greeting'), 'utf8')).toBe('howdy test\n');
    expect(await readlink(join(r, 'app/link'))).toBe('greeting');
    const [g, h] = await Promise.all([stat(join(r, 'app/greeting')), stat(join(r, 'app/hard'))]);
    expect(h.ino).toBe(g.ino);
    const tool = await stat(join(r, 'usr/local/bin/tool.sh'));
    expect(tool.mode & 0o7777).toBe(0o755);
    // Context files are owned by root, whatever owns them on the host (docker's rule, not kaniko's).
    expect([tool.uid, tool.gid]).toEqual([0, 0]);
    expect(await readFile(join(r, 'app/data/a.json'), 'utf8')).toBe('{"a":1}\n');
    expect(await readFile(join(r, 'app/data/b.json'), 'utf8')).toBe('{"b":2}\n');
    await expect(lstat(join(r, 'app/data/skip.md'))).rejects.toThrow();
    await expect(lstat(join(r, 'app/secret.key'))).rejects.toThrow();
    await expect(lstat(join(r, 'etc/group'))).rejects.toThrow();
    expect((await stat(join(r, 'var/empty-dir'))).isDirectory()).toBe(true);
    expect(await readFile(join(r, 'app/uid-root'), 'utf8')).toBe('0\n');
    const uidFile = await stat(join(r, 'home/app/uid'));
    expect([uidFile.uid, uidFile.gid]).toEqual([1000, 1000]);
    expect(await readFile(join(r, 'home/app/uid'), 'utf8')).toBe('1000\n');
    expect(await readFile(join(r, 'home/app/pwd'), 'utf8')).toBe('/app\n');
  });

  it('writes deletions as whiteouts and never the sandbox\'s own files into a layer', async () => {
    const all: string[] = [];
    for (const l of manifest.layers.slice(baseLayers)) all.push(...(await layerEntries(unpacked.layout, l.digest)));
    const paths = all.map((e) => e.split(' ').slice(2).join(' '));
    expect(paths).toContain('etc/.wh.group');
    for (const p of paths) expect(p).not.toMatch(/^(proc|sys|dev)\/|^etc\/(resolv\.conf|hosts)$/);
    const greeting = all.find((e) => e.endsWith(' app/greeting'));
    expect(greeting).toMatch(/^-rw-r--r-- 0\/0 /);
    // Two names of one inode stay one file: the later name is a hardlink entry to the first.
    expect(all).toContainEqual(expect.stringMatching(/^h\S+ 0\/0 app\/hard link to app\/greeting$/));
  });

  it('runs the image command in a chroot of the unpacked rootfs', async () => {
    const out = await chrootRun(unpacked.rootfs, [...(config.config['Entrypoint'] as string[]), ...(config.config['Cmd'] as string[])]);
    expect(out).toBe('howdy test\ntool ran\n');
  });
});
