// Container mode for real: the executor image's tree (scripts/make-executor-root.sh, the same script
// Dockerfile.executor's final stage comes from) becomes `/` of a chroot in private mount and PID
// namespaces, with the image's ENV, and kiln builds there as it would in its container: it empties `/`
// but for its ignore list, unpacks the base onto `/`, runs RUN as plain children and snapshots `/`.
// What was pushed is read with skopeo, umoci and tar only, never with kiln's own code.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { chrootRun, manifestDigest, unpackWithUmoci } from './support/executor.js';

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAKE_ROOT = join(REPO, 'scripts/make-executor-root.sh');

/** Whether this machine lets us make mount and PID namespaces (root, unshare from util-linux). */
function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--mount', '--pid', '--fork', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The ENV of Dockerfile.executor's `executor` stage, so the test runs kiln with exactly the image's. */
async function executorImageEnv(): Promise<string[]> {
  const text = await readFile(join(REPO, 'Dockerfile.executor'), 'utf8');
  const start = text.indexOf('\nFROM scratch AS executor\n');
  if (start < 0) throw new Error('Dockerfile.executor has no `FROM scratch AS executor` stage');
  const end = text.indexOf('\nFROM ', start + 1);
  const stage = text.slice(start, end < 0 ? undefined : end);
  return stage
    .split('\n')
    .filter((l) => l.startsWith('ENV '))
    .flatMap((l) => l.slice(4).trim().split(/\s+/));
}

// The device nodes node and RUN need, on a tmpfs private to the namespace: never the host's /dev, so
// a bug in clearing `/` could not reach a host device node.
const DEV_NODES = [
  ['null', '1', '3'],
  ['zero', '1', '5'],
  ['full', '1', '7'],
  ['random', '1', '8'],
  ['urandom', '1', '9'],
  ['tty', '5', '0'],
] as const;

// A volume, as `docker run -v` would mount one: kiln must find it in mountinfo and leave it alone.
const VOLUME_MOUNT_POINT = 'mnt/volume';

// The tree becomes `/` with pivot_root, as a runtime does it, not with chroot: a chrooted process may
// not create a user namespace, so RUN isolation (kiln-isolate) would always fall back there. The host's
// static busybox, copied to the namespace's /dev/.ns, unmounts the old root and starts kiln with `env -i`.
const NAMESPACE_SETUP = [
  'set -eu',
  'root=$1; volume=$2; shift 2',
  // pivot_root needs the new root to be a mount point; --rbind keeps the /proc unshare mounted there.
  'mount --rbind "$root" "$root"',
  'mount -t tmpfs -o mode=0755,nosuid kiln-dev "$root/dev"',
  `mount --bind "$volume" "$root/${VOLUME_MOUNT_POINT}"`,
  ...DEV_NODES.map(([name, major, minor]) => `mknod -m 0666 "$root/dev/${name}" c ${major} ${minor}`),
  // busybox picks the applet by the name it was run as: it must be called busybox.
  'mkdir "$root/dev/.ns" && cp "$(command -v busybox)" "$root/dev/.ns/busybox"',
  'mkdir "$root/dev/.old-root"',
  'cd "$root"',
  'pivot_root . dev/.old-root',
  `exec /dev/.ns/busybox sh -c 'umount -l /dev/.old-root && rmdir /dev/.old-root && exec /dev/.ns/busybox env -i "$@"' kiln-root "$@"`,
].join('\n');

interface Exit {
  readonly code: number | null;
  readonly output: string;
}

/** The executor image's tree in a temp dir, with the mount points the namespace needs, and a volume. */
async function executorRoot(): Promise<{ root: string; volume: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'kiln-executor-root-'));
  const volume = await mkdtemp(join(tmpdir(), 'kiln-executor-volume-'));
  await run('bash', [MAKE_ROOT, root], { maxBuffer: 16 << 20 });
  for (const dir of ['proc', 'dev', 'sys', 'etc', VOLUME_MOUNT_POINT]) await mkdir(join(root, dir), { recursive: true });
  // The namespace's mounts (proc, dev, the volume) die with it: only plain files are left to remove.
  const cleanup = async (): Promise<void> => {
    await rm(root, { recursive: true, force: true });
    await rm(volume, { recursive: true, force: true });
  };
  return { root, volume, cleanup };
}

