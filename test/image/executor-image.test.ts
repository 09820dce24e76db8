// kiln's executor image, built by kiln itself from Dockerfile.executor (scripts/build-executor-image.sh,
// sandbox mode on this machine): pushed, pulled by podman, written with --tar-path and loaded by podman,
// the same digest from the same sources, only what it runs inside, and a build run in it.
// The image is read with podman, skopeo, zstd and tar only, never with kiln's own code.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildExecutorImage, executorImage, type BuiltExecutorImage } from '../support/executor-image.js';
import { podmanAvailable, RUN_DEFAULTS, startPodman, type Podman } from '../support/podman.js';

const run = promisify(execFile);

/** The targets the issue sets for the executor image: bytes, as `podman images` and registries count them. */
const MAX_UNCOMPRESSED = 120_000_000;
const MAX_COMPRESSED = 40_000_000;

interface RawManifest {
  readonly config: { readonly digest: string };
  readonly layers: readonly { readonly digest: string; readonly size: number; readonly mediaType: string }[];
}

interface Entry {
  readonly type: string;
  readonly path: string;
}

/** Every entry of every layer of the image at `ref` (skopeo copies it to an OCI layout; zstd and tar read it). */
async function imageEntries(ref: string, work: string): Promise<Entry[]> {
  const layout = join(work, `layout-${Math.random().toString(36).slice(2)}`);
  await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:x`], { maxBuffer: 16 << 20 });
  const manifest = await rawManifest(ref);
  const entries: Entry[] = [];
  for (const layer of manifest.layers) {
    const blob = join(layout, 'blobs/sha256', layer.digest.replace(/^sha256:/, ''));
    const decompress = layer.mediaType.endsWith('+zstd') ? 'zstd -dc' : 'gzip -dc';
    const { stdout } = await run('sh', ['-c', `${decompress} "$1" | tar -tvf -`, 'sh', blob], { maxBuffer: 64 << 20 });
    for (const line of stdout.split('\n')) {
      if (line === '') continue;
      // tar -tv: "drwxr-xr-x 0/0 0 1970-01-01 00:00 kaniko/" (a link adds " -> target" or " link to ...").
      const fields = line.split(/\s+/);
      const path = (fields.slice(5).join(' ').split(/ -> | link to /)[0] ?? '').replace(/^\.\//, '').replace(/\/$/, '');
      entries.push({ type: line.charAt(0), path });
    }
  }
  await rm(layout, { recursive: true, force: true });
  return entries;
}

async function rawManifest(ref: string): Promise<RawManifest> {
  const { stdout } = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  return JSON.parse(stdout) as RawManifest;
}

const available = await podmanAvailable();

describe.skipIf(!available)(`the executor image, built by kiln${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 900_000 }, () => {
  const registry = inject('registry');
  const images = inject('images');
  const workDir = inject('workDir');
  let podman: Podman;
  let work: string;
  let built: BuiltExecutorImage;
  let pushedDigest: string;
  const reference = `${registry}/kiln/executor:test`;

  beforeAll(async () => {
    podman = await startPodman();
    work = await mkdtemp(join(tmpdir(), 'kiln-image-test-'));
    // The run's image (a --tar-path build), and a second build of the same sources, pushed.
    built = await executorImage(workDir, registry, 'executor');
    await buildExecutorImage(registry, 'executor', ['--destination', reference, '--digest-file', join(work, 'digest')]);
    pushedDigest = (await readFile(join(work, 'digest'), 'utf8')).trim();
  }, 900_000);

  afterAll(async () => {
    await podman?.cleanup();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('gives the same digest when built twice from the same sources (--reproducible)', () => {
    expect(pushedDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(pushedDigest).toBe(built.digest);
  });

  it('is pulled by podman from the registry and loaded by podman from --tar-path as the same image', async () => {
    await podman.ok(['pull', '-q', '--tls-verify=false', reference]);
    const pulledId = (await podman.ok(['image', 'inspect', '--format', '{{.Id}}', reference])).trim();
    const loadedId = await podman.load(built.tarPath);
    expect(loadedId).toBe(pulledId);
    const manifest = await rawManifest(reference);
    expect(manifest.config.digest).toBe(`sha256:${pulledId}`);
    const config = JSON.parse(await podman.ok(['image', 'inspect', reference])) as {
      Config: { Entrypoint?: string[]; Env?: string[]; WorkingDir?: string };
      Architecture: string;
      Os: string;
    }[];
    const c = config[0]?.Config;
    expect(c?.Entrypoint).toEqual(['/kaniko/executor']);
    expect(c?.WorkingDir).toBe('/workspace');
    expect(c?.Env).toEqual(expect.arrayContaining(['KILN_EXECUTOR_IMAGE=1', 'DOCKER_CONFIG=/kaniko/.docker', 'HOME=/root', 'SSL_CERT_DIR=/kaniko/ssl/certs']));
    expect(`${config[0]?.Os}/${config[0]?.Architecture}`).toBe('linux/amd64');
  });

  it(`is at most ${MAX_UNCOMPRESSED / 1e6} MB unpacked and ${MAX_COMPRESSED / 1e6} MB to pull`, async () => {
    const manifest = await rawManifest(reference);
    const compressed = manifest.layers.reduce((n, l) => n + l.size, 0);
    const uncompressed = Number((await podman.ok(['image', 'inspect', '--format', '{{.Size}}', reference])).trim());
    console.log(`executor image: ${(uncompressed / 1e6).toFixed(1)} MB unpacked, ${(compressed / 1e6).toFixed(1)} MB compressed (zstd)`);
    expect(uncompressed).toBeGreaterThan(50_000_000);
    expect(uncompressed).toBeLessThanOrEqual(MAX_UNCOMPRESSED);
    expect(compressed).toBeLessThanOrEqual(MAX_COMPRESSED);
    for (const l of manifest.layers) expect(l.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
  });

  it('holds only what it runs: the bundle, node and its libraries, zstd, the launcher, CA certificates', async () => {
    const entries = await imageEntries(reference, work);
    const paths = entries.map((e) => e.path);
    for (const p of [
      'kaniko/executor',
      'kaniko/warmer',
      'kaniko/bin/node',
      'kaniko/bin/zstd',
      'kaniko/libexec/zstd',
      'kaniko/lib/libstdc++.so.6',
      'kaniko/app/bin/executor.js',
      'kaniko/app/dist/bundle/kiln.cjs',
      'kaniko/app/dist/bundle/kiln.cjs.v8cache.zst',
      'kaniko/app/dist/bundle/kiln-aws.cjs.br',
      'kaniko/app/dist/bundle/kiln-gcp.cjs.br',
      'kaniko/app/dist/bundle/kiln-azure.cjs.br',
      'kaniko/app/build/Release/kiln_native.node',
      'kaniko/ssl/certs/ca-certificates.crt',
      'kaniko/.docker',
      'workspace',
    ]) {
      expect(paths, p).toContain(p);
    }
    // No dev dependencies, no TypeScript, no tsc output, no source map, nothing outside /kaniko but the context dir.
    expect(paths.filter((p) => /node_modules|\.ts$|\.map$|^kaniko\/app\/dist\/(?!bundle)/.test(p))).toEqual([]);
    expect(paths.filter((p) => !/^(kaniko|workspace)(\/|$)/.test(p))).toEqual([]);
    // The node it runs is an LTS that still gets security fixes (24.x), not the build stage's 20.
    const version = await podman.ok(['run', '--rm', '--entrypoint', '/kaniko/lib/ld-linux-x86-64.so.2', reference, '--library-path', '/kaniko/lib', '/kaniko/bin/node', '--version']);
    expect(version.trim()).toMatch(/^v24\./);
    // And kaniko's `executor version`, which says so too.
    const lines = (await podman.ok(['run', '--rm', reference, 'version'])).split('\n');
    expect(lines[0]).toMatch(/^Kaniko version : v\d+\.\d+\.\d+$/);
    expect(lines[1]).toMatch(/^kiln v\S+ \(commit [0-9a-f]{12}\) on Node\.js v24\.\d+\.\d+$/);
  });

  it('the debug image is the executor image plus busybox in /busybox, on PATH', async () => {
    const debug = await executorImage(workDir, registry, 'debug');
    const id = await podman.load(debug.tarPath);
    const execId = await podman.load(built.tarPath);
    const [exec, dbg] = await Promise.all([execId, id].map(async (r) => JSON.parse(await podman.ok(['image', 'inspect', r])) as { RootFS: { Layers: string[] }; Config: { Env: string[]; Entrypoint: string[] } }[]));
    const execLayers = exec?.[0]?.RootFS.Layers ?? [];
    const debugLayers = dbg?.[0]?.RootFS.Layers ?? [];
    expect(debugLayers.slice(0, execLayers.length)).toEqual(execLayers);
    expect(debugLayers).toHaveLength(execLayers.length + 1);
    expect(dbg?.[0]?.Config.Entrypoint).toEqual(['/kaniko/executor']);
    expect(dbg?.[0]?.Config.Env).toContain('PATH=/kaniko/bin:/usr/local/bin:/kaniko:/busybox');
    const out = await podman.ok(['run', '--rm', '--entrypoint', '/busybox/sh', id, '-c', 'ls -l /busybox/sh; which cat']);
    expect(out).toContain('/busybox/sh -> busybox');
    expect(out.trim().split('\n').at(-1)).toBe('/busybox/cat');
  });

  it('runs a build in podman from the pulled image and pushes it; the result runs', async () => {
    const context = join(work, 'context');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'Dockerfile'), [`FROM ${images.busybox}`, 'RUN echo "built in $(cat /proc/1/cgroup >/dev/null && echo a container)" > /built.txt', 'COPY note.txt /note.txt', 'CMD ["cat", "/built.txt", "/note.txt"]', ''].join('\n'));
    await writeFile(join(context, 'note.txt'), 'from the context volume\n');
    const destination = `${registry}/kiln-test/built-in-podman:1`;
    const r = await podman.exec([...RUN_DEFAULTS, '-v', `${context}:/workspace`, reference, '--dockerfile', 'Dockerfile', '--context', 'dir:///workspace', '--destination', destination]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`Pushing image to ${destination}`);
    await podman.ok(['pull', '-q', '--tls-verify=false', destination]);
    const out = await podman.ok(['run', '--rm', destination]);
    expect(out).toBe('built in a container\nfrom the context volume\n');
  });
});
