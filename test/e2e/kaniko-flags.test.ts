// kaniko flags that pipelines still pass: the deprecated camelCase names, --force-build-metadata,
// --image-fs-extract-retry and the hidden --bucket (a bucket's context.tar.gz).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, writeContext } from '../support/executor.js';

interface Index {
  manifests: Array<{ digest: string }>;
}
interface Manifest {
  layers: Array<{ digest: string }>;
  config: { digest: string };
}
interface Config {
  history: Array<{ created_by?: string; empty_layer?: boolean }>;
  rootfs: { diff_ids: string[] };
}

describe('kaniko compatibility flags', () => {
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nENV A=1\nLABEL x=y\nRUN true\nRUN echo hi > /hi\n` });
    out = await mkdtemp(join(tmpdir(), 'kiln-kflags-'));
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  const blob = async (layout: string, digest: string): Promise<Buffer> => readFile(join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
  async function image(layout: string): Promise<{ manifest: Manifest; config: Config }> {
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
    const manifest = JSON.parse((await blob(layout, index.manifests[0]?.digest ?? '')).toString()) as Manifest;
    const config = JSON.parse((await blob(layout, manifest.config.digest)).toString()) as Config;
    return { manifest, config };
  }

  it('--force-build-metadata gives every instruction a layer: an empty tar where it changed no file', async () => {
    const plain = join(out, 'plain');
    const forced = join(out, 'forced');
    for (const [layout, extra] of [[plain, []], [forced, ['--force-build-metadata=true']]] as const) {
      const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--oci-layout-path', layout, ...extra]);
      expect(r.code, r.stderr).toBe(0);
    }
    const a = await image(plain);
    const b = await image(forced);
    // ENV, LABEL and `RUN true` add three layers; `RUN echo` has one either way.
    expect(b.manifest.layers.length).toBe(a.manifest.layers.length + 3);
    const emptyTar = `sha256:${createHash('sha256').update(Buffer.alloc(1024)).digest('hex')}`;
    const added = b.config.rootfs.diff_ids.slice(-4);
    expect(added.slice(0, 3)).toEqual([emptyTar, emptyTar, emptyTar]);
    expect(added[3]).not.toBe(emptyTar);
    for (const l of b.manifest.layers.slice(-4, -1)) expect(gunzipSync(await blob(forced, l.digest))).toEqual(Buffer.alloc(1024));
    expect(b.config.history.slice(-4).map((h) => h.empty_layer === true)).toEqual([false, false, false, false]);
    expect(a.config.history.slice(-4).map((h) => h.empty_layer === true)).toEqual([true, true, true, false]);
  });

  it('the deprecated --tarPath, --snapshotMode and --customPlatform work, each with kaniko\'s warning', async () => {
    const tar = join(out, 'old.tar');
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--tarPath', tar, '--snapshotMode=time', '--customPlatform', 'linux/amd64', '--image-fs-extract-retry', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect((await stat(tar)).size).toBeGreaterThan(0);
    expect(r.stderr).toContain('Flag --tarPath is deprecated. Use: --tar-path');
    expect(r.stderr).toContain('Flag --snapshotMode is deprecated. Use: --snapshot-mode');
    expect(r.stderr).toContain('Flag --customPlatform is deprecated. Use: --custom-platform');
  });

  it('--bucket NAME is gs://NAME/context.tar.gz (here an emulator address nothing listens on); --image-fs-extract-retry must be a number', async () => {
    // STORAGE_EMULATOR_HOST keeps the SDK on loopback (no credentials, no metadata server).
    const bucket = await executor(['--bucket', 'my-bucket', '--no-push'], { env: { STORAGE_EMULATOR_HOST: 'http://127.0.0.1:9', METADATA_SERVER_DETECTION: 'none' } });
    expect(bucket.code).not.toBe(0);
    expect(bucket.stderr.trim().split('\n').pop()).toMatch(/^error building image: build context gs:\/\/my-bucket\/context\.tar\.gz: .*ECONNREFUSED/);
    const bad = await executor(['--context', ctx, '--no-push', '--image-fs-extract-retry', 'x']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/image-fs-extract-retry|imageFsExtractRetry/);
  });
});
