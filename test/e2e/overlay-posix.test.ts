// RUN sees a plain filesystem's semantics on the overlay strategy too, and both strategies give the
// same layers: hardlinks of a lower file stay one inode when one name is written, chmod'ed, renamed
// or linked again (overlayfs copies up only the name written unless its index is on), and the image
// keeps them linked.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, writeContext } from '../support/executor.js';

describe('RUN on an overlay keeps POSIX semantics', () => {
  const images = inject('images');
  let ctx: string;
  let out: string;

  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: [
        `FROM ${images.busybox}`,
        'RUN mkdir /hl && echo data > /hl/a && ln /hl/a /hl/b && ln /hl/a /hl/d && echo x > /hl/m1 && ln /hl/m1 /hl/m2 && echo y > /hl/n1 && ln /hl/n1 /hl/n2 && echo k > /hl/k1 && ln /hl/k1 /hl/k2',
        // Written through one name, the others see it (the reported case).
        'RUN echo more >> /hl/b && test "$(cat /hl/a)" = "$(printf \'data\\nmore\')"',
        // chmod through one name; a rename, then a write through the new name; a new link, then a write.
        'RUN chmod 0600 /hl/m2 && test "$(stat -c %a /hl/m1)" = 600 && mv /hl/n2 /hl/n3 && echo z >> /hl/n3 && test "$(cat /hl/n1)" = "$(printf \'y\\nz\')" && ln /hl/d /hl/e && echo e >> /hl/e && grep -q e /hl/a && ln /hl/k2 /hl/k3 && rm /hl/k2 && echo w >> /hl/k3 && grep -q w /hl/k1',
        // What the next RUN finds: the same inodes, the same link counts.
        'RUN test "$(stat -c %i /hl/a)" = "$(stat -c %i /hl/e)" && test "$(stat -c %h /hl/a)" = 4 && test "$(stat -c %i /hl/n1)" = "$(stat -c %i /hl/n3)" && test "$(stat -c %h /hl/n1)" = 2 && test "$(stat -c %a /hl/m1)" = 600 && test "$(stat -c %i /hl/k1)" = "$(stat -c %i /hl/k3)" && cat /hl/a /hl/n1 /hl/k1 > /hl/seen',
        '',
      ].join('\n'),
    });
    out = await mkdtemp(join(tmpdir(), 'kiln-overlay-posix-'));
    await chmod(out, 0o755);
  });
  afterAll(async () => {
    await rm(ctx, { recursive: true, force: true });
    await rm(out, { recursive: true, force: true });
  });

  async function buildFile(dockerfile: string, name: string, strategy: string): Promise<{ digest: string; stderr: string }> {
    const c = await writeContext({ Dockerfile: dockerfile });
    try {
      const layout = join(out, name);
      const digestFile = join(out, `${name}.digest`);
      const r = await executor(['--context', `dir://${c}`, '--no-push', '--insecure-pull', '--reproducible', '--oci-layout-path', layout, '--digest-file', digestFile, '--work-dir', join(out, `${name}-work`), '-v', 'debug', '--snapshot-strategy', strategy]);
      if (r.code !== 0) throw new Error(`executor (${strategy}) failed (${r.code}): ${r.stderr}`);
      return { digest: (await readFile(digestFile, 'utf8')).trim(), stderr: r.stderr };
    } finally {
      await rm(c, { recursive: true, force: true });
    }
  }

  async function build(name: string, strategy: string): Promise<{ digest: string; stderr: string }> {
    const layout = join(out, name);
    const digestFile = join(out, `${name}.digest`);
    const r = await executor(['--context', `dir://${ctx}`, '--no-push', '--insecure-pull', '--reproducible', '--oci-layout-path', layout, '--digest-file', digestFile, '--work-dir', join(out, `${name}-work`), '-v', 'debug', '--snapshot-strategy', strategy]);
    if (r.code !== 0) throw new Error(`executor (${strategy}) failed (${r.code}): ${r.stderr}`);
    return { digest: (await readFile(digestFile, 'utf8')).trim(), stderr: r.stderr };
  }

  it('hardlinks written, chmod\'ed, renamed and linked again: same RUN results and layers as the walk', async () => {
    const overlay = await build('overlay', 'overlay');
    const walk = await build('walk', 'walk');
    expect(overlay.stderr).toMatch(/overlay=true/);
    expect(walk.stderr).toMatch(/overlay=false/);
    expect(overlay.digest).toBe(walk.digest);
  });

  it('lower directories renamed with rename(2) (same inodes, nested, to another parent), replaced (opaque) or emptied: same RUN results and layers as the walk', async () => {
    const dockerfile = [
      `FROM ${images.busybox}`,
      'RUN mkdir -p /mv/sub /op/old /em && echo f > /mv/sub/f && ln /mv/sub/f /mv/sub/g && mkfifo /mv/pipe && ln -s sub/f /mv/link && echo o > /op/old/o && echo e > /em/e && chmod 0750 /mv/sub && mkdir /ren && echo 1 > /ren/r1 && echo 2 > /ren/r2',
      // rename(2) of a lower directory is EXDEV without redirect_dir: mv copies it, which must give what the walk sees.
      // rename(2) of a lower directory (EXDEV without redirect_dir, where only mv's copy fallback gets by and inodes change).
      'RUN i=$(stat -c %i /mv/sub/f) && mv /mv /mv2 && test "$(stat -c %i /mv2/sub/f)" = "$i" && mv /mv2/sub /mv2/sub2 && echo h >> /mv2/sub2/f && mkdir /to && mv /ren /to/ren2 && echo r > /to/ren2/new && rm /to/ren2/r1',
      'RUN test "$(stat -c %i /mv2/sub2/f)" = "$(stat -c %i /mv2/sub2/g)" && grep -q h /mv2/sub2/g && test -p /mv2/pipe && test "$(readlink /mv2/link)" = sub/f && test ! -e /mv && test ! -e /ren && test "$(cat /to/ren2/r2 /to/ren2/new)" = "$(printf \'2\\nr\')" && test ! -e /to/ren2/r1 && test "$(stat -c %a /mv2/sub2)" = 750',
      // A lower directory replaced (opaque) and one emptied.
      'RUN rm -rf /op && mkdir -p /op/new && echo n > /op/new/n && rm /em/e && test ! -e /op/old && test -z "$(ls -A /em)"',
      '',
    ].join('\n');
    const overlay = await buildFile(dockerfile, 'dirs-overlay', 'overlay');
    const walk = await buildFile(dockerfile, 'dirs-walk', 'walk');
    expect(overlay.digest).toBe(walk.digest);
  });
});
