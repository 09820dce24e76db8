// kaniko's warmer (pkg/cache/warm.go): pulls images into the local base-image cache that the executor
// reads with `--cache-dir`. The images are those of `--image`, then the FROM images of `--dockerfile`
// (build args and global ARGs expanded; stage names and scratch are no images). An image whose entry is
// already there is skipped unless `--force`. A failed image is a warning; only when every image fails
// does the warmer fail, as kaniko's does.
import { mkdir, readFile } from 'node:fs/promises';
import { fetchDockerfile } from '../context/fetch-context.js';
import { parseDockerfile } from '../dockerfile/parse.js';
import { planBuild } from '../dockerfile/plan.js';
import { KilnError, UsageError } from '../errors.js';
import type { SecretMask } from '../log/logger.js';
import type { RunContext } from '../log/run-context.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import { RegistryClient } from '../registry/client.js';
import { cloudHelpers, withCloudRegistries } from '../registry/cloud-keychain.js';
import { anonymousKeychain, loadDockerConfigKeychain, withGitLabCi } from '../registry/keychain.js';
import { loadRegistryTls } from '../registry/tls-files.js';
import { writeCacheDirImage } from '../sinks/cache-dir-sink.js';
import { tarballRepoTag } from '../sinks/tarball-sink.js';
import { lookupCacheDirImage } from '../sources/cache-dir-source.js';
import { pullImageVia } from '../sources/registry-source.js';
import { withWatchedLayers } from '../sources/watched-layer.js';
import type { RegistryAccess } from './build-request.js';

/** The registry settings a pull needs (the warmer never pushes). */
export type PullAccess = Pick<
  RegistryAccess,
  | 'insecurePull'
  | 'insecureRegistries'
  | 'skipTlsVerifyPull'
  | 'skipTlsVerifyRegistries'
  | 'dockerConfigDir'
  | 'imageDownloadRetry'
  | 'registryMap'
  | 'skipDefaultRegistryFallback'
  | 'registryCertificates'
  | 'registryClientCertificates'
  | 'gitLabCi'
  | 'cloudEnv'
>;

export interface WarmRequest {
  readonly cacheDir: string;
  /** `--image`, as written. */
  readonly images: readonly string[];
  /** `--dockerfile`: an absolute path or an http(s) URL. */
  readonly dockerfile: string | undefined;
  readonly buildArgs: ReadonlyMap<string, string | undefined>;
  /** `--custom-platform`, else the host's: the image taken from an index. */
  readonly platform: Platform;
  readonly buildPlatform: Platform;
  /** `--force`: rewrite entries that are already there. */
  readonly force: boolean;
  /** `--cache-ttl`: an older entry is rewritten. */
  readonly ttlMs: number;
  /** `--connect-timeout` and `--idle-timeout`, in milliseconds (the warmer's RunContext carries them). */
  readonly waits: { readonly connectMs: number; readonly idleMs: number };
  readonly registry: PullAccess;
}

export interface WarmDeps extends RunContext {
  readonly mask: SecretMask;
}

export interface WarmResult {
  readonly written: number;
  readonly skipped: number;
  readonly failed: number;
}

interface WarmTarget {
  readonly ref: string;
  readonly platform: Platform;
}

