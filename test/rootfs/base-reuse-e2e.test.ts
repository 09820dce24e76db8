// An unpacked base is reused: a second stage FROM the same image and a COPY --from=<that image> clone
// or read one pristine copy, so its layers are downloaded and unpacked once per build.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, unpackWithUmoci, writeContext } from '../support/executor.js';

describe('reusing an unpacked base image', () => {
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: [
        `FROM ${images.busybox} AS one`,
        'RUN echo one > /one',
        `FROM ${images.busybox} AS two`,
        'COPY --from=one /one /one',
        `COPY --from=${images.busybox} /etc/passwd /passwd-copy`,
        'RUN test -f /one && test -f /passwd-copy && echo two > /two',
        '',
      ].join('\n'),
    });
    out = await mkdtemp(join(tmpdir(), 'kiln-reuse-'));
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  it('the second stage and the COPY --from image do not download or unpack the base again', async () => {
    const layout = join(out, 'layout');
    const r = await executor(['--context', `dir://${ctx}`, '--no-push', '--insecure-pull', '--oci-layout-path', layout, '-v', 'debug']);
    if (r.code !== 0) throw new Error(`executor failed (${r.code}): ${r.stderr}`);
    const lines = (re: RegExp) => r.stderr.split('\n').filter((l) => re.test(l));
    // busybox is one layer: downloaded once, unpacked once, then reused by stage two and the COPY.
    expect(lines(/downloaded layer sha256:/)).toHaveLength(1);
    expect(lines(/unpacked layer sha256:/)).toHaveLength(1);
    expect(lines(/Reusing the unpacked filesystem of image sha256:/)).toHaveLength(2);

    const img = await unpackWithUmoci(`oci:${layout}`);
    try {
      expect(await readFile(join(img.rootfs, 'two'), 'utf8')).toBe('two\n');
      expect(await readFile(join(img.rootfs, 'passwd-copy'), 'utf8')).toBe(await readFile(join(img.rootfs, 'etc/passwd'), 'utf8'));
    } finally {
      await img.cleanup();
    }
  });
});
