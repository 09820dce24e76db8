// RUN's umask is docker build's 0022 whatever the umask of the shell that started kiln (issue 12:
// "every identity setting a RUN gets"): a CI job's shell with umask 0077 or 0002 must not change the
// modes of the files a RUN creates, hence the image.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { executor, writeContext } from '../support/executor.js';
import { readLayoutBuild } from './layout-build.js';

describe('RUN umask', () => {
  const images = inject('images');
  it.each(['0077', '0002'])('is 0022 when kiln is started with umask %s', async (umask) => {
    const ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN umask > /umask && touch /file && mkdir /dir && stat -c "%a" /file /dir > /modes\n` });
    const out = await mkdtemp(join(tmpdir(), 'kiln-umask-'));
    const layout = join(out, 'layout');
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--oci-layout-path', layout], { umask });
    const b = await readLayoutBuild(r, { ctx, out, layout, ownsCtx: true });
    try {
      expect(b.code, b.stderr).toBe(0);
      expect(await b.file('umask')).toBe('0022\n');
      expect(await b.file('modes')).toBe('644\n755\n');
    } finally {
      await b.cleanup();
    }
    await rm(out, { recursive: true, force: true });
  });
});
