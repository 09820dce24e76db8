// kaniko's local base-image cache on the executor's side (`--cache-dir`, filled by the warmer): a base
// image whose manifest digest has an entry there is read from it instead of its registry. The digest
// comes from the reference when it names one (no request at all), else from the registry's manifest,
// which the pull fetches anyway (src/sources/registry-source.ts `local`). kaniko's log lines; an entry
// that is there but unusable is a warning, and the image is pulled as if there were none.
import type { RunContext } from '../log/run-context.js';
import type { Digest } from '../oci/digest.js';
import type { BlobOrigin, Image } from '../oci/image.js';
import { lookupCacheDirImage } from '../sources/cache-dir-source.js';
import type { BaseImageCacheSettings } from './build-request.js';

export class BaseImageCache {
  readonly #settings: BaseImageCacheSettings;
  readonly #ctx: RunContext;

  constructor(settings: BaseImageCacheSettings, ctx: RunContext) {
    this.#settings = settings;
    this.#ctx = ctx;
  }

  /** The cached image with manifest digest `digest` (written `ref` in the Dockerfile), or undefined. */
  async lookup(digest: Digest, ref: string, origin: BlobOrigin | undefined): Promise<Image | undefined> {
    const { log, signal } = this.#ctx;
    try {
      const found = await lookupCacheDirImage(this.#settings.dir, digest, {
        ttlMs: this.#settings.ttlMs,
        now: Date.now(),
        verifyLayers: true,
        origin,
        signal,
      });
      switch (found.kind) {
        case 'absent':
          log.debug(`No file found for cache key ${digest} stat ${found.path}: no such file or directory`);
          log.debug(`Image ${ref} not found in cache`);
          return undefined;
        case 'expired':
          log.debug(`Cached image is too old: ${found.modified.toISOString()}`);
          log.debug(`Image ${ref} not found in cache`);
          return undefined;
        case 'hit':
          log.info(`Found ${digest} in local cache`);
          log.info(`Found manifest at ${found.path}.json`);
          return found.image;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const why = err instanceof Error ? err.message : String(err);
      log.warn(`Error while retrieving image ${ref} from cache: ${why}; pulling it from its registry`);
      return undefined;
    }
  }
}
