// kaniko's local base-image cache: `warmer` writes `<dir>/<manifest digest>` (a docker-save tarball) and
// `<dir>/<manifest digest>.json` (the manifest); the executor with `--cache-dir` reads a base image from
// there instead of downloading its layers. Proved with a private registry's access log, and with
// skopeo, tar and umoci reading what was written and built (never kiln's own code).
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdtemp, open, readdir, readFile, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chrootRun, executor, unpackWithUmoci, writeContext, type ExecResult } from '../support/executor.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';

const run = promisify(execFile);
const WARMER = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/warmer.js');
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150)); // the access log comes through a pipe

function warmer(args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [WARMER, ...args], {
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', DOCKER_CONFIG: '/nonexistent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

interface RawManifest {
  config: { digest: string };
  layers: { digest: string; size: number }[];
}

describe('base-image cache dir (warmer + executor --cache-dir)', () => {
  let reg: RunningRegistry;
  let base: string;
  let digest: string;
  let manifestBytes: string;
  let manifest: RawManifest;
  /** Filled by the first test's warmer run; copied by the others. */
  let cacheDir: string;
  const cleanups: (() => Promise<void>)[] = [];

  const tempDir = async (prefix: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  beforeAll(async () => {
    reg = await startRegistry({ accessLog: true });
    base = `${reg.host}/kiln/cached-base:1`;
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${inject('images').busybox}`, `docker://${base}`]);
    manifestBytes = (await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${base}`])).stdout;
    manifest = JSON.parse(manifestBytes) as RawManifest;
    const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${base}`])).stdout) as { Digest: string };
    digest = inspected.Digest;
    cacheDir = await tempDir('kiln-cache-dir-');
  });
  afterAll(async () => {
    for (const c of cleanups) await c();
    await reg?.stop();
  });

  /** GETs of the base's layer blobs since `mark`. */
  const baseLayerGets = (mark: number): number =>
    reg.requests().slice(mark).filter((q) => q.method === 'GET' && manifest.layers.some((l) => q.path.endsWith(l.digest))).length;

  async function build(from: string, tag: string, extra: readonly string[]): Promise<{ r: ExecResult; gets: number; requests: string[] }> {
    const ctx = await writeContext({ Dockerfile: `FROM ${from}\nRUN echo built > /hello && ls /bin/sh > /found\n` });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const mark = reg.requests().length;
    const dest = `${reg.host}/kiln/cache-dir-built:${tag}`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', ...extra]);
    await settle();
    // Counted before umoci reads the built image (which holds the base layers, from its own repository).
    const gets = baseLayerGets(mark);
    const requests = reg.requests().slice(mark).filter((q) => q.path.includes('/kiln/cached-base/')).map((q) => `${q.method} ${q.path}`);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error building image'))).toEqual([]);
    expect(r.code).toBe(0);
    const image = await unpackWithUmoci(`docker://${dest}`);
    cleanups.push(() => image.cleanup());
    expect(await readFile(join(image.rootfs, 'hello'), 'utf8')).toBe('built\n');
    expect(await chrootRun(image.rootfs, ['/bin/sh', '-c', 'cat /found'])).toBe('/bin/sh\n');
    return { r, gets, requests };
  }

  async function copyCache(): Promise<string> {
    const dir = await tempDir('kiln-cache-copy-');
    for (const name of await readdir(cacheDir)) await copyFile(join(cacheDir, name), join(dir, name));
    return dir;
  }

  it('the warmer writes <digest> as a docker-save tarball (skopeo reads it) and <digest>.json as served', async () => {
    const r = await warmer(['--cache-dir', cacheDir, '--image', base, '--insecure-pull']);
    expect(r.stderr).not.toContain('Failed');
    expect(r.code).toBe(0);
    expect((await readdir(cacheDir)).sort()).toEqual([digest, `${digest}.json`]);
    expect(await readFile(join(cacheDir, `${digest}.json`), 'utf8')).toBe(manifestBytes);
    const tarball = join(cacheDir, digest);
    const members = (await run('tar', ['-tf', tarball])).stdout.trim().split('\n').sort();
    const layerFiles = manifest.layers.map((l) => `${l.digest.replace('sha256:', '')}.tar.gz`);
    expect(members).toEqual([...layerFiles, 'manifest.json', manifest.config.digest].sort());
    const inner = JSON.parse((await run('tar', ['-xOf', tarball, 'manifest.json'])).stdout) as unknown;
    expect(inner).toEqual([{ Config: manifest.config.digest, RepoTags: [base], Layers: layerFiles }]);
    // skopeo reads `docker-archive:PATH:REF`: the colon of the digest needs a name without one.
    const link = join(await tempDir('kiln-cache-link-'), 'image.tar');
    await symlink(tarball, link);
    const viaSkopeo = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${link}`])).stdout) as { Layers: string[]; Os: string };
    expect(viaSkopeo.Os).toBe('linux');
    // skopeo names a docker-archive's layers by diffID.
    const config = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--config', `docker://${base}`])).stdout) as { rootfs: { diff_ids: string[] } };
    expect(viaSkopeo.Layers).toEqual(config.rootfs.diff_ids);
    // The layer members are the registry's compressed blobs, byte for byte.
    for (const [i, l] of manifest.layers.entries()) {
      const { stdout } = await run('sh', ['-c', 'tar -xOf "$1" "$2" | sha256sum', 'sh', tarball, layerFiles[i] ?? '']);
      expect(`sha256:${stdout.split(' ')[0] ?? ''}`).toBe(l.digest);
    }
  });

  it('a second warmer run skips the cached image; --force writes it again', async () => {
    const tarball = join(cacheDir, digest);
    const before = await stat(tarball);
    const again = await warmer(['--cache-dir', cacheDir, '--image', base, '--insecure-pull']);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('is already in the cache');
    expect((await stat(tarball)).ino).toBe(before.ino);
    const forced = await warmer(['--cache-dir', cacheDir, '--image', base, '--insecure-pull', '--force']);
    expect(forced.code).toBe(0);
    expect(forced.stderr).not.toContain('is already in the cache');
    const after = await stat(tarball);
    expect(after.ino).not.toBe(before.ino); // renamed into place: a new file
    expect(after.size).toBe(before.size);
    expect((await readdir(cacheDir)).sort()).toEqual([digest, `${digest}.json`]);
  });

  it('the warmer takes the FROM images of --dockerfile, build args expanded, stage names and scratch skipped', async () => {
    const dir = await tempDir('kiln-warm-df-');
    const ctx = await writeContext({ Dockerfile: 'ARG BASE\nFROM $BASE AS one\nFROM one\nFROM scratch\nCOPY --from=one /x /x\n' });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const r = await warmer(['--cache-dir', dir, '--dockerfile', join(ctx, 'Dockerfile'), '--build-arg', `BASE=${base}`, '--insecure-pull']);
    expect(r.stderr).not.toContain('Error while trying to warm');
    expect(r.code).toBe(0);
    expect((await readdir(dir)).sort()).toEqual([digest, `${digest}.json`]);
  });

  it('the warmer fails when no image could be warmed', async () => {
    const dir = await tempDir('kiln-warm-fail-');
    const r = await warmer(['--cache-dir', dir, '--image', `${reg.host}/kiln/missing:1`, '--insecure-pull']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Error while trying to warm image');
    expect(r.stderr).toContain('Failed warming cache: Failed to warm any of the given images');
    expect(await readdir(dir)).toEqual([]);
  });

  it('executor --cache-dir: the base layers come from the cache, not the registry, and the image is right', async () => {
    const b = await build(base, 'tag', ['--cache-dir', cacheDir]);
    expect(b.r.stderr).toContain(`Found ${digest} in local cache`);
    expect(b.gets).toBe(0);
    // The tag is still resolved at the registry (kaniko does the same): the manifest and nothing else.
    expect(b.requests.every((q) => q.includes('/manifests/'))).toBe(true);
  });

  it('executor --cache-dir with a digest reference asks the registry nothing about the base', async () => {
    const b = await build(`${reg.host}/kiln/cached-base@${digest}`, 'digest', ['--cache-dir', cacheDir]);
    expect(b.r.stderr).toContain(`Found ${digest} in local cache`);
    expect(b.requests).toEqual([]);
  });

  it('--dry-run --cache-dir takes bases from the cache dir as the build does, and says so; a digest needs no registry', async () => {
    // A digest reference at a port where nothing listens: only the cache dir can answer for it.
    const unreachable = `127.0.0.1:1/kiln/cached-base@${digest}`;
    const ctx = await writeContext({ Dockerfile: `FROM ${unreachable}\nRUN echo never > /x\nFROM ${base}\nCOPY --from=0 /x /x\n` });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const mark = reg.requests().length;
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run', '--cache-dir', cacheDir]);
    await settle();
    expect(r.code, r.stderr).toBe(0);
    const bases = r.stdout.split('\n').filter((l) => l.trimStart().startsWith('base: '));
    expect(bases).toEqual([`        base: ${digest} (linux/amd64) from cache dir`, `        base: ${digest} (linux/amd64) from cache dir`]);
    expect(r.stdout + r.stderr).not.toContain('never');
    // The tag was resolved at the registry (its manifest, as the build does); nothing else was asked.
    const asked = reg.requests().slice(mark).filter((q) => q.path.includes('/kiln/cached-base/'));
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((q) => q.path.includes('/manifests/'))).toBe(true);
    const json = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run', '--cache-dir', cacheDir, '--log-format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const plan = JSON.parse(json.stdout) as { images: { image: string; digest: string; source: string }[] };
    expect(plan.images.map((i) => [i.image, i.digest, i.source])).toEqual([
      [unreachable, digest, 'cache dir'],
      [base, digest, 'cache dir'],
    ]);
    // Without the cache dir the same dry run fails at the unreachable registry, as the build would.
    const without = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--dry-run']);
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/error building image: Dockerfile:1 FROM 127\.0\.0\.1:1\/kiln\/cached-base@sha256:[0-9a-f]{64}: base image /);
  });

  it('a corrupt cache entry is a warning, and the base is pulled from the registry', async () => {
    // Truncated tarball.
    const truncated = await copyCache();
    await truncate(join(truncated, digest), 2000);
    const t = await build(base, 'truncated', ['--cache-dir', truncated]);
    expect(t.r.stderr).toMatch(/WARN.*Error while retrieving image .* from cache: .*pulling it from its registry/);
    expect(t.r.stderr).not.toContain('in local cache');
    expect(t.gets).toBeGreaterThan(0);
    // Same size, one byte of a layer changed: caught by the layer's digest before the build uses it.
    const flipped = await copyCache();
    const members = (await run('tar', ['-tvf', join(flipped, digest)])).stdout;
    expect(members).toContain('.tar.gz');
    const fh = await open(join(flipped, digest), 'r+');
    try {
      const { size } = await fh.stat();
      // The layer is the largest member; its middle lies near the middle of the file.
      const at = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, at);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await fh.write(byte, 0, 1, at);
    } finally {
      await fh.close();
    }
    const f = await build(base, 'flipped', ['--cache-dir', flipped]);
    expect(f.r.stderr).toMatch(/WARN.*Error while retrieving image .* from cache: .*digest mismatch/);
    expect(f.gets).toBeGreaterThan(0);
    // A manifest file that does not hash to its name.
    const wrongManifest = await copyCache();
    await writeFile(join(wrongManifest, `${digest}.json`), `${manifestBytes} `);
    const w = await build(base, 'manifest', ['--cache-dir', wrongManifest]);
    expect(w.r.stderr).toContain('not to its name');
    expect(w.gets).toBeGreaterThan(0);
  });

  it('an entry that is missing, or older than --cache-ttl, is a plain miss: no warning, the base is pulled', async () => {
    const empty = await tempDir('kiln-cache-empty-');
    const m = await build(base, 'missing', ['--cache-dir', empty, '-v', 'debug']);
    expect(m.r.stderr).toContain(`No file found for cache key ${digest}`);
    expect(m.r.stderr).not.toContain('WARN');
    expect(m.gets).toBeGreaterThan(0);
    const old = await copyCache();
    const dayAgo = new Date(Date.now() - 24 * 3600 * 1000);
    await utimes(join(old, digest), dayAgo, dayAgo);
    const e = await build(base, 'expired', ['--cache-dir', old, '--cache-ttl', '1h']);
    expect(e.r.stderr).not.toContain('in local cache');
    expect(e.r.stderr).not.toContain('WARN');
    expect(e.gets).toBeGreaterThan(0);
  });

  it('without --cache-dir nothing is looked up and the base layers come from the registry', async () => {
    const b = await build(base, 'plain', []);
    expect(b.r.stderr).not.toContain('local cache');
    expect(b.r.stderr).not.toContain('from cache');
    expect(b.gets).toBeGreaterThan(0);
  });
});
