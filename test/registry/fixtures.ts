// Test fixtures for the registry area: small in-memory gzip layers, images built with assembleImage,
// OCI layouts written by hand for skopeo to push, and a RunContext whose log lines we can read.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { assembleImage } from '../../src/oci/assemble.js';
import { sha256Digest, type Digest } from '../../src/oci/digest.js';
import type { Image, Layer } from '../../src/oci/image.js';
import { MediaType, type ManifestFamily } from '../../src/oci/media-types.js';
import { createLogger, SecretMask } from '../../src/log/logger.js';
import type { RunContext } from '../../src/log/run-context.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/client.js';
import { anonymousKeychain, type Keychain } from '../../src/registry/keychain.js';

export const run = promisify(execFile);

export function sha256(bytes: Uint8Array): Digest {
  return sha256Digest(createHash('sha256').update(bytes).digest('hex'));
}

/** A tar holding the given files, in memory. */
export async function tarOf(files: Readonly<Record<string, string>>): Promise<Buffer> {
  const p = pack();
  for (const [name, content] of Object.entries(files)) p.entry({ name, mtime: new Date(0), mode: 0o644 }, content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A gzip layer held in memory (test layers are a few hundred bytes). */
export class MemoryLayer implements Layer {
  readonly tar: Buffer;
  readonly gz: Buffer;
  constructor(tar: Buffer) {
    this.tar = tar;
    this.gz = gzipSync(tar);
  }
  static async of(files: Readonly<Record<string, string>>): Promise<MemoryLayer> {
    return new MemoryLayer(await tarOf(files));
  }
  async digest(): Promise<Digest> {
    return sha256(this.gz);
  }
  async diffId(): Promise<Digest> {
    return sha256(this.tar);
  }
  async size(): Promise<number> {
    return this.gz.byteLength;
  }
  async mediaType(): Promise<string> {
    return MediaType.OciLayerGzip;
  }
  async compressed(): Promise<Readable> {
    return Readable.from([this.gz]);
  }
  async uncompressed(): Promise<Readable> {
    return Readable.from([this.tar]);
  }
}

export function testImage(layers: readonly Layer[], opts: { family?: ManifestFamily; architecture?: string; label?: string } = {}): Image {
  return assembleImage({
    family: opts.family ?? 'oci',
    config: {
      architecture: opts.architecture ?? 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/bin:/bin'], Labels: { 'kiln.test': opts.label ?? 'yes' } },
      rootfs: { type: 'layers', diff_ids: [] },
    },
    layers,
  });
}

export interface CapturedContext extends RunContext {
  readonly lines: string[];
  readonly mask: SecretMask;
}

/** A RunContext whose text log lines are kept in `lines` (masked, as a user would see them). */
export function captureContext(verbosity: 'info' | 'debug' = 'debug'): CapturedContext {
  const lines: string[] = [];
  const mask = new SecretMask();
  const log = createLogger({
    verbosity,
    format: 'text',
    timestamps: false,
    mask,
    out: { write: (s: string) => lines.push(s) },
  });
  return { log, signal: new AbortController().signal, lines, mask };
}

export function newClient(
  ctx: CapturedContext,
  opts: Partial<Omit<RegistryClientOptions, 'ctx' | 'mask'>> & { keychain?: Keychain } = {},
): RegistryClient {
  return new RegistryClient({ ctx, mask: ctx.mask, keychain: anonymousKeychain, retries: 0, ...opts });
}

/** Writes an OCI layout with one image per entry, plus (with `indexTag`) an index over all of them. */
export async function writeLayout(
  dir: string,
  images: readonly { tag: string; image: Image; platform: { os: string; architecture: string; variant?: string } }[],
  indexTag?: string,
): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (bytes: Uint8Array): Promise<Digest> => {
    const d = sha256(bytes);
    await writeFile(join(blobs, d.slice(7)), bytes);
    return d;
  };
  const refs: object[] = [];
  const entries: object[] = [];
  for (const { tag, image, platform } of images) {
    for (const l of await image.layers()) {
      const chunks: Buffer[] = [];
      for await (const c of await l.compressed()) chunks.push(c as Buffer);
      await put(Buffer.concat(chunks));
    }
    await put(await image.rawConfig());
    const raw = await image.rawManifest();
    const digest = await put(raw);
    const desc = { mediaType: await image.mediaType(), digest, size: raw.byteLength };
    refs.push({ ...desc, annotations: { 'org.opencontainers.image.ref.name': tag } });
    entries.push({ ...desc, platform });
  }
  if (indexTag !== undefined) {
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries }));
    const digest = await put(index);
    refs.push({ mediaType: MediaType.OciIndex, digest, size: index.byteLength, annotations: { 'org.opencontainers.image.ref.name': indexTag } });
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: refs }));
}

export async function skopeo(...args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { maxBuffer: 16 << 20 });
  return stdout;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
