// A distribution-spec client: manifests and blobs of repositories on registries, over a Transport
// that handles schemes, auth and retries. Digests are checked over the bytes as received: manifests
// pulled by digest before they are returned, blobs while they stream.
import { pipeline, Readable } from 'node:stream';
import { DigestMismatchError, KilnError, RegistryError } from '../errors.js';
import { VerifyingStream } from '../blob/digesting.js';
import { digestOfBytes, isDigest, type Digest } from '../oci/digest.js';
import { parseJsonBytes } from '../oci/json.js';
import { isSchema1MediaType, MediaType } from '../oci/media-types.js';
import { formatReference, referenceIdentifier, type Reference } from '../oci/reference.js';
import { mediaTypeProbeSchema } from '../oci/schemas.js';
import type { Response } from 'node-fetch';
import { networkReason } from './response-error.js';
import { Transport, type TransportOptions } from './transport.js';

export interface RegistryClientOptions extends TransportOptions {
  /** Blobs larger than this go up in PATCH chunks instead of one PUT (default: never by size). */
  readonly chunkedAbove?: number;
  /** Bytes per PATCH in a chunked upload (default 16 MiB). */
  readonly chunkSize?: number;
}

const DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024;

export interface FetchedManifest {
  /** The document exactly as received; its digest is computed over these bytes. */
  readonly bytes: Uint8Array;
  readonly mediaType: string;
  readonly digest: Digest;
}

/** Everything a pull of an image or index accepts, most wanted first. */
export const ALL_MANIFEST_TYPES: readonly string[] = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
];

/** Manifests are small; a registry sending more than this is broken or hostile. */
const MANIFEST_LIMIT = 8 * 1024 * 1024;

export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

export function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

export interface UploadOptions {
  /** A repository on the same registry that already has the blob: try a cross-repository mount first. */
  readonly mountFrom?: string | undefined;
}

export class RegistryClient {
  readonly #t: Transport;
  readonly #chunkedAbove: number;
  readonly #chunkSize: number;

