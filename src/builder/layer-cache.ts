// kaniko's registry layer cache: each cacheable instruction's layer is kept as a one-layer image at
// `<cache repo>:<key>` (cache-key.ts). A lookup is one manifest and one config fetch; a hit hands back
// the layer as a remote layer of the cache repository, so a push to the same registry mounts it from
// there. Stores run in the background while the build goes on and are awaited before the executor
// exits. A hit's layer is downloaded (when something opens it) through the spool, as base layers are:
// the same progress lines and events, and counted in the summary's "pulled". Neither ever fails the build: a registry that cannot be reached, refuses the credentials or
// holds something unexpected makes the instruction run (lookup) or goes unstored (push), with a warning.
import { describeError, RegistryError } from '../errors.js';
import { inBackground } from '../log/log-scope.js';
import type { RunContext } from '../log/run-context.js';
import { assembleImage } from '../oci/assemble.js';
import type { Layer } from '../oci/image.js';
import type { ManifestFamily } from '../oci/media-types.js';
import type { Reference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import type { RegistryClient } from '../registry/client.js';
import { pushImage } from '../sinks/registry-sink.js';
import { pullImage } from '../sources/registry-source.js';
import { spoolingImage } from '../sources/registry-spool.js';
import type { BuildDownloads } from './build-downloads.js';
import type { LayerCacheSettings } from './build-request.js';

export interface CachedLayer {
  /** null: the instruction changed no file (kiln stores such results as an image without layers). */
  readonly layer: Layer | null;
  /** The history entry's created_by the instruction wrote when it ran. */
  readonly createdBy: string;
}

/** Where a hit's layer is downloaded to: the base layers' spool (registry-spool.ts). */
export interface CacheSpool {
  readonly dir: string;
  /** `--image-download-retry`. */
  readonly retries: number;
  /** The build's downloads, stopped before its work dir goes (the base layers' too). */
  readonly downloads?: BuildDownloads;
}

export class LayerCache {
  readonly #settings: LayerCacheSettings;
  readonly #client: RegistryClient;
  readonly #ctx: RunContext;
  readonly #now: () => number;
  readonly #spool: CacheSpool;
  readonly #pushes: Promise<void>[] = [];
  /** Layers stored in this build, and whether their push succeeded: the final push mounts them. */
  readonly #stored: Array<{ readonly layer: Layer; readonly pushed: Promise<boolean> }> = [];

  constructor(settings: LayerCacheSettings, client: RegistryClient, ctx: RunContext, spool: CacheSpool, now: () => number = Date.now) {
    this.#settings = settings;
    this.#spool = spool;
    this.#client = client;
    this.#ctx = ctx;
    this.#now = now;
  }

  get settings(): LayerCacheSettings {
    return this.#settings;
  }

  #ref(key: string): Reference {
    const { registry, repository } = this.#settings.repo;
    return { registry, repository, tag: key, digest: undefined, original: `${registry}/${repository}:${key}` };
  }

  /** The cached layer of `command` under `key`, or undefined (a miss, an expired entry, or a lookup that failed). */
  async lookup(key: string, command: string, platform: Platform): Promise<CachedLayer | undefined> {
    const { log } = this.#ctx;
    const ref = this.#ref(key);
    log.info(`Checking for cached layer ${ref.original}...`);
    const found = await this.#fetch(ref, platform).catch((err: unknown) => {
      if (this.#ctx.signal.aborted) throw err;
      if (!isMissing(err)) log.warn(`Error checking for cached layer ${ref.original}: ${describeError(err)}`);
      return undefined;
    });
    if (found === undefined) log.info(`No cached layer found for cmd ${command}`);
    else log.info(`Using caching version of cmd: ${command}`);
    return found;
  }

  async #fetch(ref: Reference, platform: Platform): Promise<CachedLayer | undefined> {
    const { dir, retries, downloads } = this.#spool;
    const spooled = spoolingImage(await pullImage(this.#client, ref, { platform }), {
      dir,
      retries,
      ctx: downloads === undefined ? this.#ctx : { ...this.#ctx, signal: downloads.signal },
    });
    const image = downloads === undefined ? spooled : downloads.add(spooled);
    const config = await image.configFile();
    const created = Date.parse(config.created ?? '');
    if (!Number.isFinite(created) || created + this.#settings.ttlMs < this.#now()) {
      this.#ctx.log.info(`Cache entry expired: ${ref.original}`);
      return undefined;
    }
    const layers = await image.layers();
    if (layers.length > 1) {
      this.#ctx.log.warn(`Cache entry ${ref.original} holds ${layers.length} layers, not 1: ignored`);
      return undefined;
    }
    const layer = layers[0] ?? null;
    const createdBy = config.history?.[0]?.created_by;
    if (createdBy === undefined) {
      this.#ctx.log.warn(`Cache entry ${ref.original} has no history: ignored`);
      return undefined;
    }
    return { layer, createdBy };
  }

  /**
   * Pushes `layer` as `<cache repo>:<key>` in the background: an image of that one layer whose config
   * `created` is now (what the TTL is measured from, real time even with --reproducible) and whose
   * history names the instruction. An instruction that changed no file is stored as an image without
   * layers (kaniko pushes an empty tar), so the next build need not unpack the rootfs to run it again.
   * Does nothing with --no-push-cache.
   */
  store(key: string, layer: Layer | null, createdBy: string, platform: Platform, family: ManifestFamily): void {
    if (!this.#settings.push) return;
    const ref = this.#ref(key);
    const created = new Date(this.#now()).toISOString();
    const image = assembleImage({
      family,
      config: {
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
        created,
        config: {},
        rootfs: { type: 'layers', diff_ids: [] },
        history: [{ created, created_by: createdBy, ...(layer === null ? { empty_layer: true } : {}) }],
      },
      layers: layer === null ? [] : [layer],
    });
    this.#ctx.log.info(`Pushing layer ${ref.original} to cache now`);
    // Its lines (uploads, the warning) name this step, though later steps run meanwhile.
    const pushed = inBackground(this.#ctx, () =>
      pushImage(this.#client, image, [ref], this.#ctx).then(
        () => true,
        (err: unknown) => {
          this.#ctx.log.warn(`Error uploading layer to cache: ${describeError(err)}`);
          return false;
        },
      ),
    );
    this.#pushes.push(pushed.then(() => undefined));
    if (layer !== null) this.#stored.push({ layer, pushed });
  }

  /**
   * The cache repository, when a layer of this build with `digest` was stored there: waits for that
   * push, so the image's push to the same registry mounts the layer instead of uploading it again.
   */
  async mountSource(digest: string): Promise<{ registry: string; repository: string } | undefined> {
    for (const s of this.#stored) {
      if ((await s.layer.digest()) !== digest) continue;
      return (await s.pushed) ? { ...this.#settings.repo } : undefined;
    }
    return undefined;
  }

  /** Waits for every store started so far; never rejects. */
  async settle(): Promise<void> {
    while (this.#pushes.length > 0) await Promise.all(this.#pushes.splice(0));
  }
}

/** A cache miss: the tag (or the repository) does not exist. */
function isMissing(err: unknown): boolean {
  if (!(err instanceof RegistryError)) return false;
  return err.status === 404 || err.registryCodes.some((c) => c === 'MANIFEST_UNKNOWN' || c === 'NAME_UNKNOWN');
}
