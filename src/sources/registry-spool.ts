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
// An open does not wait for the download to finish: it reads the file as it grows (`follow`), so the
// unpack of a layer runs while its bytes arrive, and ends only once the download has been verified
// against its digest and size (a mismatch fails the reader too, and the build: nothing is pushed).
// With `--image-download-retry`, an open waits for the verified file instead: a body that broke off
// may have carried bytes a retry replaces, and an unpack cannot take back what it has applied.
import { createReadStream, writevSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { KilnError, RegistryError } from '../errors.js';
import { inBackground } from '../log/log-scope.js';
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

/** A spooling image: an `Image`, plus a way to wait until every layer is on disk. */
export interface SpoolingImage extends Image {
  /** Downloads every layer (e.g. before timing-sensitive work); resolves when all are on disk. */
  spoolAll(): Promise<void>;
  /**
   * Resolves once no download of this image is running, none to start (those waiting are refused).
   * Called after its signal was aborted, before the spool's directory is removed: a download still
   * going would write into it meanwhile (a work dir that will not empty, files left behind).
   */
  settle(): Promise<void>;
}

/** `image` with layers read from spooled files; manifest and config are the image's own. */
export function spoolingImage(image: Image, opts: SpoolOptions): SpoolingImage {
  let made: Promise<Spool> | undefined;
  const spool = once(async () => {
    made = image.layers().then((layers) => new Spool(layers, opts));
    return made;
  });
  const layers = once(async (): Promise<readonly Layer[]> => {
    const remote = await image.layers();
    const sp = await spool();
    return Promise.all(remote.map(async (l, i) => spooledLayer(l, i, sp, await l.mediaType(), await l.diffId(), await l.digest())));
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
    spoolAll: async () => {
      const sp = await spool();
      await Promise.all((await image.layers()).map((_, i) => sp.file(i)));
    },
    settle: async () => {
      const sp = await made?.catch(() => undefined);
      await sp?.settle();
    },
  };
}

/** Downloads every layer of a spooling image; resolves when all are on disk. */
export async function prefetchLayers(image: SpoolingImage): Promise<void> {
  await image.spoolAll();
}

function spooledLayer(remote: Layer, index: number, spool: Spool, mediaType: string, diffId: Digest, digest: Digest): Layer {
  const compressed = async (): Promise<Readable> => spool.follow(index);
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

/** How far a download has got: the file being written and the bytes in it, or the finished file. */
interface Progress {
  tmp: string | undefined;
  written: number;
  final: string | undefined;
  failed: unknown;
  /** Resolved (and replaced) whenever any of the above changes. */
  changed: Promise<void>;
  wake: () => void;
}

function newProgress(): Progress {
  const p: Progress = { tmp: undefined, written: 0, final: undefined, failed: undefined, changed: Promise.resolve(), wake: () => {} };
  renew(p);
  return p;
}

function renew(p: Progress): void {
  p.changed = new Promise((resolve) => {
    p.wake = () => {
      renew(p);
      resolve();
    };
  });
}

const CHUNK = 1024 * 1024;

class Spool {
  readonly #layers: readonly Layer[];
  readonly #opts: SpoolOptions;
  readonly #files: (Promise<string> | undefined)[];
  readonly #progress: Progress[];
  readonly #waiting: { index: number; resolve: (p: string) => void; reject: (e: unknown) => void }[] = [];
  #running = 0;
  /** The downloads running now, for `settle`. */
  readonly #inFlight = new Set<Promise<void>>();
  #settling = false;

  constructor(layers: readonly Layer[], opts: SpoolOptions) {
    this.#layers = layers;
    this.#opts = opts;
    this.#files = layers.map(() => undefined);
    this.#progress = layers.map(() => newProgress());
  }

  /**
   * The compressed bytes of layer `index` as they are downloaded (scheduling it as `file` does): read
   * from the file while it grows; the stream ends when the download is complete and verified.
   */
  follow(index: number): Readable {
    const done = this.file(index);
    if ((this.#opts.retries ?? 0) > 0) {
      return Readable.from(
        (async function* () {
          yield* createReadStream(await done, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>;
        })(),
        { objectMode: false },
      );
    }
    const progress = this.#progress[index] as Progress;
    done.then(
      (final) => {
        progress.final = final;
        progress.wake();
      },
      (err: unknown) => {
        progress.failed = err ?? new Error('download failed');
        progress.wake();
      },
    );
    async function* chunks(): AsyncGenerator<Buffer> {
      let offset = 0;
      let fh: FileHandle | undefined;
      let openedPath: string | undefined;
      try {
        for (;;) {
          // Taken before the state is read: a change while this pass awaits I/O then wakes it at once.
          const changed = progress.changed;
          if (progress.failed !== undefined) throw progress.failed;
          const path = progress.final ?? progress.tmp;
          const available = progress.final !== undefined ? Number.POSITIVE_INFINITY : progress.written;
          if (path !== undefined && available > offset) {
            if (openedPath !== path) {
              await fh?.close();
              fh = undefined;
              openedPath = undefined;
              try {
                fh = await open(path, 'r');
              } catch (err) {
                // The temp file was renamed to its final name (or removed after a failed attempt)
                // between reading `progress` and the open: wait until progress says where it went.
                if (path === progress.final || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
                await changed;
                continue;
              }
              openedPath = path;
            }
            const want = Math.min(CHUNK, available - offset);
            const buf = Buffer.allocUnsafe(Number.isFinite(want) ? want : CHUNK);
            const { bytesRead } = await fh!.read(buf, 0, buf.length, offset);
            if (bytesRead > 0) {
              offset += bytesRead;
              yield buf.subarray(0, bytesRead);
              continue;
            }
            if (progress.final !== undefined) return; // the whole verified file has been read
          }
          await changed;
        }
      } finally {
        await fh?.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
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
      if (this.#settling) {
        job.reject(new KilnError('INTERNAL', `layer ${job.index}: the build ended before its download started`));
        continue;
      }
      this.#running++;
      // Goes on while later steps run: its lines name the step (or none) that started the spool.
      const run: Promise<void> = inBackground(this.#opts.ctx, () => this.#download(job.index))
        .then(job.resolve, job.reject)
        .finally(() => {
          this.#running--;
          this.#inFlight.delete(run);
          this.#pump();
        });
      this.#inFlight.add(run);
    }
  }

  /** Refuses the downloads still waiting and resolves when the running ones have ended. */
  async settle(): Promise<void> {
    this.#settling = true;
    this.#pump();
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
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
    const progress = this.#progress[index] as Progress;
    // Counted from the file being written: a retry starts its count over, as it starts the file over.
    const transfer = ctx.transfers?.start({ kind: 'download', label: digest, digest, total: size, read: () => progress.written });
    for (let attempt = 0; ; attempt++) {
      const tmp = `${final}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        const fh = await open(tmp, 'wx');
        progress.tmp = tmp;
        progress.written = 0;
        progress.wake();
        try {
          // The remote layer's stream fails, rather than ends, unless digest and size match.
          await pipeline(await layer.compressed(), fileWriter(fh, progress), { signal: ctx.signal });
        } finally {
          await fh.close();
        }
        await rename(tmp, final);
        transfer?.end({ bytes: size });
        ctx.log.debug(`downloaded layer ${digest} (${size} bytes)`);
        return final;
      } catch (err) {
        // A follower keeps reading the bytes it has open; a new one waits for the next attempt's file.
        if (progress.tmp === tmp) progress.tmp = undefined;
        await rm(tmp, { force: true });
        if (ctx.signal.aborted || err instanceof KilnError || attempt >= (this.#opts.retries ?? 0)) transfer?.fail();
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

/**
 * Writes into `fh` at increasing offsets and tells `progress` after each write has landed, so a
 * follower never reads past what is in the file. 1 MiB buffered: the 16 KiB default would make a
 * 60 MB layer thousands of thread-pool round trips.
 */
function fileWriter(fh: FileHandle, progress: Progress): Writable {
  let position = 0;
  // Synchronous writes: they land in the page cache in microseconds, less than a thread-pool round
  // trip each would cost for the ~5,000 socket-sized chunks of a 300 MB pull.
  const land = (buffers: Buffer[]): void => {
    let rest = buffers;
    while (rest.length > 0) {
      const n = writevSync(fh.fd, rest, position);
      position += n;
      rest = dropBytes(rest, n);
    }
    progress.written = position;
    progress.wake();
  };
  return new Writable({
    highWaterMark: CHUNK,
    write(chunk: Buffer, _encoding, callback) {
      try {
        land([chunk]);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

/** `buffers` without their first `n` bytes (what a short write left to write). */
function dropBytes(buffers: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = n;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
