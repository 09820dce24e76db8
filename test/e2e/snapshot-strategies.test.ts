// The snapshot strategies through the executor: the same Dockerfile built with RUN on an overlay and
// with the walk gives the same image digest under --reproducible (built at different moments, so the
// digest depends on no clock either); --ignore-path keeps a path out of every layer.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, layerEntries, writeContext } from '../support/executor.js';

interface Index {
  manifests: Array<{ digest: string }>;
}
interface Manifest {
  layers: Array<{ digest: string }>;
}

describe('snapshot strategies end to end', () => {
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    ctx = await writeContext({
      'app.txt': 'app\n',
      Dockerfile: [
        `FROM ${images.busybox}`,
        'WORKDIR /app',
        'COPY app.txt .',
        'RUN echo one > /app/one && rm /etc/group && mkdir -p /opt/x && echo y > /opt/x/y && mkdir -p /scratch && echo s > /scratch/s',
        'USER app',
        'RUN id -u > /home/app/uid',
        '',
      ].join('\n'),
    });
    out = await mkdtemp(join(tmpdir(), 'kiln-strategies-'));
    // The work dirs live in here: `USER app`'s RUN must reach the rootfs through it.
    await chmod(out, 0o755);
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  async function build(name: string, args: readonly string[]): Promise<{ digest: string; layout: string; stderr: string }> {
    const layout = join(out, name);
    const digestFile = join(out, `${name}.digest`);
    // A work dir of the test's own: the mount check below looks for it, not for other tests' builds.
    const workDir = join(out, `${name}-work`);
    const r = await executor(['--context', `dir://${ctx}`, '--no-push', '--insecure-pull', '--reproducible', '--oci-layout-path', layout, '--digest-file', digestFile, '--work-dir', workDir, '-v', 'debug', ...args]);
    if (r.code !== 0) throw new Error(`executor failed (${r.code}): ${r.stderr}`);
    return { digest: (await readFile(digestFile, 'utf8')).trim(), layout, stderr: r.stderr };
  }

  it('overlay and walk give the same image digest', async () => {
    const overlay = await build('overlay', ['--snapshot-strategy', 'overlay']);
    const walk = await build('walk', ['--snapshot-strategy', 'walk']);
    expect(overlay.stderr).toMatch(/starting command .*uid=1000 .*overlay=true/);
    expect(walk.stderr).toMatch(/starting command .*overlay=false/);
    expect(overlay.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(overlay.digest).toBe(walk.digest);
    // No mount of these builds (overlay, rootfs tmpfs) is left on the host. Other test files' builds
    // may hold their own kiln-rootfs tmpfs at this moment: only this test's work dirs are looked for.
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(out);
  });

  it('--ignore-path leaves a path out of the layers', async () => {
    const { layout } = await build('ignored', ['--ignore-path', '/scratch']);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as Index;
    const m = JSON.parse(await readFile(join(layout, 'blobs', ...(index.manifests[0]?.digest ?? '').split(':')), 'utf8')) as Manifest;
    const all: string[] = [];
    for (const l of m.layers) all.push(...(await layerEntries(layout, l.digest)));
    const paths = all.map((e) => e.split(' ').slice(2).join(' '));
    expect(paths).toContain('opt/x/y');
    expect(paths.filter((p) => p.startsWith('scratch') || p.startsWith('./scratch'))).toEqual([]);
  });
});
