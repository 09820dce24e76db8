// COPY never writes through a symlink: not one the image holds under the destination, not one the
// same COPY created from an earlier source.
import { lstat, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeContext } from '../support/executor.js';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

describe('COPY and symlinks', () => {
  const images = inject('images');
  let b: LayoutBuild;
  beforeAll(async () => {
    const ctx = await writeContext({
      'two/x/passwd': 'not the image passwd\n',
      'three/kiln-copy-marker': 'landed in the image /etc\n',
      Dockerfile: [
        `FROM ${images.busybox}`,
        // one/x is a symlink to /etc: copied as a link. two/x is a directory of the same name: it
        // replaces that link instead of writing two/x/passwd into /etc.
        'COPY one/ two/ /dest/',
        'RUN ln -s /etc /planted',
        'COPY three/ /planted/',
        '',
      ].join('\n'),
    });
    await symlink('/etc', join(ctx, 'one-x-placeholder'));
    const { mkdir, rename } = await import('node:fs/promises');
    await mkdir(join(ctx, 'one'));
    await rename(join(ctx, 'one-x-placeholder'), join(ctx, 'one', 'x'));
    b = await buildToLayout({}, [], { ctx });
  });
  afterAll(async () => b?.cleanup());

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('a directory of a later source replaces a symlink an earlier source created', async () => {
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'dest/x'));
    expect(st.isDirectory()).toBe(true);
    expect(await b.file('dest/x/passwd')).toBe('not the image passwd\n');
    expect(await b.file('etc/passwd')).toContain('app:x:1000:1000');
  });

  it('a destination that is a symlink in the image is followed inside the rootfs, as docker does', async () => {
    // /planted -> /etc: the COPY lands in the image's /etc, never the host's.
    expect(await b.file('etc/kiln-copy-marker')).toBe('landed in the image /etc\n');
    await expect(readFile('/etc/kiln-copy-marker', 'utf8')).rejects.toThrow();
  });
});
