// Builds the test base images with scripts/make-base-images.sh (umoci, independent of kiln) and pushes
// them to a test registry with skopeo.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BaseImages {
  /** One-layer busybox, OCI manifest: `127.0.0.1:PORT/test/busybox:latest`. */
  readonly busybox: string;
  /** The same busybox pushed as Docker schema 2 (`skopeo --format v2s2`). */
  readonly busyboxDocker: string;
  /** An OCI index with linux/amd64 and linux/arm64 entries. */
  readonly multi: string;
}

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/make-base-images.sh');

/** The tools the base images and the registry need; throws one message naming every missing one. */
export async function checkBaseImageTools(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of [
    ['docker-registry', 'docker-registry'],
    ['skopeo', 'skopeo'],
    ['umoci', 'umoci'],
    ['busybox', 'busybox-static'],
  ] as const) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(`${tool} (apt-get install ${pkg})`);
    }
  }
  if (missing.length > 0) throw new Error(`kiln tests need: ${missing.join(', ')}`);
}

/** Runs the base-image script into a fresh OCI layout directory under `parent` and returns its path. */
export async function makeBaseImageLayout(parent: string): Promise<string> {
  const layout = join(parent, 'layout');
  try {
    await run('bash', [SCRIPT, layout], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`make-base-images.sh failed: ${e.stderr ?? e.message}`, { cause: err });
  }
  return layout;
}

async function skopeoCopy(args: readonly string[]): Promise<void> {
  try {
    await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...args], { maxBuffer: 16 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`skopeo copy ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/** Builds the base images and pushes them to `registryHost` (`127.0.0.1:PORT`, plain http). */
export async function pushBaseImages(registryHost: string): Promise<BaseImages> {
  const work = await mkdtemp(join(tmpdir(), 'kiln-base-images-'));
  try {
    const layout = await makeBaseImageLayout(work);
    const images: BaseImages = {
      busybox: `${registryHost}/test/busybox:latest`,
      busyboxDocker: `${registryHost}/test/busybox-docker:latest`,
      multi: `${registryHost}/test/multi:latest`,
    };
    await skopeoCopy([`oci:${layout}:busybox`, `docker://${images.busybox}`]);
    await skopeoCopy(['--format', 'v2s2', `oci:${layout}:busybox`, `docker://${images.busyboxDocker}`]);
    await skopeoCopy(['--all', `oci:${layout}:multi`, `docker://${images.multi}`]);
    return images;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
