import type { WriteStream } from 'node:fs';

/**
 * Resolves once `ws` has closed its file. `createWriteStream` opens lazily, so a pipeline that fails
 * early can reject before the open lands; removing the temp file then, and not after this, left a
 * stray file behind when the late open created it again (seen in CI on the tarball and layout sinks).
 */
export function writeStreamClosed(ws: WriteStream): Promise<void> {
  if (ws.closed) return Promise.resolve();
  return new Promise((resolve) => {
    ws.once('close', () => resolve());
    if (!ws.destroyed) ws.destroy();
  });
}
