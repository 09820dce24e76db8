// Pushes an image to one or more registry destinations. Per repository: every blob (layers, then the
// config) is checked with HEAD and uploaded only when missing (a tiny one of the build's own is just
// uploaded), once however many tags name that
// repository; the manifest goes last, so a tag never points at an image whose blobs are not all in.
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { PushPermissionError, RegistryError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { BlobOrigin, Image } from '../oci/image.js';
import { formatReference, type Reference } from '../oci/reference.js';
import type { RunContext } from '../log/run-context.js';
import { counted } from '../log/transfers.js';
import type { RegistryClient } from '../registry/client.js';

export interface PushOptions {
  /** How many blobs upload at once per repository. */
  readonly concurrency?: number;
  /** `--push-ignore-immutable-tag-errors`: a tag the registry refuses to overwrite is not a failure. */
  readonly ignoreImmutableTagErrors?: boolean;
  /**
   * Another repository a blob without an origin is (or is about to be) in, e.g. the layer cache's:
   * awaited before the blob is uploaded, so that a push to the same registry mounts it instead.
   */
  readonly mountSource?: (digest: Digest) => Promise<BlobOrigin | undefined>;
}

/** Blobs uploaded at once per repository (the large ones, with the default options). */
const DEFAULT_CONCURRENCY = 3;
/** Up to this size a blob is small: its upload is a few round trips whatever the link. */
const SMALL_BLOB = 1024 * 1024;
const MAX_SMALL_AT_ONCE = 8;
/**
 * Up to this size a blob of the build's own (no origin to mount from) is uploaded without asking
 * first: a HEAD costs the same round trip as the upload it might save, and on the push's critical
 * path (a small build's config and COPY layers: HEAD, POST, PUT, then the manifest). Uploading a blob
 * the registry has is allowed (the distribution spec's PUT is idempotent by digest).
 */
const TINY_BLOB = 16 * 1024;

/** The refusals kaniko recognises as "this tag is immutable" (Artifact Registry, ECR). */
const TAG_IMMUTABLE = ['The repository has enabled tag immutability', 'cannot be overwritten because the repository is immutable'];

/**
 * kaniko's CheckPushPermissions, before anything is built: each destination repository (once) is
 * asked for an upload session, so bad credentials or a read-only token fail in a second, naming the
 * destination, instead of after the build.
 */
export async function checkPushPermissions(client: RegistryClient, destinations: readonly Reference[], ctx: RunContext): Promise<void> {
  const checked = new Set<string>();
  for (const dest of destinations) {
    const key = `${dest.registry}/${dest.repository}`;
    if (checked.has(key)) continue;
    checked.add(key);
    ctx.log.debug(`checking push permission for ${key}`);
    try {
      await client.checkPushPermission(dest.registry, dest.repository);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      throw new PushPermissionError(
        `checking push permission for ${JSON.stringify(formatReference(dest))}: ${err.message}`,
        {
          ...(err.status !== undefined ? { status: err.status } : {}),
          registryCodes: err.registryCodes,
          retryable: err.retryable,
          ...(err.url !== undefined ? { url: err.url } : {}),
        },
        { cause: err },
      );
    }
  }
}

interface Blob {
  readonly digest: Digest;
  readonly size: number;
  readonly open: () => Promise<Readable>;
  readonly origin?: { readonly registry: string; readonly repository: string } | undefined;
}

/** Pushes `image` to every destination; returns the manifest digest. */
export async function pushImage(
  client: RegistryClient,
  image: Image,
  destinations: readonly Reference[],
  ctx: RunContext,
  opts: PushOptions = {},
): Promise<Digest> {
  const digest = await image.digest();
  const rawManifest = await image.rawManifest();
  const mediaType = await image.mediaType();
  const blobs = await imageBlobs(image);

  const byRepo = new Map<string, Reference[]>();
  for (const dest of destinations) {
    const key = `${dest.registry}/${dest.repository}`;
    byRepo.set(key, [...(byRepo.get(key) ?? []), dest]);
  }
  for (const [repoName, dests] of byRepo) {
    const first = dests[0];
    if (first === undefined) continue;
    for (const dest of dests) ctx.log.info(`Pushing image to ${formatReference(dest)}`);
    // Small blobs (the config, the layers of COPY and small RUNs) cost round trips, not bandwidth: by
    // default they all go at once beside the large ones, instead of queueing behind them three at a time
    // (a small build's push was ~7 sequential round trips, now ~3).
    const lanes =
      opts.concurrency !== undefined
        ? [{ blobs, concurrency: opts.concurrency }]
        : [
            { blobs: blobs.filter((b) => b.size > SMALL_BLOB), concurrency: DEFAULT_CONCURRENCY },
            { blobs: blobs.filter((b) => b.size <= SMALL_BLOB), concurrency: MAX_SMALL_AT_ONCE },
          ];
    await pushBlobs(client, first.registry, first.repository, lanes, ctx, opts.mountSource);
    for (const dest of dests) {
      try {
        await client.putManifest(dest.registry, dest.repository, dest.tag ?? digest, rawManifest, mediaType);
      } catch (err) {
        const immutable = err instanceof RegistryError && TAG_IMMUTABLE.some((m) => err.message.includes(m));
        if (!immutable || opts.ignoreImmutableTagErrors !== true) throw err;
        ctx.log.info(`Immutable tag error ignored for ${repoName}@${digest}`);
        continue;
      }
      await checkServedBack(client, dest, digest, ctx);
      ctx.log.info(`Pushed ${repoName}@${digest}`);
    }
  }
  return digest;
}

/**
 * Reads the manifest back under the name it was put: a push is reported only once the registry serves
 * what it accepted. docker-registry (distribution 2.8) killed while it writes a manifest leaves an empty
 * file where the manifest goes, and the retried PUT finds the file present and links the tag to it:
 * a 201, and a tag that answers 500 ever after (seen in bench/soak.mjs). One small GET per tag.
 * Not a failure: credentials that may push but not pull (cannot check), and another digest under the
 * tag (another push of the same tag since ours; the tag moved, our image is whole).
 */
async function checkServedBack(client: RegistryClient, dest: Reference, digest: Digest, ctx: RunContext): Promise<void> {
  const name = formatReference(dest);
  let served: Digest | undefined;
  for (let attempt = 1; served === undefined; attempt++) {
    try {
      served = (await client.getManifest(dest)).digest;
    } catch (err) {
      const status = err instanceof RegistryError ? err.status : undefined;
      if (status === 401 || status === 403) {
        ctx.log.debug(`not reading back ${name}: the push credentials may not pull it (${(err as Error).message})`);
        return;
      }
      // A registry whose reads lag its writes for a moment answers 404 first; one that went away just
      // after the PUT (the soak run's kills) may be back in a moment: both are asked again, a few times.
      const unreachable = err instanceof RegistryError && err.retryable && status === undefined;
      if ((status === 404 && attempt < 3) || (unreachable && attempt < 4)) {
        await sleep(400 * attempt, undefined, { signal: ctx.signal });
        continue;
      }
      const why = unreachable ? 'could not be reached to read it back' : 'does not serve it back';
      throw new RegistryError(`registry ${dest.registry} accepted the manifest of ${name} (${digest}) but ${why}: ${(err as Error).message}`, { retryable: unreachable }, { cause: err });
    }
  }
  if (served !== digest) ctx.log.warn(`${name} now holds ${served}, not the ${digest} just pushed: another push of that tag came after this one`);
}

async function imageBlobs(image: Image): Promise<Blob[]> {
  const out: Blob[] = [];
  const seen = new Set<string>();
  for (const layer of await image.layers()) {
    const digest = await layer.digest();
    if (seen.has(digest)) continue; // the same layer twice in one image is uploaded once
    seen.add(digest);
    out.push({ digest, size: await layer.size(), open: () => layer.compressed(), origin: layer.origin });
  }
  const config = await image.rawConfig();
  const configDigest = await image.configName();
  // The config first: a few hundred bytes, done while the layers upload instead of after them.
  if (!seen.has(configDigest)) {
    out.unshift({ digest: configDigest, size: config.byteLength, open: async () => Readable.from([Buffer.from(config)]) });
  }
  return out;
}

async function pushBlobs(
  client: RegistryClient,
  registry: string,
  repository: string,
  lanes: readonly { readonly blobs: readonly Blob[]; readonly concurrency: number }[],
  ctx: RunContext,
  mountSource: PushOptions['mountSource'],
): Promise<void> {
  const queues = lanes.map((l) => [...l.blobs]);
  const worker = async (queue: Blob[]): Promise<void> => {
    for (let blob = queue.shift(); blob !== undefined; blob = queue.shift()) {
      try {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const tiny = blob.origin === undefined && blob.size <= TINY_BLOB;
        if (!tiny && (await client.blobExists(registry, repository, blob.digest, { forPush: true }))) {
          ctx.log.debug(`blob ${blob.digest} already in ${registry}/${repository}`);
          continue;
        }
        // A tiny blob still asks for a mount source: the layer cache's copy is mounted in one round trip.
        const origin = blob.origin ?? (await mountSource?.(blob.digest));
        const mountFrom = origin?.registry === registry && origin.repository !== repository ? origin.repository : undefined;
        const transfer = ctx.transfers?.start({ kind: 'upload', label: blob.digest, digest: blob.digest, total: blob.size });
        const open = transfer === undefined ? blob.open : async () => counted(await blob.open(), transfer);
        const how = await client.uploadBlob(registry, repository, blob.digest, blob.size, open, { mountFrom }).catch((err: unknown) => {
          transfer?.fail();
          throw err;
        });
        // A mounted blob moved no bytes: not an upload in the totals.
        if (how === 'uploaded') transfer?.end({ bytes: blob.size });
        else transfer?.fail();
        if (how === 'uploaded') ctx.log.debug(`uploaded blob ${blob.digest} (${blob.size} bytes) to ${registry}/${repository}`);
      } catch (err) {
        for (const q of queues) q.length = 0; // one failure fails the push: start no more uploads
        throw err;
      }
    }
  };
  const workers = lanes.flatMap((lane, i) => {
    const queue = queues[i] as Blob[];
    return queue.length === 0 ? [] : Array.from({ length: Math.max(1, Math.min(lane.concurrency, queue.length)) }, () => worker(queue));
  });
  // Wait for every worker even when one fails, so no upload is still running when we return.
  const results = await Promise.allSettled(workers);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
