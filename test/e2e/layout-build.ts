// Builds a context with the real executor into an OCI layout (no push), then reads the result with
// skopeo and umoci only: the unpacked rootfs, the config, and every blob's bytes (layers gunzipped).
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { executor, skopeoJson, unpackWithUmoci, writeContext, type UnpackedImage } from '../support/executor.js';

const run = promisify(execFile);

export interface LayoutBuild {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ctx: string;
  readonly layout: string;
  /** Present when the build succeeded. */
  readonly image: UnpackedImage | undefined;
  /** Reads a file of the built image's rootfs. */
  file(path: string): Promise<string>;
  /** Whether any blob (manifest, config, uncompressed layer) holds `needle`. */
  blobsContain(needle: string): Promise<boolean>;
  /** Each layer's entry names (`tar -t`), in the manifest's order: the base's first. */
  layerEntries(): Promise<string[][]>;
  config(): Promise<ImageConfig>;
  cleanup(): Promise<void>;
}

export interface ImageConfig {
  readonly config?: { Env?: string[]; User?: string; WorkingDir?: string };
  readonly history?: { created_by?: string }[];
}

export async function buildToLayout(
  files: Record<string, string>,
  args: readonly string[] = [],
  opts: { env?: Record<string, string>; ctx?: string } = {},
): Promise<LayoutBuild> {
  const ctx = opts.ctx ?? (await writeContext(files));
  const out = await mkdtemp(join(tmpdir(), 'kiln-layout-'));
  await chmod(out, 0o755);
  const layout = join(out, 'layout');
  const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--oci-layout-path', layout, ...args], opts.env === undefined ? {} : { env: opts.env });
  return readLayoutBuild(r, { ctx, out, layout, ownsCtx: opts.ctx === undefined });
}

/** A finished build's result: `layout` (under `out`) read when it succeeded; `cleanup` removes `out` (and `ctx` if owned). */
export async function readLayoutBuild(
  r: { readonly code: number; readonly stdout: string; readonly stderr: string },
  where: { readonly ctx: string; readonly out: string; readonly layout: string; readonly ownsCtx: boolean },
): Promise<LayoutBuild> {
  const { ctx, out, layout } = where;
  const image = r.code === 0 ? await unpackWithUmoci(`oci:${layout}`) : undefined;
  return {
    ...r,
    ctx,
    layout,
    image,
    file: (p) => {
      if (image === undefined) throw new Error(`build failed (${r.code}): ${r.stderr}`);
      return readFile(join(image.rootfs, p), 'utf8');
    },
    async blobsContain(needle: string): Promise<boolean> {
      const dir = join(layout, 'blobs', 'sha256');
      for (const name of await readdir(dir)) {
        const raw = await readFile(join(dir, name));
        let bytes = raw;
        try {
          bytes = gunzipSync(raw);
        } catch {
          // not gzip: a manifest or config
        }
        if (bytes.includes(needle)) return true;
      }
      return false;
    },
    async layerEntries(): Promise<string[][]> {
      const blob = (digest: string) => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
      const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      const manifest = JSON.parse(await readFile(blob(index.manifests[0]?.digest ?? ''), 'utf8')) as { layers: { digest: string }[] };
      const lists: string[][] = [];
      for (const l of manifest.layers) lists.push((await run('tar', ['-tzf', blob(l.digest)])).stdout.split('\n').filter((n) => n !== ''));
      return lists;
    },
    async config(): Promise<ImageConfig> {
      return (await skopeoJson(['inspect', '--config', `oci:${layout}`])) as ImageConfig;
    },
    async cleanup(): Promise<void> {
      await image?.cleanup();
      await rm(out, { recursive: true, force: true });
      if (where.ownsCtx) await rm(ctx, { recursive: true, force: true });
    },
  };
}
