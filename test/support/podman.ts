// A real container runtime for the executor-image tests: Debian's podman with runc, as on these VMs it
// must run (crun refuses their hybrid cgroup layout; they lack CAP_SYS_RESOURCE for podman's default
// ulimits), with storage of its own in a temp dir, so that tests neither see nor leave images in the
// machine's podman. Never --privileged: the unprivileged container is what users run.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PodmanResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Podman {
  /** The storage dir; removed by `cleanup`. */
  readonly dir: string;
  /** The global options every call gets (storage, runtime, cgroup manager). */
  readonly globalArgs: readonly string[];
  /** The environment every call gets (CONTAINERS_CONF naming the no-ulimits config). */
  readonly env: NodeJS.ProcessEnv;
  /** `podman ARGS`, never throwing: the exit code, stdout and stderr. `input` goes to its stdin. */
  exec(args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<PodmanResult>;
  /** `podman ARGS`, throwing with podman's stderr when it fails; its stdout. */
  ok(args: readonly string[]): Promise<string>;
  /** `podman load -i TAR`: the loaded image's ID (the first, for a tarball of several). */
  load(tarPath: string): Promise<string>;
  /** Every container, pod and the storage removed. */
  cleanup(): Promise<void>;
}

/** Whether podman and runc are installed (scripts/install-deps.sh installs both). */
export async function podmanAvailable(): Promise<boolean> {
  try {
    await run('sh', ['-c', 'command -v podman && command -v runc']);
    return true;
  } catch {
    return false;
  }
}

export async function startPodman(): Promise<Podman> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-podman-'));
  const conf = join(dir, 'containers.conf');
  await writeFile(conf, '[containers]\ndefault_ulimits = []\n');
  const globalArgs = [
    '--root', join(dir, 'storage'),
    '--runroot', join(dir, 'run'),
    '--tmpdir', join(dir, 'tmp'),
    '--storage-driver', 'overlay',
    '--runtime', 'runc',
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf };
  const exec = (args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<PodmanResult> =>
    new Promise((resolvePromise, reject) => {
      const child = spawn('podman', [...globalArgs, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.stdin.end(opts.input ?? '');
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code: code ?? -1, stdout, stderr });
      });
    });
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await exec(args);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    dir,
    globalArgs,
    env,
    exec,
    ok,
    async load(tarPath) {
      const out = await ok(['load', '-q', '-i', tarPath]);
      // `Loaded image: sha256:ID` for an untagged image, `Loaded image: NAME` for a tagged one.
      const loaded = /Loaded image\(?s?\)?: *(\S+)/.exec(out)?.[1];
      if (loaded === undefined) throw new Error(`podman load printed no image: ${out}`);
      const id = /^sha256:([0-9a-f]{64})$/.exec(loaded)?.[1];
      if (id !== undefined) return id;
      return (await ok(['image', 'inspect', '--format', '{{.Id}}', loaded])).trim();
    },
    async cleanup() {
      await exec(['pod', 'rm', '--all', '--force']);
      await exec(['rm', '--all', '--force']);
      await exec(['rmi', '--all', '--force']);
      // What podman left mounted under its storage (its overlay driver mounts itself there).
      const mounts = (await readFile('/proc/self/mounts', 'utf8'))
        .split('\n')
        .map((l) => l.split(' ')[1] ?? '')
        .filter((m) => m.startsWith(`${dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `podman run` options for the executor as users run it here: host network (loopback registries), removed after. */
export const RUN_DEFAULTS = ['run', '--rm', '--network=host'] as const;
