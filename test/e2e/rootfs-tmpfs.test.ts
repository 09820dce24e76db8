// Sandbox mode as root keeps stage filesystems on a private tmpfs (--rootfs-tmpfs): RUN sees its / on
// that tmpfs, the mount is gone after the build, a tmpfs left by a killed kiln is swept, and a full
// tmpfs fails the build with a warning that says so.
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR, executor, tagExists, unpackWithUmoci, writeContext } from '../support/executor.js';

const run = promisify(execFile);

/** `fstype source` of the mount at / as a RUN sees it (with the walk: an overlay would hide it). */
const PROBE = `RUN awk '$5 == "/" { print $(NF-2), $(NF-1) }' /proc/self/mountinfo > /rootfs-mount`;

async function mountinfo(): Promise<string> {
  return readFile('/proc/self/mountinfo', 'utf8');
}

describe('--rootfs-tmpfs', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;

  beforeAll(async () => {
    ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\n${PROBE}\n` });
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
  });

  async function probe(policy: string, tag: string): Promise<{ fstype: string; source: string }> {
    const r = await executor(['--context', ctx, '--destination', `${registry}/e2e/tmpfs:${tag}`, '--insecure', '--insecure-pull', '--rootfs-tmpfs', policy, '--snapshot-strategy', 'walk']);
    expect(r.stderr).not.toContain('error building image');
    expect(r.code).toBe(0);
    const img = await unpackWithUmoci(`docker://${registry}/e2e/tmpfs:${tag}`);
    try {
      const [fstype = '', source = ''] = (await readFile(join(img.rootfs, 'rootfs-mount'), 'utf8')).trim().split(' ');
      return { fstype, source };
    } finally {
      await img.cleanup();
    }
  }

  it('always: RUN runs on a tmpfs named after the kiln process, unmounted after the build', async () => {
    const { fstype, source } = await probe('always', 'always');
    expect(fstype).toBe('tmpfs');
    expect(source).toMatch(/^kiln-rootfs-\d+$/);
    expect(await mountinfo()).not.toContain(` ${source} `);
  });

  it('leaves what a --work-dir already holds alone, and removes its own mount point', async () => {
    const work = await mkdtemp(join(tmpdir(), 'kiln-workdir-'));
    try {
      await mkdir(join(work, 'fs'));
      await writeFile(join(work, 'fs', 'mine.txt'), 'keep\n');
      const r = await executor(['--context', ctx, '--destination', `${registry}/e2e/tmpfs:workdir`, '--insecure', '--insecure-pull', '--rootfs-tmpfs', 'always', '--work-dir', work]);
      expect(r.code).toBe(0);
      expect(await readFile(join(work, 'fs', 'mine.txt'), 'utf8')).toBe('keep\n');
      expect((await readdir(work)).filter((n) => n.startsWith('rootfs-tmpfs-'))).toEqual([]);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('never: RUN runs on the work dir\'s own filesystem', async () => {
    const { source } = await probe('never', 'never');
    expect(source).not.toMatch(/^kiln-rootfs-/);
  });

  it('unmounts a tmpfs left by a kiln process that is gone', async () => {
    // In a mount namespace of the test's own: the builds other tests run meanwhile sweep stale mounts
    // too, and must not get to this one first.
    const dead = spawnSync('true').pid;
    const point = await mkdtemp(join(tmpdir(), 'kiln-stale-'));
    const cfg = await mkdtemp(join(tmpdir(), 'kiln-dockercfg-'));
    const script = [
      'set -e',
      `mount -t tmpfs -o size=1m kiln-rootfs-${dead} ${point}`,
      `grep -c ' kiln-rootfs-${dead} ' /proc/self/mountinfo > ${cfg}/before`,
      `DOCKER_CONFIG=${cfg} ${process.execPath} ${EXECUTOR} --context ${ctx} --destination ${registry}/e2e/tmpfs:sweep --insecure --insecure-pull --rootfs-tmpfs always 2> ${cfg}/stderr || echo $? > ${cfg}/code`,
      `grep -c ' kiln-rootfs-${dead} ' /proc/self/mountinfo > ${cfg}/after || true`,
    ].join('\n');
    try {
      await run('unshare', ['--mount', '--propagation', 'private', 'bash', '-c', script], { timeout: 60_000 });
      expect((await readFile(join(cfg, 'before'), 'utf8')).trim()).toBe('1');
      expect(await readFile(join(cfg, 'code'), 'utf8').catch(() => 'none')).toBe('none');
      expect(await readFile(join(cfg, 'stderr'), 'utf8')).toContain(`left by kiln process ${dead} that is gone`);
      expect((await readFile(join(cfg, 'after'), 'utf8')).trim()).toBe('0');
    } finally {
      await rm(point, { recursive: true, force: true });
      await rm(cfg, { recursive: true, force: true });
    }
  });

  it('a RUN that fills the tmpfs fails the build, says the tmpfs is full, and pushes nothing', async () => {
    const full = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN dd if=/dev/zero of=/big bs=1M count=32\n` });
    try {
      const r = await executor(['--context', full, '--destination', `${registry}/e2e/tmpfs:full`, '--insecure', '--insecure-pull', '--rootfs-tmpfs', 'always', '--rootfs-tmpfs-size', '16']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/tmpfs holding the stage filesystems is full \(\d+ of 16 MiB\).*--rootfs-tmpfs never/);
      expect(r.stderr).toMatch(/error building image: .*Dockerfile:2/);
      expect(await tagExists(`${registry}/e2e/tmpfs:full`)).toBe(false);
    } finally {
      await rm(full, { recursive: true, force: true });
    }
  });
});
