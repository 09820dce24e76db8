// Puts an image's filesystem on disk: a fresh directory per stage in sandbox mode, or `/` itself in
// container mode (after clearing what is not on the ignore list, as kaniko does).
import { spawn } from 'node:child_process';
import { lchown, lstat, lutimes, mkdir, readdir, rename, rm, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { KilnError, RegistryError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { digestHex } from '../oci/digest.js';
import type { Image, Layer } from '../oci/image.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import { unpackLayer, type UnpackOptions, type UnpackStats } from '../rootfs/unpack.js';
import { OFF_THREAD_MIN } from '../rootfs/unpack-worker.js';

/** Applies every layer of `image`, in order, onto `root`, each verified against its diffID. */
export async function unpackImage(root: string, image: Image, ignore: IgnoreList, ctx: RunContext): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o755 });
  for (const layer of await image.layers()) {
    ctx.signal.throwIfAborted();
    const diffId = await layer.diffId();
    const what = `layer ${await layer.digest()}`;
    const offThread = (await layer.size()) >= OFF_THREAD_MIN;
    const stats = await unpackPulledLayer(root, layer, { ignore, ctx, expectedDiffId: diffId, what, offThread });
    ctx.log.debug(`unpacked ${what}: ${stats.entries} entries, ${stats.bytes} bytes`);
  }
}

/**
 * Unpacks a layer that may be pulled as it is read (a base's, a cache hit's): a registry gone by now
 * fails the open, or the stream midway, and would otherwise be reported with no word of what kiln was
 * fetching (the soak run's `unable to reach registry ...`, alone).
 */
export async function unpackPulledLayer(root: string, layer: Layer, opts: UnpackOptions & { readonly what: string }): Promise<UnpackStats> {
  const named = (err: unknown): never => {
    if (!(err instanceof RegistryError) || err.message.includes(opts.what)) throw err;
    throw err.within(`pulling ${opts.what}`);
  };
  const tar = await layer.uncompressed().catch(named);
  return unpackLayer(root, tar, opts).catch(named);
}

/** The sum of an image's compressed layer sizes, as its manifest gives them. */
export async function compressedSize(image: Image): Promise<number> {
  return (await image.manifest()).layers.reduce((n, l) => n + l.size, 0);
}

/**
 * One pristine unpacked copy of each base image's filesystem, by image digest, under `dir`: a second
 * stage FROM the same image, or a `COPY --from=<image>` of an image already used as a base, clones or
 * reads it instead of unpacking the layers again (kaniko unpacks every time). Never modified: stages
 * build on clones of it (`cp -a --reflink=auto`, a reflink where the filesystem has them).
 */
export class PristineRootfsStore {
  readonly #dir: (image: Image) => Promise<string>;
  readonly #ignore: IgnoreList;
  readonly #ctx: RunContext;
  readonly #byDigest = new Map<string, Promise<string>>();

  constructor(dir: (image: Image) => Promise<string>, ignore: IgnoreList, ctx: RunContext) {
    this.#dir = dir;
    this.#ignore = ignore;
    this.#ctx = ctx;
  }

  /** The directory holding `image`'s filesystem, unpacked on the first call for its digest. */
  async get(image: Image): Promise<string> {
    const digest = await image.digest();
    const have = this.#byDigest.get(digest);
    if (have !== undefined) {
      this.#ctx.log.info(`Reusing the unpacked filesystem of image ${digest}`);
      return have;
    }
    const unpacking = (async () => {
      const dir = join(await this.#dir(image), digestHex(digest));
      await unpackImage(dir, image, this.#ignore, this.#ctx);
      return dir;
    })();
    this.#byDigest.set(digest, unpacking);
    return unpacking;
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

/**
 * Container mode: moves the filesystem `/` holds (a stage's, just built) into `dir` instead of deleting
 * it, so that a later `COPY --from` or `RUN --mount=from=` of that stage reads it there, as kaniko reads
 * the stage's own files, instead of kiln unpacking the stage's layers into `dir` again. `dir` must lie
 * under the ignore list (kiln's work dir). A rename per top-level entry: no file is created or
 * deleted. Directories holding ignored paths (mount points: /etc/hosts, /dev) stay where they are,
 * their other entries moved into a copy of them with the same owner, mode and times.
 *
 * Returns false, with `dir` removed again, if some entry cannot be renamed (overlayfs refuses to
 * rename a directory of its lower layers with EXDEV): the caller then unpacks the layers as before.
 */
export async function moveContainerRoot(dir: string, ignore: IgnoreList, ctx: RunContext): Promise<boolean> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  try {
    await moveDir('/', '', dir, ignore);
  } catch (err) {
    ctx.log.debug(`moving the stage's filesystem to ${dir} failed (${(err as Error).message}): its layers will be unpacked there instead`);
    await rm(dir, { recursive: true, force: true });
    return false;
  }
  ctx.log.debug(`moved the stage's filesystem from / to ${dir}`);
  return true;
}

async function moveDir(root: string, rel: string, to: string, ignore: IgnoreList): Promise<void> {
  for (const ent of await readdir(join(root, rel), { withFileTypes: true })) {
    const child = rel === '' ? ent.name : `${rel}/${ent.name}`;
    if (ignore.isIgnored(child)) continue;
    if (ent.isDirectory() && ignore.hasIgnoredUnder(child)) {
      const src = join(root, child);
      const dst = join(to, child);
      // Read before its entries move out, which changes its mtime; applied after they moved in.
      const st = await lstat(src, { bigint: true });
      await mkdir(dst, { mode: 0o700 });
      await moveDir(root, child, to, ignore);
      await lchown(dst, Number(st.uid), Number(st.gid));
      await chmod(dst, Number(st.mode) & 0o7777);
      await lutimes(dst, nsToSeconds(st.atimeNs), nsToSeconds(st.mtimeNs));
      continue;
    }
    await rename(join(root, child), join(to, child));
  }
}

function nsToSeconds(ns: bigint): number {
  return Number(ns / 1_000_000n) / 1000;
}
