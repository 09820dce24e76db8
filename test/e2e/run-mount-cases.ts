// RUN --mount and RUN --network, against BuildKit's behaviour (Dockerfile reference, "RUN --mount"):
// what each mount type shows the RUN, and that nothing of a mount reaches the image. The same cases run
// in sandbox mode (run-mounts.test.ts) and in the executor image, isolated (test/image/run-mounts-image.test.ts).
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LayoutBuild } from './layout-build.js';

/** Builds `files` as a context with `args` into an OCI layout and reads the result (layout-build.ts). */
export type BuildFn = (files: Record<string, string>, args?: readonly string[], opts?: { env?: Record<string, string> }) => Promise<LayoutBuild>;

async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // A non-root USER's RUN must reach the mount sources below it.
  await chmod(dir, 0o755);
  return dir;
}

/** The cases, built with `build`; `images` is the run's base images (inject('images')). */
export function describeRunMounts(build: BuildFn, images: { readonly busybox: string }, where: { readonly inImage: boolean }): void {
  describe('RUN --mount=type=cache', () => {
    let cacheDir: string;
    let first: LayoutBuild;
    let second: LayoutBuild;
    const dockerfile = [
      `FROM ${images.busybox}`,
      'RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/count && cp /var/cache/app/count /count',
      // `id` keys the cache, whatever the target: the second RUN sees what the first wrote.
      'RUN --mount=type=cache,id=shared,target=/a echo from-a > /a/note',
      'RUN --mount=type=cache,id=shared,target=/b,sharing=locked cp /b/note /note-via-b',
      // mode/uid/gid apply when the cache directory is created.
      'RUN --mount=type=cache,target=/owned,uid=1000,gid=1000,mode=0750 stat -c "%u:%g:%a" /owned > /owned-stat',
      // A non-root USER writes into a cache it owns; the target under its home is created and removed again.
      'USER app',
      'RUN --mount=type=cache,target=/home/app/.cache/tool,uid=1000,gid=1000,sharing=private echo hi > /home/app/.cache/tool/x && id -u > /tmp/uid',
      '',
    ].join('\n');

    beforeAll(async () => {
      cacheDir = await tempDir('kiln-mount-cache-');
      first = await build({ Dockerfile: dockerfile }, ['--mount-cache-dir', cacheDir]);
      second = await build({ Dockerfile: dockerfile }, ['--mount-cache-dir', cacheDir]);
    });
    afterAll(async () => {
      await first?.cleanup();
      await second?.cleanup();
      await rm(cacheDir, { recursive: true, force: true });
    });

    it('builds twice with the same cache dir', () => {
      expect(first.stderr).not.toContain('error building image');
      expect(first.code).toBe(0);
      expect(second.code).toBe(0);
    });

    it('persists the cache between builds (the second build sees the first one\'s write)', async () => {
      expect(await first.file('count')).toBe('run\n');
      expect(await second.file('count')).toBe('run\nrun\n');
    });

    it('keys the cache by id, not by target', async () => {
      expect(await first.file('note-via-b')).toBe('from-a\n');
    });

    it('creates the cache directory with mode, uid and gid', async () => {
      expect(await first.file('owned-stat')).toBe('1000:1000:750\n');
    });

    it('runs a non-root USER against a cache it owns', async () => {
      expect(await first.file('tmp/uid')).toBe('1000\n');
      expect(existsSync(join(first.image?.rootfs ?? '/nonexistent', 'home/app/.cache'))).toBe(false);
    });

    it('keeps cache contents and mount targets out of the image', async () => {
      const root = first.image?.rootfs ?? '/nonexistent';
      for (const p of ['var/cache', 'a', 'b', 'owned']) expect(existsSync(join(root, p)), p).toBe(false);
      expect(await first.blobsContain('from-a')).toBe(true); // /note-via-b is a copy, in a layer
      expect(existsSync(join(root, 'note'))).toBe(false);
    });
  });

  describe('RUN --mount=type=bind', () => {
    let b: LayoutBuild;
    beforeAll(async () => {
      b = await build({
        'hello.txt': 'hello from the context\n',
        'sub/inner.txt': 'inner\n',
        'ignored.txt': 'dockerignored\n',
        '.dockerignore': 'ignored.txt\n',
        Dockerfile: [
          `FROM ${images.busybox} AS data`,
          'RUN mkdir /data && echo staged > /data/file.txt',
          `FROM ${images.busybox}`,
          'RUN --mount=type=bind,target=/src cat /src/hello.txt > /from-context && ls /src > /listing',
          'RUN --mount=type=bind,source=sub,target=/sub cat /sub/inner.txt > /from-subdir',
          // read-only unless rw
          'RUN --mount=type=bind,target=/src (touch /src/new 2>/dev/null && echo writable || echo read-only) > /ro-check',
          // rw: writable, and the writes are discarded
          'RUN --mount=type=bind,target=/src,rw echo changed > /src/hello.txt && touch /src/new && cat /src/hello.txt > /rw-check',
          'RUN --mount=type=bind,target=/src cat /src/hello.txt > /after-rw',
          'RUN --mount=type=bind,from=data,source=/data,target=/mnt/data cat /mnt/data/file.txt > /from-stage',
          `RUN --mount=type=bind,from=${images.busybox},source=/etc/passwd,target=/etc/passwd-from-image grep -c app /etc/passwd-from-image > /from-image`,
          '',
        ].join('\n'),
      });
    });
    afterAll(async () => b?.cleanup());

    it('builds', () => {
      expect(b.stderr).not.toContain('error building image');
      expect(b.code).toBe(0);
    });

    it('mounts the build context by default, without .dockerignore\'d files', async () => {
      expect(await b.file('from-context')).toBe('hello from the context\n');
      const listing = await b.file('listing');
      expect(listing).toContain('hello.txt');
      expect(listing).not.toContain('ignored.txt');
    });

    it('mounts a source path of the context', async () => {
      expect(await b.file('from-subdir')).toBe('inner\n');
    });

    it('is read-only by default', async () => {
      expect(await b.file('ro-check')).toBe('read-only\n');
    });

    it('with rw, is writable and the writes are discarded', async () => {
      expect(await b.file('rw-check')).toBe('changed\n');
      expect(await b.file('after-rw')).toBe('hello from the context\n');
      expect(existsSync(join(b.ctx, 'new'))).toBe(false);
    });

    it('mounts from another stage and from an image', async () => {
      expect(await b.file('from-stage')).toBe('staged\n');
      expect(await b.file('from-image')).toBe('1\n');
    });

    it('leaves no mount target in the image', () => {
      const root = b.image?.rootfs ?? '/nonexistent';
      for (const p of ['src', 'sub', 'mnt/data', 'etc/passwd-from-image']) expect(existsSync(join(root, p)), p).toBe(false);
    });

    it('refuses a source outside the context', async () => {
      const bad = await build({ Dockerfile: `FROM ${images.busybox}\nRUN --mount=type=bind,source=../../etc,target=/x ls /x\n` });
      await bad.cleanup();
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/Dockerfile:2 RUN .*outside the build context/);
    });
  });

  describe('RUN --mount=type=secret', () => {
    const fileSecret = 'file-secret-value-7f3a9c';
    const envSecret = 'env-secret-value-c41d2e';
    let dir: string;
    let b: LayoutBuild;
    beforeAll(async () => {
      dir = await tempDir('kiln-secret-');
      await writeFile(join(dir, 'token'), fileSecret);
      b = await build(
        {
          Dockerfile: [
            `FROM ${images.busybox}`,
            'RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /token-len && stat -c "%u:%g:%a" /run/secrets/token > /token-stat',
            'RUN --mount=type=secret,id=token,target=/etc/app/token,uid=1000,mode=0440 stat -c "%u:%a" /etc/app/token > /target-stat',
            'RUN --mount=type=secret,id=pw,env=PASSWORD sh -c \'echo ${#PASSWORD} > /pw-len\' && test ! -e /run/secrets/pw && echo no-file > /pw-nofile',
            // Not required and not given: the RUN goes on without it.
            'RUN --mount=type=secret,id=absent (test -e /run/secrets/absent && echo present || echo absent) > /absent',
            '',
          ].join('\n'),
        },
        ['--secret', `id=token,src=${join(dir, 'token')}`, '--secret', 'id=pw,env=KILN_TEST_PW', '--verbosity', 'debug'],
        { env: { KILN_TEST_PW: envSecret } },
      );
    });
    afterAll(async () => {
      await b?.cleanup();
      await rm(dir, { recursive: true, force: true });
    });

    it('builds', () => {
      expect(b.stderr).not.toContain('error building image');
      expect(b.code).toBe(0);
    });

    it('mounts a file secret at /run/secrets/<id>, 0400 root-owned', async () => {
      expect((await b.file('token-len')).trim()).toBe(String(fileSecret.length));
      expect(await b.file('token-stat')).toBe('0:0:400\n');
    });

    it('mounts at target with uid and mode', async () => {
      expect(await b.file('target-stat')).toBe('1000:440\n');
    });

    it('exposes an env secret as an environment variable only', async () => {
      expect((await b.file('pw-len')).trim()).toBe(String(envSecret.length));
      expect(await b.file('pw-nofile')).toBe('no-file\n');
    });

    it('skips a secret that is neither given nor required', async () => {
      expect(await b.file('absent')).toBe('absent\n');
    });

    it('never puts a secret value in a layer, the config, the history or the log', async () => {
      expect(await b.blobsContain(fileSecret)).toBe(false);
      expect(await b.blobsContain(envSecret)).toBe(false);
      expect(b.stderr + b.stdout).not.toContain(fileSecret);
      expect(b.stderr + b.stdout).not.toContain(envSecret);
      const root = b.image?.rootfs ?? '/nonexistent';
      // In the image /run is podman's (the parent of its /run/.containerenv mount), there before the
      // RUN: the secret's mount point comes and goes inside it, and /run is not recorded for that.
      expect(existsSync(join(root, 'run'))).toBe(false);
      expect(existsSync(join(root, 'etc/app'))).toBe(false);
      const config = JSON.stringify(await b.config());
      expect(config).not.toContain('PASSWORD=');
    });

    it('fails a required secret that was not given, naming the line', async () => {
      const bad = await build({ Dockerfile: `FROM ${images.busybox}\nRUN --mount=type=secret,id=missing,required true\n` });
      await bad.cleanup();
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/Dockerfile:2 RUN .*secret missing not found/);
    });
  });

  it("leaves a directory that was there out of a RUN's layer when only a mount's stub came and went in it", async () => {
    const dir = await tempDir('kiln-stub-parent-');
    await writeFile(join(dir, 'token'), 'stub-parent-secret');
    const b = await build(
      {
        Dockerfile: [
          `FROM ${images.busybox}`,
          // In the image /run is podman's already; here it is made by this RUN.
          'RUN mkdir -p /run && touch /run/.keep',
          'RUN --mount=type=secret,id=token test -s /run/secrets/token',
          'RUN --mount=type=tmpfs,target=/run/scratch test -d /run/scratch',
          'RUN --mount=type=secret,id=token echo y > /run/y',
          '',
        ].join('\n'),
      },
      ['--secret', `id=token,src=${join(dir, 'token')}`],
    );
    try {
      expect(b.code, b.stderr).toBe(0);
      // The two RUNs between changed nothing: no layer. The last one wrote /run/y: /run and y.
      expect((await b.layerEntries()).slice(1)).toEqual([['run/', 'run/.keep'], ['run/', 'run/y']]);
    } finally {
      await b.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe('RUN --mount=type=tmpfs and --network', () => {
    let b: LayoutBuild;
    beforeAll(async () => {
      b = await build({
        Dockerfile: [
          `FROM ${images.busybox}`,
          'RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/f && grep " /scratch " /proc/mounts | cut -d" " -f3 > /scratch-fs',
          'RUN --network=none grep -c : /proc/net/dev > /ifaces-none',
          'RUN --network=default grep -c : /proc/net/dev > /ifaces-default',
          '',
        ].join('\n'),
      });
    });
    afterAll(async () => b?.cleanup());

    it('mounts a tmpfs that leaves nothing in the image', async () => {
      expect(b.code).toBe(0);
      expect(await b.file('scratch-fs')).toBe('tmpfs\n');
      expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'scratch'))).toBe(false);
    });

    it('--network=none leaves only loopback', async () => {
      expect(await b.file('ifaces-none')).toBe('1\n');
      expect(Number(await b.file('ifaces-default'))).toBeGreaterThanOrEqual(1);
    });

    // Container mode keeps its state in the kaniko dir: --work-dir is sandbox mode's.
    it.skipIf(where.inImage)('leaves no per-RUN mount sources behind in the work dir', async () => {
      const work = await tempDir('kiln-work-');
      const r = await build(
        { Dockerfile: `FROM ${images.busybox}\nRUN --mount=type=tmpfs,target=/t --mount=type=bind,target=/c,rw true\n` },
        ['--work-dir', work],
      );
      await r.cleanup();
      expect(r.code).toBe(0);
      const left = existsSync(join(work, 'run-mounts')) ? await readdir(join(work, 'run-mounts')) : [];
      await rm(work, { recursive: true, force: true });
      expect(left).toEqual([]);
    });
  });
}
