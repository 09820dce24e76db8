// Base-image layers downloaded ahead, several at a time, into files under the build's work dir.
//
// A remote layer streams from the registry each time it is opened, one layer after the other. When a
// build unpacks a base image that means one TCP stream at a time, with the unpack waiting on the
// network and the network on the unpack. A spooling image starts, on the first open of any layer, the
// download of that layer and every later one (`concurrency` at a time, in order) into files, each
// verified against its digest and size while it is written; an open then waits only for its own file.
// Nothing is fetched before a layer is opened, so a stage that needs no rootfs still downloads nothing,
// and a push to the registry the image came from still mounts blobs without reading them.
// Trade-off: opening one layer fetches the later ones too (a push to another registry that has some
// of them already downloads them for nothing; it never uploads them).
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { KilnError, RegistryError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { digestHex, type Digest } from '../oci/digest.js';
import { once, type Image, type Layer } from '../oci/image.js';
import { uncompressedOpener } from './registry-source.js';

export interface SpoolOptions {
  /** Where the compressed blobs are kept (named by digest; shared by every image of the build). */
  readonly dir: string;
  /** Downloads at once (default 4: one stream per layer is what limits a pull, not the link). */
  readonly concurrency?: number;
  /**
   * Extra attempts for a download that broke off mid-stream (`--image-download-retry`); the
   * transport already retries each request, this covers the whole body.
   */
  readonly retries?: number;
  readonly ctx: RunContext;
}

/** `image` with layers read from spooled files; manifest and config are the image's own. */
export function spoolingImage(image: Image, opts: SpoolOptions): Image {
  const layers = once(async (): Promise<readonly Layer[]> => {
    const remote = await image.layers();
    const spool = new Spool(remote, opts);
    return Promise.all(remote.map(async (l, i) => spooledLayer(l, i, spool, await l.mediaType(), await l.diffId(), await l.digest())));
  });
  return {
    mediaType: () => image.mediaType(),
    rawManifest: () => image.rawManifest(),
    manifest: () => image.manifest(),
    digest: () => image.digest(),
    rawConfig: () => image.rawConfig(),
    configFile: () => image.configFile(),
    configName: () => image.configName(),
    layers,
  };
}

/** Downloads every layer of a spooling image (e.g. before timing-sensitive work); resolves when all are on disk. */
export async function prefetchLayers(image: Image): Promise<void> {
  const layers = await image.layers();
  // Opening a layer waits for its file; the streams themselves are not read.
  await Promise.all(layers.map(async (l) => (await l.compressed()).destroy()));
}

function spooledLayer(remote: Layer, index: number, spool: Spool, mediaType: string, diffId: Digest, digest: Digest): Layer {
  const compressed = async (): Promise<Readable> => createReadStream(await spool.file(index), { highWaterMark: 1024 * 1024 });
  return {
    digest: () => remote.digest(),
    diffId: () => remote.diffId(),
    size: () => remote.size(),
    mediaType: () => remote.mediaType(),
    compressed,
    uncompressed: uncompressedOpener(compressed, mediaType, diffId, `layer ${digest}`),
    origin: remote.origin,
  };
}

class Spool {
  readonly #layers: readonly Layer[];
  readonly #opts: SpoolOptions;
  readonly #files: (Promise<string> | undefined)[];
  readonly #waiting: { index: number; resolve: (p: string) => void; reject: (e: unknown) => void }[] = [];
  #running = 0;

  constructor(layers: readonly Layer[], opts: SpoolOptions) {
    this.#layers = layers;
    this.#opts = opts;
    this.#files = layers.map(() => undefined);
  }

  /** The file of layer `index`, scheduling it and every later layer not yet scheduled. */
  file(index: number): Promise<string> {
    for (let i = index; i < this.#layers.length; i++) {
      if (this.#files[i] !== undefined) continue;
      const p = new Promise<string>((resolve, reject) => this.#waiting.push({ index: i, resolve, reject }));
      // A prefetched layer nobody opens must not become an unhandled rejection; openers still see it.
      p.catch(() => undefined);
      this.#files[i] = p;
    }
    // The one asked for goes first.
    const at = this.#waiting.findIndex((w) => w.index === index);
    if (at > 0) this.#waiting.unshift(...this.#waiting.splice(at, 1));
    this.#pump();
    return this.#files[index] as Promise<string>;
  }

  #pump(): void {
    const limit = Math.max(1, this.#opts.concurrency ?? 4);
    while (this.#running < limit && this.#waiting.length > 0) {
      const job = this.#waiting.shift();
      if (job === undefined) break;
      this.#running++;
      this.#download(job.index)
        .then(job.resolve, job.reject)
        .finally(() => {
          this.#running--;
          this.#pump();
        });
    }
  }

  async #download(index: number): Promise<string> {
    const layer = this.#layers[index] as Layer;
    const digest = await layer.digest();
    const size = await layer.size();
    const final = join(this.#opts.dir, digestHex(digest));
    // Another image of this build (or an earlier attempt) already brought it: files appear complete.
    const have = await stat(final).catch(() => undefined);
    if (have !== undefined && have.isFile() && have.size === size) return final;
    await mkdir(this.#opts.dir, { recursive: true });
    const { ctx } = this.#opts;
    for (let attempt = 0; ; attempt++) {
      const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        // The remote layer's stream fails, rather than ends, unless digest and size match.
        // 1 MiB writes: the 16 KiB default makes a 60 MB layer thousands of thread-pool round trips.
        await pipeline(await layer.compressed(), createWriteStream(tmp, { highWaterMark: 1 << 20 }), { signal: ctx.signal });
        await rename(tmp, final);
        ctx.log.debug(`downloaded layer ${digest} (${size} bytes)`);
        return final;
      } catch (err) {
        await rm(tmp, { force: true });
        if (ctx.signal.aborted || err instanceof KilnError) throw err;
        if (attempt >= (this.#opts.retries ?? 0)) {
          const where = layer.origin !== undefined ? `${layer.origin.registry}/${layer.origin.repository}@` : '';
          throw new RegistryError(`layer ${where}${digest}: download broke off: ${(err as Error).message}`, { retryable: true }, { cause: err });
        }
        ctx.log.debug(`retrying the download of layer ${digest} after: ${(err as Error).message}`);
        await sleep(500 * 2 ** attempt, undefined, { signal: ctx.signal });
      }
    }
  }
}