  constructor(opts: RegistryClientOptions) {
    this.#t = new Transport(opts);
    this.#chunkedAbove = opts.chunkedAbove ?? Number.POSITIVE_INFINITY;
    this.#chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  }

  /** Closes idle connections; the client must not be used afterwards. */
  close(): void {
    this.#t.close();
  }

  /**
   * Fetches a manifest or index by tag or digest. When the reference has a digest the bytes must hash
   * to it; by tag, they must match the registry's `Docker-Content-Digest` if it sends one.
   */
  async getManifest(ref: Reference, accept: readonly string[] = ALL_MANIFEST_TYPES): Promise<FetchedManifest> {
    const id = referenceIdentifier(ref);
    const what = formatReference(ref);
    // The body is read inside the retry: a registry that goes quiet mid-manifest is retried as one
    // that never answered.
    const { res, bytes } = await this.#t.withRetry(`GET manifest ${what}`, this.#t.retries, async () => {
      const res = await this.#t.request({
        registry: ref.registry,
        method: 'GET',
        path: `/v2/${ref.repository}/manifests/${id}`,
        scopes: [pullScope(ref.repository)],
        headers: { Accept: [...accept, MediaType.DockerSchema1Signed, MediaType.DockerSchema1].join(', ') },
        ok: [200],
        retries: 0,
      });
      const declaredLength = Number(res.headers.get('content-length') ?? '0');
      if (declaredLength > MANIFEST_LIMIT) {
        res.body?.resume();
        throw new RegistryError(`manifest ${what} is ${declaredLength} bytes, more than the ${MANIFEST_LIMIT} allowed`, {});
      }
      return { res, bytes: await readBodyLimited(res, MANIFEST_LIMIT, `manifest ${what}`, ref.registry) };
    });
    const digest = digestOfBytes(bytes);
    if (ref.digest !== undefined && digest !== ref.digest) {
      throw new DigestMismatchError(`manifest ${what}`, ref.digest, digest);
    }
    const header = res.headers.get('docker-content-digest');
    if (ref.digest === undefined && header !== null && isDigest(header) && header.startsWith('sha256:') && header !== digest) {
      throw new DigestMismatchError(`manifest ${what} (Docker-Content-Digest)`, header, digest);
    }
    const mediaType = manifestMediaTypeOf(res.headers.get('content-type'), bytes, what);
    if (isSchema1MediaType(mediaType)) {
      throw new RegistryError(
        `${what} is a Docker schema 1 manifest, which is deprecated and not supported; push it again with a current client`,
        { url: what },
      );
    }
    return { bytes, mediaType, digest };
  }

  /** Whether a blob is in a repository (`HEAD`); `forPush` asks for a push token so a push needs only one. */
  async blobExists(registry: string, repository: string, digest: Digest, opts: { forPush?: boolean } = {}): Promise<boolean> {
    const res = await this.#t.request({
      registry,
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [opts.forPush === true ? pushScope(repository) : pullScope(repository)],
      ok: [200, 404],
    });
    res.body?.resume();
    return res.status === 200;
  }

  /**
   * A stream of a blob's bytes that errors, rather than ending, when they do not hash to `digest` (or
   * add up to `size`): a consumer never mistakes a corrupt blob for a complete one.
   */
  async openBlob(registry: string, repository: string, digest: Digest, size?: number): Promise<Readable> {
    const res = await this.#t.request({
      registry,
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [pullScope(repository)],
      ok: [200],
    });
    const body = res.body;
    if (body === null) throw new RegistryError(`GET blob ${registry}/${repository}@${digest}: empty response`, {});
    const verifier = new VerifyingStream(`blob ${registry}/${repository}@${digest}`, digest, size);
    // pipeline destroys the verifier with the source's error, so a broken connection surfaces too.
    return pipeline(body as Readable, verifier, () => {});
  }

  /** A small blob (a config) read fully into memory, verified. Never use this for layers. */
  async readSmallBlob(registry: string, repository: string, digest: Digest, size: number): Promise<Uint8Array> {
    if (size > MANIFEST_LIMIT) {
      throw new RegistryError(`blob ${registry}/${repository}@${digest} is ${size} bytes, too large to read into memory`, {});
    }
    const chunks: Buffer[] = [];
    for await (const chunk of await this.openBlob(registry, repository, digest, size)) chunks.push(chunk as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  }

  /**
   * Whether our credentials may push to a repository, asked the way go-containerregistry's
   * `remote.CheckPushPermission` does: start an upload (a token handshake alone is not enough on
   * Docker Hub) and cancel it. Throws the registry's error (a 401 or 403 names the registry).
   */
  async checkPushPermission(registry: string, repository: string): Promise<void> {
    const scopes = [pushScope(repository)];
    const { location } = await this.#startUpload(registry, repository, scopes);
    if (location === null) return;
    try {
      await this.#cancelUpload(registry, location, scopes);
    } catch (err) {
      // Cancelling only frees the session early; the registry expires it anyway.
      this.#t.ctx.log.debug(`cancelling the permission-check upload on ${registry}/${repository}: ${(err as Error).message}`);
    }
  }

  /**
   * POST of a new upload session (`query`: a cross-repository mount's `?mount=&from=`): its status (201:
   * the registry mounted the blob instead) and Location. `retries` as the transport's request option.
   */
  async #startUpload(registry: string, repository: string, scopes: string[], query = '', retries?: number): Promise<{ status: number; location: string | null }> {
    const started = await this.#t.request({
      registry,
      method: 'POST',
      path: `/v2/${repository}/blobs/uploads/${query}`,
      scopes,
      headers: { 'Content-Length': '0' },
      ok: [201, 202],
      ...(retries !== undefined ? { retries } : {}),
    });
    started.body?.resume();
    return { status: started.status, location: started.headers.get('location') };
  }

  /** DELETE of an upload session; a refusal to cancel is an answer, not an error. */
  async #cancelUpload(registry: string, location: string, scopes: string[]): Promise<void> {
    const cancelled = await this.#t.request({
      registry,
      method: 'DELETE',
      path: uploadTarget(location),
      scopes,
      // distribution wants a `delete` scope to cancel; a push-only token is refused, and that is
      // fine: the cancel is a courtesy, not worth another token.
      ok: [200, 202, 204, 401, 403, 404, 405],
      retries: 0,
    });
    cancelled.body?.resume();
  }

  /**
   * Uploads a blob: a POST for a session, then the bytes in one streamed PUT with a known length, or
   * in PATCH chunks when the blob is larger than `chunkedAbove` or the registry refuses the single PUT
   * as too large (413, e.g. an nginx body limit in front of it). Retries redo the whole sequence and
   * reopen the bytes through `open`.
   */
  async uploadBlob(
    registry: string,
    repository: string,
    digest: Digest,
    size: number,
    open: () => Promise<Readable>,
    opts: UploadOptions = {},
  ): Promise<'mounted' | 'uploaded'> {
    const scopes = [pushScope(repository)];
    let mounted = false;
    const mountFrom = opts.mountFrom !== undefined && opts.mountFrom !== repository ? opts.mountFrom : undefined;
    // The `from` repository's pull scope goes in the same token, so the registry can check the mount.
    if (mountFrom !== undefined) scopes.push(pullScope(mountFrom));
    const what = `blob upload ${registry}/${repository}@${digest}`;
    let chunked = size > this.#chunkedAbove;
    const query = mountFrom !== undefined ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : '';
    /** A new upload session's Location, or undefined when the registry mounted the blob instead. */
    const startSession = async (): Promise<string | undefined> => {
      const { status, location } = await this.#startUpload(registry, repository, scopes, query, 0);
      if (status === 201) {
        this.#t.ctx.log.debug(`mounted ${digest} from ${mountFrom ?? '?'} into ${repository}`);
        mounted = true;
        return undefined;
      }
      if (location === null) throw new RegistryError(`POST ${registry}/v2/${repository}/blobs/uploads/: no Location header`, {});
      return location;
    };
    await this.#t.withRetry(what, this.#t.retries, async () => {
      let location = await startSession();
      if (location === undefined) return;
      if (!chunked) {
        try {
          const done = await this.#t.request({
            registry,
            method: 'PUT',
            path: uploadTarget(location, digest),
            scopes: [pushScope(repository)],
            headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
            body: open,
            ok: [201, 204],
            retries: 0,
          });
          done.body?.resume();
          return;
        } catch (err) {
          if (!(err instanceof RegistryError) || err.status !== 413) throw err;
          this.#t.ctx.log.debug(`${registry} refused ${digest} in one request (413): uploading it in chunks`);
          chunked = true;
          // A fresh session: the refused one may be in any state.
          location = await startSession();
          if (location === undefined) return;
        }
      }
      await this.#uploadChunks(registry, repository, location, digest, open);
    });
    return mounted ? 'mounted' : 'uploaded';
  }

  /**
   * Uploads a blob whose bytes are still being produced (a layer being compressed), as kaniko's
   * go-containerregistry streams every blob: a POST for a session, the bytes in one PATCH streamed as
   * they come (`body` opens them from the start; called again if the registry wants a new token), then
   * the PUT of `digest` once it is known. No retries: a failure is for the caller to fall back on a
   * normal upload. The session is cancelled when anything fails.
   */
  async streamBlob(registry: string, repository: string, body: () => Readable, digest: Promise<Digest>): Promise<void> {
    const scopes = [pushScope(repository)];
    const { location } = await this.#startUpload(registry, repository, scopes, '', 0);
    if (location === null) throw new RegistryError(`POST ${registry}/v2/${repository}/blobs/uploads/: no Location header`, {});
    let at = location;
    try {
      const patched = await this.#t.request({
        registry,
        method: 'PATCH',
        path: uploadTarget(at),
        scopes,
        headers: { 'Content-Type': 'application/octet-stream' },
        body: async () => body(),
        ok: [202],
        retries: 0,
      });
      patched.body?.resume();
      at = patched.headers.get('location') ?? at;
      const done = await this.#t.request({
        registry,
        method: 'PUT',
        path: uploadTarget(at, await digest),
        scopes,
        headers: { 'Content-Length': '0' },
        ok: [201, 204],
        retries: 0,
      });
      done.body?.resume();
    } catch (err) {
      await this.#cancelUpload(registry, at, scopes).catch(() => undefined);
      throw err;
    }
  }

  /**
   * The distribution spec's chunked upload: PATCH each chunk with its Content-Range, then PUT the digest.
   * A PATCH that fails in a retryable way does not start the blob over: the upload's status (`GET` of
   * its location: `Range: 0-<last byte received>`) says where the registry is, and the upload goes on
   * from there in the same session, up to the client's retry count. Only when the session itself is
   * gone does the failure reach the caller, whose retry starts a new one.
   */
  async #uploadChunks(registry: string, repository: string, location: string, digest: Digest, open: () => Promise<Readable>): Promise<void> {
    const scopes = [pushScope(repository)];
    let at = location;
    let offset = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        for await (const chunk of chunksOf(skipBytes(await open(), offset), this.#chunkSize)) {
          const res = await this.#t.request({
            registry,
            method: 'PATCH',
            path: uploadTarget(at),
            scopes,
            headers: {
              'Content-Type': 'application/octet-stream',
              'Content-Length': String(chunk.byteLength),
              'Content-Range': `${offset}-${offset + chunk.byteLength - 1}`,
            },
            body: async () => chunk,
            ok: [202],
            retries: 0,
          });
          res.body?.resume();
          offset += chunk.byteLength;
          at = res.headers.get('location') ?? at;
        }
        break;
      } catch (err) {
        const retryable = err instanceof RegistryError && err.retryable;
        if (!retryable || attempt >= this.#t.retries || this.#t.ctx.signal.aborted) throw err;
        const status = await this.#uploadStatus(registry, repository, at).catch(() => undefined);
        if (status === undefined) throw err;
        this.#t.ctx.log.debug(`resuming the upload of ${digest} at byte ${status.next} (sent ${offset}) after: ${(err as Error).message}`);
        offset = status.next;
        at = status.location;
      }
    }
    const done = await this.#t.request({
      registry,
      method: 'PUT',
      path: uploadTarget(at, digest),
      scopes,
      headers: { 'Content-Length': '0' },
      ok: [201, 204],
      retries: 0,
    });
    done.body?.resume();
  }

  /** Where an upload session stands: the next byte the registry expects, and the location to use. */
  async #uploadStatus(registry: string, repository: string, location: string): Promise<{ next: number; location: string }> {
    const res = await this.#t.request({ registry, method: 'GET', path: uploadTarget(location), scopes: [pushScope(repository)], ok: [204], retries: 0 });
    res.body?.resume();
    // `Range: 0-N` (N inclusive); a session that has received nothing may say `0-0`, or `0--1`.
    const m = /^(?:bytes=)?0-(-?\d+)$/.exec(res.headers.get('range') ?? '');
    if (m === null) throw new RegistryError(`GET ${registry} upload status: no usable Range header`, {});
    const last = Number(m[1]);
    return { next: last < 0 ? 0 : last + 1, location: res.headers.get('location') ?? location };
  }

  /** Puts a manifest under a tag or digest; returns the digest of the bytes sent. */
  async putManifest(registry: string, repository: string, tagOrDigest: string, bytes: Uint8Array, mediaType: string): Promise<Digest> {
    const res = await this.#t.request({
      registry,
      method: 'PUT',
      path: `/v2/${repository}/manifests/${tagOrDigest}`,
      scopes: [pushScope(repository)],
      headers: { 'Content-Type': mediaType, 'Content-Length': String(bytes.byteLength) },
      body: async () => Buffer.from(bytes),
      ok: [200, 201, 202],
    });
    res.body?.resume();
    return digestOfBytes(bytes);
  }
}

