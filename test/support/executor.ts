// Runs the built executor as a user would (node bin/executor.js), and reads what it produced with
// independent tools (skopeo, umoci), never with kiln's own code.
import { createHash } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withPrivateHosts } from './public-names.js';

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const EXECUTOR = join(REPO, 'bin/executor.js');
export const WARMER = join(REPO, 'bin/warmer.js');

/** kaniko's own first words for a push check that failed (not `error building image`). */
export const PUSH_CHECK_HEADLINE = 'error checking push permissions -- make sure you entered the correct tag name, and that you are authenticated correctly, and try again';

/** The lines that say a build failed: kaniko's `error building image: `, or its push check's line. */
export function failureLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: ') || l.startsWith(`${PUSH_CHECK_HEADLINE}: `));
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the executor; DOCKER_CONFIG points at an empty dir unless the caller sets it. With `hosts`, in a
 * mount namespace of its own that sees that file as /etc/hosts (public-names.ts). `bin` runs another of
 * kiln's programs the same way (WARMER).
 */
export async function executor(args: readonly string[], opts: { env?: Record<string, string>; cwd?: string; input?: string | Buffer; umask?: string; hosts?: string; bin?: string } = {}): Promise<ExecResult> {
  const emptyConfig = await mkdtemp(join(tmpdir(), 'kiln-dockercfg-'));
  try {
    return await new Promise((resolvePromise, reject) => {
      // With `umask`, started through sh as a CI job's shell with that umask would start it.
      const bin = opts.bin ?? EXECUTOR;
      const direct = opts.umask === undefined ? [process.execPath, bin, ...args] : ['/bin/sh', '-c', `umask ${opts.umask}; exec "$0" "$@"`, process.execPath, bin, ...args];
      const argv = opts.hosts === undefined ? direct : withPrivateHosts(opts.hosts, direct);
      const child = spawn(argv[0] as string, argv.slice(1), {
        cwd: opts.cwd ?? REPO,
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', DOCKER_CONFIG: emptyConfig, ...opts.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.stdin.end(opts.input ?? '');
      child.once('error', reject);
      child.once('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    });
  } finally {
    await rm(emptyConfig, { recursive: true, force: true });
  }
}

export async function skopeoJson(args: readonly string[]): Promise<unknown> {
  const { stdout } = await run('skopeo', [...args], { maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as unknown;
}

export async function skopeoRaw(args: readonly string[]): Promise<string> {
  const { stdout } = await run('skopeo', [...args], { maxBuffer: 64 << 20 });
  return stdout;
}

/** The digest of the manifest `ref` (in a plain-http test registry) serves: sha256 of its bytes, as skopeo reads them. */
export async function manifestDigest(ref: string): Promise<string> {
  return `sha256:${createHash('sha256').update(await skopeoRaw(['inspect', '--tls-verify=false', '--raw', `docker://${ref}`])).digest('hex')}`;
}

/** Whether a tag exists in the registry (skopeo inspect succeeds). */
export async function tagExists(ref: string): Promise<boolean> {
  try {
    await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]);
    return true;
  } catch {
    return false;
  }
}

export interface UnpackedImage {
  readonly dir: string;
  readonly rootfs: string;
  /** The OCI layout skopeo copied the image into (tag `img`). */
  readonly layout: string;
  cleanup(): Promise<void>;
}

/** skopeo copy docker://REF -> OCI layout, then umoci unpack: the filesystem as another tool sees it. */
export async function unpackWithUmoci(source: string): Promise<UnpackedImage> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-unpack-'));
  const layout = join(dir, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', source, `oci:${layout}:img`]);
  await run('umoci', ['unpack', '--image', `${layout}:img`, join(dir, 'bundle')]);
  return { dir, layout, rootfs: join(dir, 'bundle', 'rootfs'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** `tar -tvzf`-style listing of a gzip layer blob in an OCI layout: `mode uid/gid path` per entry. */
export async function layerEntries(layout: string, digest: string): Promise<string[]> {
  const blob = join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const { stdout } = await run('tar', ['--numeric-owner', '-tvzf', blob], { maxBuffer: 64 << 20 });
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const f = l.split(/\s+/);
      const path = f.slice(5).join(' ');
      return `${f[0]} ${f[1]} ${path}`;
    });
}

export async function chrootRun(rootfs: string, argv: readonly string[]): Promise<string> {
  const { stdout } = await run('chroot', [rootfs, ...argv]);
  return stdout;
}

export async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

export async function writeContext(files: Record<string, string>): Promise<string> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'kiln-ctx-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}
