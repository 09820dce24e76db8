// Unpacks one layer tar onto a root directory: on the main thread, or on a worker thread for a large
// layer (unpack-worker.ts). What applying an entry means, and why it is safe, is in layer-applier.ts.
import { realpath } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VerifyingStream } from '../blob/digesting.js';
import { KilnError, UnpackError } from '../errors.js';
import { errorText, LayerApplier, type UnpackOptions, type UnpackStats } from './layer-applier.js';
import { TarReader } from './tar-reader.js';
import { unpackOffThread } from './unpack-worker.js';

export { EntryRefusedError, type UnpackOptions, type UnpackStats } from './layer-applier.js';

export async function unpackLayer(root: string, tar: Readable, opts: UnpackOptions): Promise<UnpackStats> {
  const real = await realpath(root);
  // A pulled layer's stream already ends in a check against its diffID (registry-source.ts): hashing
  // its ~hundreds of MB a second time would only cost the main thread (~0.6 ms a MB).
  const verify =
    opts.expectedDiffId === undefined || (tar instanceof VerifyingStream && tar.expected === opts.expectedDiffId)
      ? undefined
      : new VerifyingStream(opts.what ?? 'layer', opts.expectedDiffId);
  if (opts.offThread === true) {
    const stats = await unpackOffThread(real, tar, opts, verify);
    if (stats !== undefined) return stats;
  }
  const applier = new LayerApplier(real, opts);
  const reader = new TarReader(applier);
  const signal = opts.ctx?.signal;
  const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      reader.push(chunk);
    }
    reader.finish();
  };
  try {
    if (verify === undefined) await pipeline(tar, consume);
    else await pipeline(tar, verify, consume);
  } catch (err) {
    applier.abort();
    if (err instanceof KilnError) throw err;
    throw new UnpackError(`${opts.what ?? 'layer'}: ${errorText(err)}`, { cause: err });
  }
  applier.finish();
  return applier.stats();
}