/** `unshare --mount --pid --fork --mount-proc=ROOT/proc`, pivot_root into ROOT, `/kaniko/executor ARGS`, as a runtime would. */
async function runExecutorInRoot(root: string, volume: string, args: readonly string[], program = '/kaniko/executor', extraEnv: readonly string[] = []): Promise<Exit> {
  // Nothing but the image's ENV: no HOME either, as under runtimes that set none (kiln must cope).
  const imageEnv = [...(await executorImageEnv()), ...extraEnv];
  const argv = [
    '--mount', '--pid', '--fork', `--mount-proc=${join(root, 'proc')}`,
    'sh', '-c', NAMESPACE_SETUP, 'kiln-ns', root, volume,
    ...imageEnv, program, ...args,
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn('unshare', argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' } });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolvePromise({ code, output }));
  });
}

async function layerNames(layout: string, digest: string): Promise<string[]> {
  const blob = join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const { stdout } = await run('tar', ['-tzf', blob], { maxBuffer: 64 << 20 });
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.replace(/^\.\//, '').replace(/\/$/, ''))
    .filter((l) => l !== '' && l !== '.');
}

async function manifestLayers(layout: string): Promise<string[]> {
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest;
  if (manifestDigest === undefined) throw new Error('skopeo wrote an empty index.json');
  const manifest = JSON.parse(await readFile(blob(manifestDigest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => l.digest);
}

/** Anything of the executor image, or of the namespace we made, that must never reach the image. */
const EXECUTOR_PATH = /^(kaniko|proc|dev|sys|workspace|mnt)(\/|$)|(^|\/)node$|ld-linux|libstdc\+\+|libc\.so|executor\.js$/;

const unshareReason = 'skipped: mount and PID namespaces (unshare --mount --pid --fork) are unavailable here';

describe('container mode in the executor image layout', () => {
  const registry = inject('registry');
  const images = inject('images');
  const available = canUnshare();

  // Both ways a RUN can run in the image: isolated by kiln-isolate (auto, which works here: the tree is
  // `/` of its mount namespace) and on kiln's own `/` (off): the same layers either way.
  it.skipIf(!available).each(['auto', 'off'] as const)(`builds and pushes from / of the tree without touching /kaniko or putting any of it in a layer (--run-isolation=%s)${available ? '' : ` (${unshareReason})`}`, async (isolation) => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      await writeFile(join(volume, 'keep.txt'), 'volume data\n');
      const context = join(root, 'workspace');
      await writeFile(join(context, 'file.txt'), 'from the context\n');
      await writeFile(
        join(context, 'Dockerfile'),
        [
          `FROM ${images.busybox}`,
          'RUN echo built > /built.txt && rm /etc/group',
          'COPY file.txt /app/',
          'CMD ["cat","/built.txt"]',
          '',
        ].join('\n'),
      );
      const destination = `${registry}/ctr/hello-${isolation}:1`;

      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure', `--run-isolation=${isolation}`]);
      expect(exit.code, exit.output).toBe(0);
      expect(exit.output).not.toMatch(/RUN isolation is not available/);

      // Container mode built in `/` of the chroot and left kiln's own directory and the context alone.
      expect(existsSync(join(root, 'kaniko/executor'))).toBe(true);
      expect(existsSync(join(root, 'kaniko/warmer'))).toBe(true);
      expect(existsSync(join(root, 'kaniko/bin/node'))).toBe(true);
      expect(existsSync(join(root, 'kaniko/app/dist/bundle/kiln.cjs'))).toBe(true);
      expect(await readFile(join(root, 'workspace/file.txt'), 'utf8')).toBe('from the context\n');
      expect(await readFile(join(volume, 'keep.txt'), 'utf8')).toBe('volume data\n');
      expect(await readFile(join(root, 'built.txt'), 'utf8')).toBe('built\n');
      expect(existsSync(join(root, 'etc/group'))).toBe(false);

      const base = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${images.busybox}`])).stdout) as { Layers: string[] };
      const built = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${destination}`])).stdout) as { Layers: string[] };
      expect(built.Layers).toHaveLength(base.Layers.length + 2);
      expect(built.Layers.slice(0, base.Layers.length)).toEqual(base.Layers);

      const unpacked = await unpackWithUmoci(`docker://${destination}`);
      try {
        const layers = await manifestLayers(unpacked.layout);
        expect(layers).toEqual(built.Layers);
        const [runLayer, copyLayer] = await Promise.all(layers.slice(base.Layers.length).map((d) => layerNames(unpacked.layout, d)));
        for (const name of [...(runLayer ?? []), ...(copyLayer ?? [])]) expect(name).not.toMatch(EXECUTOR_PATH);
        // Exactly the RUN's and the COPY's changes: nothing else of `/` leaked into either layer.
        expect([...(runLayer ?? [])].sort()).toEqual(['built.txt', 'etc', 'etc/.wh.group']);
        expect([...(copyLayer ?? [])].sort()).toEqual(['app', 'app/file.txt']);

        const rootfs = unpacked.rootfs;
        expect(await readFile(join(rootfs, 'built.txt'), 'utf8')).toBe('built\n');
        expect(existsSync(join(rootfs, 'etc/group'))).toBe(false);
        expect(existsSync(join(rootfs, 'etc/passwd'))).toBe(true);
        expect(await readFile(join(rootfs, 'app/file.txt'), 'utf8')).toBe('from the context\n');
        expect(existsSync(join(rootfs, 'kaniko'))).toBe(false);

        const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${destination}`])).stdout) as {
          config: { Cmd?: string[] };
        };
        expect(config.config.Cmd).toEqual(['cat', '/built.txt']);
        expect(await chrootRun(rootfs, config.config.Cmd ?? [])).toBe('built\n');
      } finally {
        await unpacked.cleanup();
      }
    } finally {
      await cleanup();
    }
  });

  // Issue 12's family check: every identity setting a RUN gets, isolated (kiln-isolate's namespaces)
  // and not (`--plain`: node's spawn would drop the groups), as docker build gives them: uid and gid
  // (Dockerfile reference 'USER'), the /etc/group groups (BuildKit GetUser, root's too), HOME from
  // passwd, umask 0022 whatever kiln was started with (here 0077).
  it.skipIf(!available).each(['auto', 'off'] as const)(`gives RUN docker's uid, gid, groups, HOME and umask (--run-isolation=%s)${available ? '' : ` (${unshareReason})`}`, async (isolation) => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      // A runtime's rootfs is 0755 (mkdtemp made this one 0700): a non-root USER must reach /bin/sh.
      await chmod(root, 0o755);
      const script = 'id > $1.id && echo "$HOME" > $1.home && umask > $1.umask && touch $1.file && stat -c %a $1.file > $1.mode';
      await writeFile(
        join(root, 'workspace/Dockerfile'),
        [
          `FROM ${images.busybox}`,
          "RUN echo 'extra:x:2000:app' >> /etc/group && echo 'staff:x:50:root' >> /etc/group && mkdir /out && chmod 1777 /out",
          'USER app',
          `RUN set -- /out/app && ${script}`,
          'USER root',
          `RUN set -- /out/root && ${script}`,
          '',
        ].join('\n'),
      );
      const executorArgs = ['--context', 'dir:///workspace', '--no-push', `--run-isolation=${isolation}`];
      const exit = await runExecutorInRoot(root, volume, ['sh', '-c', 'umask 0077 && exec /kaniko/executor "$@"', 'sh', ...executorArgs], '/dev/.ns/busybox');
      expect(exit.code, exit.output).toBe(0);
      const out = (name: string): Promise<string> => readFile(join(root, 'out', name), 'utf8');
      expect(await out('app.id')).toBe('uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n');
      expect(await out('app.home')).toBe('/home/app\n');
      expect(await out('root.id')).toBe('uid=0(root) gid=0(root) groups=0(root),50(staff)\n');
      expect(await out('root.home')).toBe('/root\n');
      for (const who of ['app', 'root']) {
        expect(await out(`${who}.umask`)).toBe('0022\n');
        expect(await out(`${who}.mode`)).toBe('644\n');
      }
    } finally {
      await cleanup();
    }
  });

  it.skipIf(!available)(`writes zstd layers with the image's own zstd (/kaniko/bin/zstd: the chroot has no other)${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    const layout = await mkdtemp(join(tmpdir(), 'kiln-executor-zstd-'));
    try {
      await writeFile(join(root, 'workspace/Dockerfile'), [`FROM ${images.busybox}`, 'RUN echo squeezed > /z.txt', ''].join('\n'));
      const destination = `${registry}/ctr/zstd:1`;
      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure', '--compression', 'zstd']);
      expect(exit.code, exit.output).toBe(0);
      const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${destination}`])).stdout) as {
        layers: { mediaType: string; digest: string }[];
      };
      const added = manifest.layers.at(-1);
      expect(added?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${destination}`, `oci:${layout}:img`]);
      const blob = join(layout, 'blobs/sha256', (added?.digest ?? '').replace(/^sha256:/, ''));
      const { stdout } = await run('sh', ['-c', 'zstd -dc "$1" | tar -xOf - z.txt', 'sh', blob]);
      expect(stdout).toBe('squeezed\n');
    } finally {
      await cleanup();
      await rm(layout, { recursive: true, force: true });
    }
  });
  it.skipIf(!available)(`unpacks a tar:// context into /kaniko/buildcontext, which survives the emptied / and stays out of every layer${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    const src = await mkdtemp(join(tmpdir(), 'kiln-executor-tarctx-'));
    try {
      await writeFile(join(src, 'msg'), 'from the tar\n');
      await writeFile(join(src, 'Dockerfile'), [`FROM ${images.busybox}`, 'COPY msg /msg', 'RUN cat /msg > /from-run', ''].join('\n'));
      await run('tar', ['-czf', join(root, 'workspace/ctx.tar.gz'), '-C', src, '.']);
      const destination = `${registry}/ctr/tarctx:1`;
      const exit = await runExecutorInRoot(root, volume, ['--context', 'tar:///workspace/ctx.tar.gz', '--destination', destination, '--insecure']);
      expect(exit.code, exit.output).toBe(0);
      const unpacked = await unpackWithUmoci(`docker://${destination}`);
      try {
        expect(await readFile(join(unpacked.rootfs, 'from-run'), 'utf8')).toBe('from the tar\n');
        for (const layer of await manifestLayers(unpacked.layout)) {
          for (const name of await layerNames(unpacked.layout, layer)) expect(name).not.toMatch(EXECUTOR_PATH);
        }
      } finally {
        await unpacked.cleanup();
      }
      // kiln's own directory: the fetched context is gone after the build.
      expect(existsSync(join(root, 'kaniko/buildcontext'))).toBe(false);
    } finally {
      await cleanup();
      await rm(src, { recursive: true, force: true });
    }
  });
  it.skipIf(!available)(`keeps its state in $KANIKO_DIR when set (as kaniko's --kaniko-dir), and leaves that dir out of / clearing and of every layer${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      await writeFile(join(root, 'workspace/Dockerfile'), [`FROM ${images.busybox}`, 'RUN echo x > /x.txt', ''].join('\n'));
      // What a user keeps in the kaniko dir (kaniko's DOCKER_CONFIG lives there) must survive the build.
      await mkdir(join(root, 'var/kiln-state/.docker'), { recursive: true });
      await writeFile(join(root, 'var/kiln-state/.docker/config.json'), '{"auths":{}}\n');
      const destination = `${registry}/ctr/kanikodir:1`;
      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure'], '/kaniko/executor', ['KANIKO_DIR=/var/kiln-state']);
      expect(exit.code, exit.output).toBe(0);
      // The build's layer files were written there, and clearing / for the base did not remove them.
      const layerFiles = await readdir(join(root, 'var/kiln-state/layers'));
      expect(layerFiles.length).toBeGreaterThan(0);
      expect(await readFile(join(root, 'var/kiln-state/.docker/config.json'), 'utf8')).toBe('{"auths":{}}\n');
      const unpacked = await unpackWithUmoci(`docker://${destination}`);
      try {
        for (const layer of await manifestLayers(unpacked.layout)) {
          for (const name of await layerNames(unpacked.layout, layer)) expect(name).not.toMatch(/^var\/kiln-state(\/|$)/);
        }
        expect(await readFile(join(unpacked.rootfs, 'x.txt'), 'utf8')).toBe('x\n');
      } finally {
        await unpacked.cleanup();
      }
    } finally {
      await cleanup();
    }
  });
  it.skipIf(!available)(`defers the base of a COPY-only stage: / is neither emptied nor unpacked, the layer holds only the copied file${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      await writeFile(join(root, 'etc/untouched'), 'the container\'s own\n');
      await writeFile(join(root, 'workspace/file.txt'), 'copied\n');
      await writeFile(join(root, 'workspace/Dockerfile'), [`FROM ${images.busybox}`, 'COPY file.txt /app/', ''].join('\n'));
      const destination = `${registry}/ctr/deferred:1`;
      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure']);
      expect(exit.code, exit.output).toBe(0);
      expect(exit.output).not.toContain('Unpacking rootfs');
      expect(exit.output).toContain('Skipping unpacking as no commands require it.');
      // `/` was never emptied for the base: the container's own file is still there, no busybox.
      expect(await readFile(join(root, 'etc/untouched'), 'utf8')).toBe("the container's own\n");
      expect(existsSync(join(root, 'bin/busybox'))).toBe(false);
      const unpacked = await unpackWithUmoci(`docker://${destination}`);
      try {
        const layers = await manifestLayers(unpacked.layout);
        expect(await layerNames(unpacked.layout, layers.at(-1) ?? '')).toEqual(['app/file.txt']);
        expect(await readFile(join(unpacked.rootfs, 'app/file.txt'), 'utf8')).toBe('copied\n');
        expect(existsSync(join(unpacked.rootfs, 'bin/busybox'))).toBe(true);
      } finally {
        await unpacked.cleanup();
      }
    } finally {
      await cleanup();
    }
  });
  it.skipIf(!available)(`gives COPY --from the previous stage's own files, moved aside from /, not its layers unpacked again: the same image${available ? '' : ` (${unshareReason})`}`, async () => {
    const dockerfile = [
      `FROM ${images.busybox} AS build`,
      // /mnt holds the volume's mount point: its other entries are moved, the mount stays.
      'RUN mkdir -p /out/sub && echo artifact > /out/sub/a.txt && chmod 0750 /out && echo beside > /mnt/beside.txt',
      `FROM ${images.busybox}`,
      'COPY --from=build /out /out',
      'COPY --from=build /mnt/beside.txt /beside.txt',
      'RUN cat /out/sub/a.txt /beside.txt > /both.txt',
      '',
    ].join('\n');
    const build = async (tag: string, extra: readonly string[]): Promise<{ output: string; digest: string }> => {
      const { root, volume, cleanup } = await executorRoot();
      try {
        await writeFile(join(volume, 'keep.txt'), 'volume data\n');
        await writeFile(join(root, 'workspace/Dockerfile'), dockerfile);
        const destination = `${registry}/ctr/from-stage:${tag}`;
        const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure', '--reproducible', '-v', 'debug', ...extra]);
        expect(exit.code, exit.output).toBe(0);
        expect(await readFile(join(volume, 'keep.txt'), 'utf8')).toBe('volume data\n');
        return { output: exit.output, digest: await manifestDigest(destination) };
      } finally {
        await cleanup();
      }
    };
    const moved = await build('moved', []);
    expect(moved.output).toContain("moved the stage's filesystem from / to /kaniko/from/stage-0");
    // --snapshot-mode=time turns the move off (its layers may miss a change the files have): unpacked.
    const unpacked = await build('unpacked', ['--snapshot-mode', 'time']);
    expect(unpacked.output).not.toContain("moved the stage's filesystem");
    expect(moved.digest).toBe(unpacked.digest);
    const image = await unpackWithUmoci(`docker://${registry}/ctr/from-stage:moved`);
    try {
      expect(await readFile(join(image.rootfs, 'both.txt'), 'utf8')).toBe('artifact\nbeside\n');
      for (const layer of await manifestLayers(image.layout)) {
        for (const name of await layerNames(image.layout, layer)) expect(name).not.toMatch(EXECUTOR_PATH);
      }
    } finally {
      await image.cleanup();
    }
  });
  // Issue 13 in container mode: `/` is one tree, held by one stage at a time, while a stage that needs
  // none of it (a deferred base: COPY into a delta root) runs beside. The slow stage's RUN (on kiln's
  // own `/`: --run-isolation=off, so /kaniko is visible) waits for the COPY stage's delta root to hold
  // its file and says so in the volume, which no layer holds; with --jobs 1 it never sees it. The other
  // RUN stage would empty `/` under the slow one if both held it: the slow RUN checks that its file
  // survives and that the other's never appears. The image is the same with --jobs 1.
  it.skipIf(!available)(`builds a deferred stage beside the stage that holds /, one stage on / at a time, the same image as --jobs 1${available ? '' : ` (${unshareReason})`}`, async () => {
    const seen = 'find /kaniko -path "*/delta/data/file.txt" | grep -q .';
    const dockerfile = [
      `FROM ${images.busybox} AS slow`,
      `RUN echo a > /a.txt && for i in $(seq 50); do if ${seen}; then echo overlapped > /mnt/volume/evidence; break; fi; sleep 0.1; done && sleep 0.3 && test -f /a.txt && test ! -e /b.txt`,
      `FROM ${images.busybox} AS copy`,
      'COPY file.txt /data/',
      `FROM ${images.busybox} AS other`,
      'RUN test ! -e /a.txt && echo b > /b.txt',
      `FROM ${images.busybox}`,
      'COPY --from=slow /a.txt /',
      'COPY --from=copy /data /data',
      'COPY --from=other /b.txt /',
      '',
    ].join('\n');
    const build = async (jobs: string): Promise<{ output: string; digest: string; evidence: boolean }> => {
      const { root, volume, cleanup } = await executorRoot();
      try {
        await writeFile(join(root, 'workspace/Dockerfile'), dockerfile);
        await writeFile(join(root, 'workspace/file.txt'), 'copied\n');
        const destination = `${registry}/ctr/parallel:jobs-${jobs}`;
        const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure', '--reproducible', '--run-isolation=off', '--jobs', jobs]);
        expect(exit.code, exit.output).toBe(0);
        return { output: exit.output, digest: await manifestDigest(destination), evidence: existsSync(join(volume, 'evidence')) };
      } finally {
        await cleanup();
      }
    };
    const parallel = await build('2');
    expect(parallel.evidence, parallel.output).toBe(true);
    // Each stage's lines name it, as in sandbox mode.
    expect(parallel.output).toContain('[copy] ');
    expect(parallel.output).toContain('[slow] ');
    const sequential = await build('1');
    expect(sequential.evidence).toBe(false);
    expect(parallel.digest).toBe(sequential.digest);
    const image = await unpackWithUmoci(`docker://${registry}/ctr/parallel:jobs-2`);
    try {
      expect(await readFile(join(image.rootfs, 'a.txt'), 'utf8')).toBe('a\n');
      expect(await readFile(join(image.rootfs, 'b.txt'), 'utf8')).toBe('b\n');
      expect(await readFile(join(image.rootfs, 'data/file.txt'), 'utf8')).toBe('copied\n');
    } finally {
      await image.cleanup();
    }
  });
  it.skipIf(!available)(`stops a stage waiting for / when the stage on / fails: / is left as the failed RUN left it${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      const dockerfile = [
        `FROM ${images.busybox} AS first`,
        'RUN touch /first-was-here && sleep 0.5 && exit 3',
        `FROM ${images.busybox} AS second`,
        'RUN touch /mnt/volume/second-ran',
        `FROM ${images.busybox}`,
        'COPY --from=first /first-was-here /',
        'COPY --from=second /bin/busybox /copy',
        '',
      ].join('\n');
      await writeFile(join(root, 'workspace/Dockerfile'), dockerfile);
      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--no-push', '--run-isolation=off', '--jobs', '2']);
      expect(exit.code, exit.output).toBe(3);
      expect(exit.output).toMatch(/error building image: stage first: Dockerfile:2 RUN/);
      // The second stage waited for `/` with its --jobs slot, and never cleared it nor ran.
      expect(existsSync(join(root, 'first-was-here')), exit.output).toBe(true);
      expect(existsSync(join(volume, 'second-ran'))).toBe(false);
    } finally {
      await cleanup();
    }
  });
  it.skipIf(!available)(`/kaniko/warmer fills a cache volume that /kaniko/executor --cache-dir builds from, the volume left alone${available ? '' : ` (${unshareReason})`}`, async () => {
    const { root, volume, cleanup } = await executorRoot();
    try {
      const cacheDir = `/${VOLUME_MOUNT_POINT}/cache`;
      const warm = await runExecutorInRoot(root, volume, ['--cache-dir', cacheDir, '--image', images.busybox, '--insecure-pull'], '/kaniko/warmer');
      expect(warm.code, warm.output).toBe(0);
      const entries = (await readdir(join(volume, 'cache'))).sort();
      expect(entries).toHaveLength(2);
      await writeFile(join(root, 'workspace/Dockerfile'), [`FROM ${images.busybox}`, 'RUN echo cached > /from-run', ''].join('\n'));
      const destination = `${registry}/ctr/cache-dir:1`;
      const exit = await runExecutorInRoot(root, volume, ['--context', 'dir:///workspace', '--destination', destination, '--insecure', '--cache-dir', cacheDir]);
      expect(exit.code, exit.output).toBe(0);
      expect(exit.output).toContain(`Found ${entries[0] ?? ''} in local cache`);
      expect((await readdir(join(volume, 'cache'))).sort()).toEqual(entries);
      expect(await readFile(join(root, 'from-run'), 'utf8')).toBe('cached\n');
    } finally {
      await cleanup();
    }
  });
});
