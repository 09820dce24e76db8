// kiln's executor image, built by kiln itself (scripts/build-executor-image.sh) for the tests that run
// it in podman. Built once per test run and target: the first test file that asks builds it into the
// run's work dir (global-setup.ts) while any other that asks meanwhile waits, then all load the same
// docker-archive tarball into their own podman storage.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BUILD_SCRIPT = join(REPO, 'scripts/build-executor-image.sh');

export type ExecutorTarget = 'executor' | 'debug';

export interface BuiltExecutorImage {
  readonly target: ExecutorTarget;
  /** docker-archive tarball (`--tar-path`), for `podman load`. */
  readonly tarPath: string;
  /** The manifest digest kiln wrote with `--digest-file`. */
  readonly digest: string;
}

/**
 * KILN_TEST_IMAGE_CACHE=DIR (for working on these tests, never in CI): keep the built images in DIR
 * across runs and build only what is missing there. Stale after any change to what the image holds:
 * empty DIR then.
 */
const DEV_CACHE = process.env['KILN_TEST_IMAGE_CACHE'];

/**
 * Flags every test build gets after the script's own: zstd level 9 instead of the release's 19, which
 * takes ~35 s more per build for ~4 MB less; 9 still keeps the image under its 40 MB target.
 */
export const TEST_BUILD_FLAGS = ['--compression-level', '9'] as const;

/** Runs the build script; its combined output is in the error when it fails. */
export async function buildExecutorImage(registry: string, target: ExecutorTarget, flags: readonly string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('bash', [BUILD_SCRIPT, '--registry', registry, '--target', target, ...TEST_BUILD_FLAGS, ...flags], {
      cwd: REPO,
      maxBuffer: 256 << 20,
      timeout: 900_000,
    });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`build-executor-image.sh --target ${target} failed: ${e.message}\n${(e.stdout ?? '') + (e.stderr ?? '')}`.slice(-20_000), { cause: err });
  }
}

const POLL_MS = 500;

/**
 * The run's executor image for `target`, built on first use. `workDir` is the run's shared work dir
 * (inject('workDir')), `registry` the shared test registry, which also gets the stand-in base image.
 */
export async function executorImage(workDir: string, registry: string, target: ExecutorTarget = 'executor'): Promise<BuiltExecutorImage> {
  const parent = DEV_CACHE !== undefined && DEV_CACHE !== '' ? DEV_CACHE : join(workDir, 'executor-image');
  const dir = join(parent, target);
  const lock = `${dir}.lock`;
  const tarPath = join(dir, 'image.tar');
  const digestFile = join(dir, 'digest');
  const failedFile = join(dir, 'failed');
  await mkdir(parent, { recursive: true });
  let mine = false;
  try {
    if (existsSync(digestFile)) throw Object.assign(new Error('built'), { code: 'EEXIST' });
    await mkdir(lock);
    mine = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  if (mine) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    try {
      await buildExecutorImage(registry, target, ['--no-push', '--tar-path', tarPath, '--digest-file', `${digestFile}.tmp`]);
      await writeFile(digestFile, await readFile(`${digestFile}.tmp`, 'utf8'));
    } catch (err) {
      await writeFile(failedFile, (err as Error).message);
      throw err;
    }
  } else {
    // Another test file is building it: wait for its digest file (the last thing it writes) or failure.
    for (;;) {
      if (existsSync(digestFile)) break;
      if (existsSync(failedFile)) throw new Error(`the executor image (${target}) failed to build in another test file:\n${await readFile(failedFile, 'utf8')}`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
  return { target, tarPath, digest: (await readFile(digestFile, 'utf8')).trim() };
}
