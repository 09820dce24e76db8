// Multi-stage builds, FROM scratch, and platform selection from a multi-platform base.
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { chrootRun, executor, skopeoJson, skopeoRaw, unpackWithUmoci, writeContext } from '../support/executor.js';
import { parseLogLines } from '../support/log-events-schema.js';

describe('stages', () => {
  const registry = inject('registry');
  const images = inject('images');
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });
  const context = async (files: Record<string, string>) => {
    const dir = await writeContext(files);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const unpack = async (ref: string) => {
    const u = await unpackWithUmoci(`docker://${ref}`);
    cleanups.push(u.cleanup);
    return u;
  };

  it('copies files from an earlier stage into a scratch image, keeping their mode and owner', async () => {
    const ctx = await context({
      Dockerfile: [
        `FROM ${images.busybox} AS build`,
        'RUN mkdir /out && echo "built in stage one" > /out/result.txt && chmod 640 /out/result.txt && chown 1000:1000 /out/result.txt',
        'RUN cp /bin/busybox /out/busybox',
        `FROM ${images.busybox} AS unused`,
        'RUN exit 1',
        'FROM scratch',
        'COPY --from=build /out/ /',
        'ENTRYPOINT ["/busybox"]',
        'CMD ["cat", "/result.txt"]',
        '',
      ].join('\n'),
    });
    const dest = `${registry}/e2e/multistage:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull']);
    expect(r.stderr).not.toContain('error building image');
    expect(r.code).toBe(0);
    const m = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${dest}`])) as { mediaType: string; layers: unknown[] };
    // scratch is a Docker schema 2 image (kaniko's empty.Image); one COPY, one layer.
    expect(m.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(m.layers).toHaveLength(1);
    const u = await unpack(dest);
    const st = await stat(join(u.rootfs, 'result.txt'));
    expect(st.mode & 0o777).toBe(0o640);
    expect([st.uid, st.gid]).toEqual([1000, 1000]);
    expect(await chrootRun(u.rootfs, ['/busybox', 'cat', '/result.txt'])).toBe('built in stage one\n');
  });

  it('writes a builder stage\'s layers as plain tar and compresses only the image it pushes', async () => {
    // 300 kB of zeros: gzip makes a few hundred bytes of it, so a compressed builder layer would be small.
    const ctx = await context({
      Dockerfile: [
        `FROM ${images.busybox} AS build`,
        'RUN head -c 300000 /dev/zero > /zeros',
        `FROM ${images.busybox}`,
        'COPY --from=build /zeros /zeros',
        '',
      ].join('\n'),
    });
    const dest = `${registry}/e2e/builder-plain:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const layers = parseLogLines(r.stderr).events.filter((e) => e.event === 'layer');
    expect(layers.map((e) => `${e.stage}:${e.line}`)).toEqual(['build:2', 'stage-1:4']);
    const [built, copied] = layers;
    if (built?.event !== 'layer' || copied?.event !== 'layer') throw new Error('layer events missing');
    expect(built.size).toBeGreaterThan(300000);
    expect(copied.size).toBeLessThan(10000);
    const m = JSON.parse(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${dest}`])) as { layers: { mediaType: string; digest: string }[] };
    expect(m.layers.at(-1)).toMatchObject({ digest: copied.digest, mediaType: expect.stringMatching(/gzip$/) });
    expect(m.layers.map((l) => l.digest)).not.toContain(built.digest);
    const u = await unpack(dest);
    expect((await stat(join(u.rootfs, 'zeros'))).size).toBe(300000);
  });

  it('picks the requested platform from a multi-platform base (--custom-platform)', async () => {
    const ctx = await context({ Dockerfile: `FROM ${images.multi}\nCOPY Dockerfile /Dockerfile.copy\n` });
    const dest = `${registry}/e2e/arm64:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', '--custom-platform', 'linux/arm64']);
    expect(r.stderr).not.toContain('error building image');
    const cfg = (await skopeoJson(['inspect', '--tls-verify=false', '--config', `docker://${dest}`])) as { architecture: string; os: string };
    expect(cfg.architecture).toBe('arm64');
    const u = await unpack(dest);
    expect(await readFile(join(u.rootfs, 'platform'), 'utf8')).toMatch(/^arm64/);
  });

  it('takes docker build\'s --platform as --custom-platform', async () => {
    const ctx = await context({ Dockerfile: `FROM ${images.multi}\nARG TARGETARCH\nRUN true\n` });
    const layoutDir = join(ctx, 'out');
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--platform', 'linux/arm64', '--oci-layout-path', layoutDir, '--skip-push-permission-check']);
    expect(r.code, r.stderr).toBe(1);
    // The arm64 image has no shell this machine can run: choosing it is proven by RUN failing there.
    const ok = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--platform', 'linux/amd64', '--oci-layout-path', layoutDir]);
    expect(ok.code, ok.stderr).toBe(0);
    const cfg = (await skopeoJson(['inspect', '--config', `oci:${layoutDir}`])) as { architecture: string };
    expect(cfg.architecture).toBe('amd64');
    const clash = await executor(['--context', ctx, '--no-push', '--platform', 'linux/amd64', '--custom-platform', 'linux/arm64']);
    expect(clash.stderr).toContain('--platform and --custom-platform name different platforms');
  });

  it('builds only the target stage and what it needs (--target)', async () => {
    const ctx = await context({
      Dockerfile: [`FROM ${images.busybox} AS first`, 'RUN echo first > /which', `FROM ${images.busybox} AS second`, 'RUN exit 3', ''].join('\n'),
    });
    const dest = `${registry}/e2e/target:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', '--target', 'first']);
    expect(r.code).toBe(0);
    const u = await unpack(dest);
    expect(await readFile(join(u.rootfs, 'which'), 'utf8')).toBe('first\n');
  });
});
