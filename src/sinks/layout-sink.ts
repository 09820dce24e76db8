// `--oci-layout-path`: writes the built image as an OCI image layout, as kaniko does with
// go-containerregistry's `layout.Write(path, empty.Index)` followed by `AppendImage(image)`:
//   - `oci-layout` is (re)written;
//   - blobs already present under blobs/<alg>/ are kept (a layout dir can be reused across builds);
//   - index.json is replaced by an index holding exactly this image's descriptor
//     (mediaType, size, digest; no ref name unless `refName` is given), indented like Go's
//     json.MarshalIndent(index, "", "   ").
// A new directory is staged next to its final path and renamed into place, so a failed write leaves
// nothing at `dir`; in an existing directory every file is written to a temp name and renamed, and
// index.json goes last, so the previous index.json stays valid until the new image is complete.
import { randomBytes } from 'node:crypto';
import { createWriteStream, type Stats, type WriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VerifyingStream } from '../blob/digesting.js';
import { writeStreamClosed } from '../blob/write-stream-closed.js';
import { KilnError, OutputError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { digestAlgorithm, digestHex, type Digest } from '../oci/digest.js';
import type { Image } from '../oci/image.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageIndex } from '../oci/schemas.js';
import { validateImage } from '../oci/validate.js';

export interface LayoutSinkOptions {
  readonly ctx: RunContext;
  /**
   * Adds `org.opencontainers.image.ref.name` to the index.json entry. kaniko writes none (skopeo
   * `oci:DIR` still finds the single image; `umoci --image DIR:TAG` needs one).
   */
  readonly refName?: string;
}

/** go-containerregistry's `oci-layout` bytes, byte for byte. */
const OCI_LAYOUT_FILE = '{\n    "imageLayoutVersion": "1.0.0"\n}';
const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** Writes `image` as an OCI image layout at `dir`; returns the descriptor recorded in index.json. */
export async function writeOciLayout(image: Image, dir: string, opts: LayoutSinkOptions): Promise<Descriptor> {
  await validateImage(image, `image for OCI layout ${dir}`);
  const existing = await statOrUndefined(dir);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new OutputError(`OCI layout path ${dir} exists and is not a directory`);
  }
  if (existing !== undefined) return writeInto(image, dir, opts);

  await mkdir(dirname(dir), { recursive: true }).catch((err: unknown) => {
    throw new OutputError(`creating parent of OCI layout ${dir}: ${messageOf(err)}`, { cause: err });
  });
  const staging = join(dirname(dir), `.${basename(dir)}.kiln-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(staging);
    const desc = await writeInto(image, staging, opts);
    await rename(staging, dir);
    return desc;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw wrap(err, `writing OCI layout ${dir}`);
  }
}

async function writeInto(image: Image, dir: string, opts: LayoutSinkOptions): Promise<Descriptor> {
  const { signal, log } = opts.ctx;
  try {
    await writeSmallFile(join(dir, 'oci-layout'), Buffer.from(OCI_LAYOUT_FILE));
    for (const layer of await image.layers()) {
      signal.throwIfAborted();
      const digest = await layer.digest();
      const size = await layer.size();
      await writeBlob(dir, digest, size, async () => layer.compressed(), signal);
    }
    const rawConfig = await image.rawConfig();
    await writeBlob(dir, await image.configName(), rawConfig.byteLength, async () => Readable.from([rawConfig]), signal);
    const rawManifest = await image.rawManifest();
    const digest = await image.digest();
    await writeBlob(dir, digest, rawManifest.byteLength, async () => Readable.from([rawManifest]), signal);

    const desc: Descriptor = { mediaType: await image.mediaType(), size: rawManifest.byteLength, digest };
    if (opts.refName !== undefined) desc.annotations = { [REF_NAME_ANNOTATION]: opts.refName };
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [desc] };
    signal.throwIfAborted();
    await writeSmallFile(join(dir, 'index.json'), Buffer.from(JSON.stringify(index, null, 3)));
    log.debug({ dir, digest }, 'wrote OCI layout');
    return desc;
  } catch (err) {
    throw wrap(err, `writing OCI layout ${dir}`);
  }
}

/** Streams one blob into blobs/<alg>/<hex>, verifying digest and size; an existing complete blob is kept. */
async function writeBlob(
  dir: string,
  digest: Digest,
  size: number,
  open: () => Promise<Readable>,
  signal: AbortSignal,
): Promise<void> {
  const blobDir = join(dir, 'blobs', digestAlgorithm(digest));
  const final = join(blobDir, digestHex(digest));
  // Blobs only ever appear under their final name complete (temp + rename), so a matching size
  // means a previous build wrote the same bytes.
  const have = await statOrUndefined(final);
  if (have !== undefined && have.isFile() && have.size === size) return;
  await mkdir(blobDir, { recursive: true });
  const tmp = tempSibling(final);
  let out: WriteStream | undefined;
  try {
    const source = await open();
    out = createWriteStream(tmp, { mode: 0o644 });
    await pipeline(source, new VerifyingStream(`blob ${digest}`, digest, size), out, { signal });
    await rename(tmp, final);
  } catch (err) {
    if (out !== undefined) await writeStreamClosed(out);
    await rm(tmp, { force: true });
    throw err;
  }
}

async function writeSmallFile(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = tempSibling(path);
  try {
    await writeFile(tmp, bytes, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.kiln-${randomBytes(6).toString('hex')}`);
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OutputError(`stat ${path}: ${messageOf(err)}`, { cause: err });
  }
}

function wrap(err: unknown, what: string): KilnError {
  if (err instanceof KilnError) return err;
  return new OutputError(`${what}: ${messageOf(err)}`, { cause: err });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
