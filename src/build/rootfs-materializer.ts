// Puts an image's filesystem on disk: a fresh directory per stage in sandbox mode, or `/` itself in
// container mode (after clearing what is not on the ignore list, as kaniko does).
import { spawn } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { Image } from '../oci/image.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { unpackLayer } from '../rootfs/unpack.js';

/** Applies every layer of `image`, in order, onto `root`, each verified against its diffID. */
export async function unpackImage(root: string, image: Image, ignore: IgnoreList, ctx: RunContext): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o755 });
  for (const layer of await image.layers()) {
    ctx.signal.throwIfAborted();
    const diffId = await layer.diffId();
    await unpackLayer(root, await layer.uncompressed(), { ignore, ctx, expectedDiffId: diffId, what: `layer ${await layer.digest()}` });
  }
}

/** Copies a stage's rootfs for a stage built FROM it: cheaper than unpacking its layers again. */
export async function cloneRootfs(src: string, dst: string, ctx: RunContext): Promise<void> {
  await mkdir(dst, { recursive: true, mode: 0o755 });
  await new Promise<void>((resolve, reject) => {
    const child = spawn('cp', ['-a', '--reflink=auto', `${src}/.`, dst], { stdio: ['ignore', 'ignore', 'pipe'], signal: ctx.signal });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new KilnError('INTERNAL', `copying rootfs: ${err.trim()}`))));
  });
}

/**
 * Container mode: empties `/` of everything but the ignore list (kiln's own dir, kernel filesystems,
 * mounted files), so the base image is unpacked onto a clean root. Never called in sandbox mode.
 */
export async function clearContainerRoot(ignore: IgnoreList, ctx: RunContext): Promise<void> {
  await clearDir('/', '', ignore);
  ctx.log.debug('cleared the container filesystem for the base image');
}

async function clearDir(root: string, rel: string, ignore: IgnoreList): Promise<void> {
  for (const ent of await readdir(join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ignore.isIgnored(child)) continue;
    if (ent.isDirectory() && ignore.hasIgnoredUnder(child)) {
      await clearDir(root, child, ignore);
      continue;
    }
    await rm(join(root, child), { recursive: true, force: true });
  }
}
