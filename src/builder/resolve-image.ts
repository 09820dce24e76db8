// Where a base or `--from` image comes from: the `--cache-dir` (the warmer's entries) or its registry,
// decided the same way for a build and for `--dry-run`, so a dry run says what the build would use. A
// digest reference is looked up in the cache dir before any request (no registry need answer); a tag
// is resolved at the registry (as kaniko does), and its manifest digest then looked up there.
import type { RunContext } from '../log/run-context.js';
import type { Digest } from '../oci/digest.js';
import type { Image } from '../oci/image.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import type { RegistryClient } from '../registry/client.js';
import { pullImageVia, type PullRoutes } from '../sources/registry-source.js';
import type { BaseImageCache } from './base-image-cache.js';

export interface ResolvedSource {
  /** The image to build on: the cache dir's copy, else the registry's (layers remote). */
  readonly image: Image;
  /** Whether the image (config and layers) comes from the cache dir. */
  readonly fromCacheDir: boolean;
  /** Whether the registry was asked for the manifest; false for a digest reference the cache dir had. */
  readonly askedRegistry: boolean;
}

export interface ResolveOptions {
  readonly client: RegistryClient;
  readonly routes: PullRoutes;
  /** `--cache-dir`, when given. */
  readonly baseCache: BaseImageCache | undefined;
  readonly ctx: RunContext;
}

export async function resolveImageSource(ref: string, platform: Platform, o: ResolveOptions): Promise<ResolvedSource> {
  const parsed = parseReference(ref);
  const { baseCache } = o;
  if (parsed.digest !== undefined && baseCache !== undefined) {
    const early = await baseCache.lookup(parsed.digest, ref, { registry: parsed.registry, repository: parsed.repository });
    if (early !== undefined) return { image: early, fromCacheDir: true, askedRegistry: false };
  }
  o.ctx.log.info(`Retrieving image manifest ${ref}`);
  let cached: Image | undefined;
  // A digest reference was looked up above already: a miss then is a miss now.
  const local = async (digest: Digest, at: Reference): Promise<Image | undefined> =>
    digest === parsed.digest ? undefined : (cached = await baseCache?.lookup(digest, ref, { registry: at.registry, repository: at.repository }));
  const image = await pullImageVia(o.client, parsed, { platform, routes: o.routes, ctx: o.ctx, ...(baseCache !== undefined ? { local } : {}) });
  return cached !== undefined ? { image: cached, fromCacheDir: true, askedRegistry: true } : { image, fromCacheDir: false, askedRegistry: true };
}