export async function warmCache(request: WarmRequest, deps: WarmDeps): Promise<WarmResult> {
  const { log } = deps;
  const targets = dedupe([...request.images.map((ref) => ({ ref, platform: request.platform })), ...(await dockerfileImages(request, deps))]);
  if (targets.length === 0) throw new UsageError('You must select at least one image to cache or a dockerfilepath to parse');
  await mkdir(request.cacheDir, { recursive: true }).catch((err: unknown) => {
    throw new KilnError('OUTPUT', `Failed to create cache directory ${request.cacheDir}: ${(err as Error).message}`, { cause: err });
  });
  const client = await pullClient(request.registry, deps);
  let written = 0;
  let skipped = 0;
  let failed = 0;
  try {
    for (const target of targets) {
      try {
        if (await warmOne(target, request, client, deps)) written++;
        else skipped++;
      } catch (err) {
        if (deps.signal.aborted) throw err;
        failed++;
        log.warn(`Error while trying to warm image: ${target.ref} ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  } finally {
    client.close();
  }
  if (failed === targets.length) throw new KilnError('REGISTRY', 'Failed to warm any of the given images');
  return { written, skipped, failed };
}

/** Pulls one image into the cache; false when its entry was there already. */
async function warmOne(target: WarmTarget, request: WarmRequest, client: RegistryClient, deps: WarmDeps): Promise<boolean> {
  const { log } = deps;
  const parsed = parseReference(target.ref);
  log.info(`Retrieving image manifest ${target.ref}`);
  const routes = { registryMap: request.registry.registryMap, skipDefaultRegistryFallback: request.registry.skipDefaultRegistryFallback };
  const image = await pullImageVia(client, parsed, { platform: target.platform, routes, ctx: deps });
  const digest = await image.digest();
  if (!request.force) {
    const existing = await lookupCacheDirImage(request.cacheDir, digest, {
      ttlMs: request.ttlMs,
      now: Date.now(),
      verifyLayers: false,
      signal: deps.signal,
    }).catch((err: unknown) => {
      log.warn(`Rewriting the cache entry of ${target.ref}: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    });
    if (existing?.kind === 'hit') {
      log.info(`Image ${target.ref} (${digest}) is already in the cache: ${existing.path}`);
      return false;
    }
  }
  log.info(`Retrieving image ${formatReference(parsed)} from registry ${parsed.registry}`);
  // go-containerregistry records the tag it was given; a digest reference gets no RepoTags.
  const repoTags = parsed.digest === undefined ? [tarballRepoTag(target.ref)] : [];
  // Its layers stream from the registry into the tarball: downloads, with progress (--progress).
  const path = await writeCacheDirImage(withWatchedLayers(image, deps), request.cacheDir, repoTags, { ctx: deps });
  log.info(`Wrote ${target.ref} to cache: ${path}`);
  return true;
}

/** The FROM images of `--dockerfile`, each with its stage's `--platform` or the requested one. */
async function dockerfileImages(request: WarmRequest, deps: WarmDeps): Promise<WarmTarget[]> {
  if (request.dockerfile === undefined) return [];
  const spec = request.dockerfile;
  const text = /^https?:\/\//i.test(spec)
    ? await fetchDockerfile(spec, deps)
    : await readFile(spec, 'utf8').catch((err: unknown) => {
        throw new UsageError(`reading dockerfile at path ${spec}: ${(err as Error).message}`, { cause: err });
      });
  const df = parseDockerfile(text, 'Dockerfile');
  const plan = planBuild(df, { buildArgs: request.buildArgs, targetPlatform: request.platform, buildPlatform: request.buildPlatform });
  return plan.stages.flatMap((s) => (s.base.kind === 'image' ? [{ ref: s.base.ref, platform: s.platform !== undefined ? parsePlatform(s.platform) : request.platform }] : []));
}

function dedupe(targets: readonly WarmTarget[]): WarmTarget[] {
  const seen = new Set<string>();
  return targets.filter((t) => {
    const key = `${t.ref}|${formatPlatform(t.platform)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function pullClient(reg: PullAccess, deps: WarmDeps): Promise<RegistryClient> {
  const cloud = { env: reg.cloudEnv, ctx: deps, mask: deps.mask };
  const configKeychain = reg.dockerConfigDir === undefined ? anonymousKeychain : await loadDockerConfigKeychain(reg.dockerConfigDir, deps.mask, { builtIn: cloudHelpers(cloud) });
  const tls = await loadRegistryTls(reg.registryCertificates, reg.registryClientCertificates);
  return new RegistryClient({
    ctx: deps,
    keychain: withCloudRegistries(withGitLabCi(configKeychain, reg.gitLabCi, deps.mask), cloud),
    mask: deps.mask,
    insecure: (host) => reg.insecurePull || reg.insecureRegistries.includes(host),
    skipTlsVerify: (host) => reg.skipTlsVerifyPull || reg.skipTlsVerifyRegistries.includes(host),
    tls: (host) => tls.get(host),
    retries: reg.imageDownloadRetry,
  });
}
