// A tiny in-memory Layer for sink tests: a gzip tar of a few files, with both digests computed
// up front. Test-only: real layers never sit in memory.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { sha256Digest, type Digest } from '../../src/oci/digest.js';
import type { Layer } from '../../src/oci/image.js';
import { MediaType } from '../../src/oci/media-types.js';
import { silentLogger } from '../../src/log/logger.js';
import type { RunContext } from '../../src/log/run-context.js';

export interface TestFile {
  readonly path: string;
  readonly content: string;
  readonly mode?: number;
}

export async function tarBytes(files: readonly TestFile[]): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(Buffer.from(c as Uint8Array));
  })();
  for (const f of files) p.entry({ name: f.path, mode: f.mode ?? 0o644, mtime: new Date(0) }, f.content);
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

function sha(bytes: Uint8Array): Digest {
  return sha256Digest(createHash('sha256').update(bytes).digest('hex'));
}

export function testContext(): RunContext {
  return { log: silentLogger(), signal: new AbortController().signal };
}

export interface TestLayer extends Layer {
  readonly gz: Buffer;
  readonly tar: Buffer;
}

/** A gzip layer holding `files`. With `failAfter`, compressed() emits that many bytes and then errors. */
export async function gzipLayer(files: readonly TestFile[], opts: { failAfter?: number } = {}): Promise<TestLayer> {
  const tar = await tarBytes(files);
  const gz = gzipSync(tar);
  const digest = sha(gz);
  const diffId = sha(tar);
  return {
    gz,
    tar,
    digest: async () => digest,
    diffId: async () => diffId,
    size: async () => gz.byteLength,
    mediaType: async () => MediaType.OciLayerGzip,
    compressed: async () => {
      const failAfter = opts.failAfter;
      if (failAfter === undefined) return Readable.from([gz]);
      let sent = false;
      return new Readable({
        read() {
          if (sent) return;
          sent = true;
          this.push(gz.subarray(0, failAfter));
          setImmediate(() => this.destroy(new Error('layer source broke midway')));
        },
      });
    },
    uncompressed: async () => Readable.from([tar]),
  };
}