/** An upload Location (absolute, or relative to the registry) with `digest` added to its query. */
function uploadTarget(location: string, digest?: Digest): string {
  const u = new URL(location, 'http://placeholder.invalid');
  if (digest !== undefined) u.searchParams.set('digest', digest);
  return /^https?:\/\//.test(location) ? u.toString() : `${u.pathname}${u.search}`;
}

/** `stream` without its first `n` bytes (read and dropped: a resumed upload sends only the rest). */
async function* skipBytes(stream: AsyncIterable<Buffer | Uint8Array>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c);
    if (left >= b.byteLength) {
      left -= b.byteLength;
      continue;
    }
    yield left > 0 ? b.subarray(left) : b;
    left = 0;
  }
}

/** Re-chunks a stream into buffers of exactly `size` bytes (the last one shorter). */
async function* chunksOf(stream: AsyncIterable<Buffer | Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const c of stream) {
    let b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    while (held + b.byteLength >= size) {
      const take = size - held;
      parts.push(b.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      held = 0;
      b = b.subarray(take);
    }
    if (b.byteLength > 0) {
      parts.push(b);
      held += b.byteLength;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

/** The media type from Content-Type, or from the document itself when the registry is vague. */
function manifestMediaTypeOf(contentType: string | null, bytes: Uint8Array, what: string): string {
  const ct = (contentType ?? '').split(';')[0]?.trim() ?? '';
  if (ct !== '' && ct !== 'application/json' && ct !== 'text/plain' && ct !== 'application/octet-stream') return ct;
  const probe = parseJsonBytes(mediaTypeProbeSchema, bytes, `manifest ${what}`);
  if (probe.mediaType !== undefined && probe.mediaType !== '') return probe.mediaType;
  if (probe.schemaVersion === 1) return MediaType.DockerSchema1;
  if (probe.manifests !== undefined) return MediaType.OciIndex;
  if (probe.config !== undefined) return MediaType.OciManifest;
  throw new KilnError('INVALID_DOCUMENT', `manifest ${what}: cannot tell its media type`);
}

/**
 * A small body read into memory, refused as soon as it passes `limit` (an endless body costs at most
 * `limit` bytes); a connection that breaks or goes quiet is a retryable RegistryError naming the registry.
 */
async function readBodyLimited(res: Response, limit: number, what: string, registry: string): Promise<Uint8Array> {
  const body = res.body;
  if (body === null) return new Uint8Array(0);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        (body as Readable).destroy();
        throw new RegistryError(`${what} is more than the ${limit} bytes allowed`, {});
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw new RegistryError(`${what} from registry ${registry}: ${networkReason(err)}`, { retryable: true }, { cause: err });
  }
  return new Uint8Array(Buffer.concat(chunks));
}
