// A large layer unpacked on a worker thread. Unpacking is the main thread's work end to end: parsing the
// tar, then one synchronous syscall after another (unpack.ts says why synchronous), while the thread pool
// inflates and the main thread also hashes the stream and runs zlib's callbacks. Where creating a file
// is expensive (ext4 under an overlay, as in a container, costs tens to hundreds of microseconds an
// inode) the main thread is the bottleneck and the second core idles. Here the main thread keeps the
// stream (download, inflate, diffID check) and hands each chunk to a worker that runs the very same
// TarReader and LayerApplier: the same entries, the same syscalls in the same order, on another core.
//
// Used for layers of at least OFF_THREAD_MIN compressed bytes (starting a worker and loading kiln's
// code into it costs ~50 ms), and only where the worker can run kiln's compiled code (the bundle or
// dist/, not TypeScript sources under the test runner) and loads the native addon when the main thread
// has it: else the layer is unpacked on the main thread as before.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { VerifyingStream } from '../blob/digesting.js';
import { KilnError, UnpackError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { IgnoreList } from './ignore-list.js';
import { nativeFs } from './native-fs.js';
import { TarReader } from './tar-reader.js';
import { EntryRefusedError, LayerApplier, type UnpackOptions, type UnpackStats } from './layer-applier.js';

/** Layers smaller than this (compressed) are unpacked on the main thread. */
export const OFF_THREAD_MIN = 32 * 1024 * 1024;
/** Bytes handed to the worker and not yet applied, at most (the stream waits beyond). */
const MAX_IN_FLIGHT = 8 * 1024 * 1024;
/**
 * Chunks go to the worker in buffers of this size that it hands back once applied, to carry the next
 * ones: no buffer per chunk left for either thread's GC (a 200 MB layer made ~150 MB of such garbage).
 */
const CARRIER = 256 * 1024;

interface WorkerInit {
  readonly kilnUnpack: true;
  readonly root: string;
  readonly ignore: readonly string[];
  readonly what: string;
  readonly whiteouts: boolean | undefined;
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
  readonly within: string | undefined;
  readonly native: boolean;
  readonly debug: boolean;
  readonly paths: boolean;
}

type ToWorker = { readonly t: 'chunk'; readonly buf: Uint8Array } | { readonly t: 'end' };
type WireError = { readonly kind: 'refused'; readonly entry: string; readonly reason: string } | { readonly kind: 'kiln'; readonly message: string } | { readonly kind: 'other'; readonly message: string };
type FromWorker =
  | { readonly t: 'ready'; readonly native: boolean }
  | { readonly t: 'ack'; readonly buf: Uint8Array; readonly paths: readonly string[] }
  | { readonly t: 'log'; readonly obj: Record<string, unknown>; readonly msg: string }
  | { readonly t: 'done'; readonly stats: UnpackStats; readonly paths: readonly string[] }
  | { readonly t: 'error'; readonly error: WireError };

/** How a worker can load kiln's code here, or undefined when it cannot (TypeScript sources under a test runner). */
function workerSource(): { readonly file: string | URL; readonly eval: boolean } | undefined {
  const here = import.meta.url;
  if (here.endsWith('.cjs')) {
    // The bundle (dist/bundle/kiln.cjs, in the image /kaniko/app/...): loaded through bin/load-kiln.js,
    // with its code cache; its top level runs this module's worker branch below.
    const bundle = fileURLToPath(here);
    const loader = join(dirname(bundle), '../../bin/load-kiln.js');
    return { file: `require(${JSON.stringify(loader)}).runBundle(${JSON.stringify(bundle)});`, eval: true };
  }
  if (here.endsWith('.js')) return { file: new URL(here), eval: false };
  return undefined;
}

/**
 * `unpackLayer` on a worker thread (see the module comment); undefined, with nothing read from `tar`,
 * when no worker can do it here. `root` is already resolved.
 */
export async function unpackOffThread(root: string, tar: Readable, opts: UnpackOptions, verify: VerifyingStream | undefined): Promise<UnpackStats | undefined> {
  const source = workerSource();
  if (source === undefined || opts.native !== undefined) return undefined;
  const what = opts.what ?? 'layer';
  const init: WorkerInit = {
    kilnUnpack: true,
    root,
    ignore: opts.ignore.entries,
    what,
    whiteouts: opts.whiteouts,
    owner: opts.owner,
    within: opts.within,
    native: nativeFs() !== null,
    debug: opts.ctx?.log.isLevelEnabled('debug') ?? false,
    paths: opts.onPath !== undefined,
  };
  let worker: Worker;
  try {
    worker = new Worker(source.file, { eval: source.eval, workerData: init, stdout: false, stderr: false });
  } catch {
    return undefined;
  }
  // Every message from the worker, in order; `next` waits for the next one (or its failure to start/run).
  const inbox: FromWorker[] = [];
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  worker.on('message', (m: FromWorker) => {
    inbox.push(m);
    notify();
  });
  worker.on('error', (err) => {
    failure ??= err;
    notify();
  });
  worker.on('exit', (code) => {
    failure ??= new Error(`the unpack worker exited (${code})`);
    notify();
  });
  const next = async (): Promise<FromWorker> => {
    for (;;) {
      const m = inbox.shift();
      if (m !== undefined) {
        if (m.t !== 'log') return m;
        opts.ctx?.log.debug(m.obj, m.msg);
        continue;
      }
      if (failure !== undefined) throw failure;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };

  let ready: FromWorker;
  try {
    ready = await next();
  } catch {
    await worker.terminate();
    return undefined;
  }
  // The worker must apply capabilities and FIFOs as the main thread would: no addon there, no worker.
  if (ready.t !== 'ready' || ready.native !== init.native) {
    await worker.terminate();
    return undefined;
  }

  opts.ctx?.log.debug(`unpacking ${what} on a worker thread`);
  let inFlight = 0;
  const carriers: ArrayBuffer[] = [];
  const absorb = (m: FromWorker): UnpackStats | undefined => {
    switch (m.t) {
      case 'ack':
        inFlight -= m.buf.byteLength;
        if (m.buf.buffer.byteLength === CARRIER) carriers.push(m.buf.buffer as ArrayBuffer);
        for (const p of m.paths) opts.onPath?.(p);
        return undefined;
      case 'done':
        for (const p of m.paths) opts.onPath?.(p);
        return m.stats;
      case 'error':
        throw wireError(m.error, what);
      default:
        throw new KilnError('INTERNAL', `unpack worker: unexpected message ${m.t}`);
    }
  };
  const signal = opts.ctx?.signal;
  const send = async (source: AsyncIterable<Buffer>): Promise<UnpackStats> => {
    for await (const chunk of source) {
      signal?.throwIfAborted();
      // A copy the worker owns: zlib keeps writing into the buffer the chunk is a view of.
      const carrier = chunk.length <= CARRIER ? (carriers.pop() ?? new ArrayBuffer(CARRIER)) : new ArrayBuffer(chunk.length);
      const buf = new Uint8Array(carrier, 0, chunk.length);
      buf.set(chunk);
      // Counted before the transfer detaches `buf` (its length is 0 after).
      inFlight += chunk.length;
      worker.postMessage({ t: 'chunk', buf } satisfies ToWorker, [carrier]);
      while (inFlight > MAX_IN_FLIGHT) absorb(await next());
    }
    worker.postMessage({ t: 'end' } satisfies ToWorker);
    for (;;) {
      const stats = absorb(await next());
      if (stats !== undefined) return stats;
    }
  };
  let stats: UnpackStats | undefined;
  try {
    const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
      stats = await send(source);
    };
    if (verify === undefined) await pipeline(tar, consume);
    else await pipeline(tar, verify, consume);
  } catch (err) {
    if (err instanceof KilnError) throw err;
    throw new UnpackError(`${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    await worker.terminate();
  }
  if (stats === undefined) throw new KilnError('INTERNAL', 'unpack worker: no result');
  return stats;
}

function wireError(e: WireError, what: string): KilnError {
  switch (e.kind) {
    case 'refused': {
      // The same constructor, so the same message (it is built from these three).
      const err = new EntryRefusedError(what, e.entry, e.reason);
      return err;
    }
    case 'kiln':
      return new UnpackError(e.message);
    case 'other':
      return new UnpackError(`${what}: ${e.message}`);
  }
}

/** The worker's side: the same reader and applier as on the main thread, fed the chunks it is sent. */
function runWorker(init: WorkerInit, port: NonNullable<typeof parentPort>): void {
  const post = (m: FromWorker): void => port.postMessage(m);
  const native = nativeFs();
  post({ t: 'ready', native: native !== null });
  const paths: string[] = [];
  const ctx = {
    log: {
      debug: (obj: Record<string, unknown>, msg: string) => {
        if (init.debug) post({ t: 'log', obj, msg });
      },
    },
    signal: new AbortController().signal,
  } as unknown as RunContext;
  const applier = new LayerApplier(init.root, {
    ignore: IgnoreList.of(init.ignore),
    ctx,
    what: init.what,
    native: init.native ? native : null,
    ...(init.whiteouts !== undefined ? { whiteouts: init.whiteouts } : {}),
    ...(init.owner !== undefined ? { owner: init.owner } : {}),
    ...(init.within !== undefined ? { within: init.within } : {}),
    ...(init.paths ? { onPath: (rel: string) => paths.push(rel) } : {}),
  });
  const reader = new TarReader(applier);
  const fail = (err: unknown): void => {
    applier.abort();
    let error: WireError;
    if (err instanceof EntryRefusedError) error = { kind: 'refused', entry: err.entry, reason: err.reason };
    else if (err instanceof KilnError) error = { kind: 'kiln', message: err.message };
    else error = { kind: 'other', message: err instanceof Error ? err.message : String(err) };
    post({ t: 'error', error });
    port.close();
  };
  port.on('message', (m: ToWorker) => {
    try {
      if (m.t === 'chunk') {
        // The reader keeps no view of a chunk once push returns (split headers are copied): the
        // buffer goes back to carry another.
        reader.push(Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength));
        port.postMessage({ t: 'ack', buf: m.buf, paths: paths.splice(0) } satisfies FromWorker, [m.buf.buffer as ArrayBuffer]);
        return;
      }
      reader.finish();
      applier.finish();
      post({ t: 'done', stats: applier.stats(), paths: paths.splice(0) });
      port.close();
    } catch (err) {
      fail(err);
    }
  });
}

const init = isMainThread ? undefined : (workerData as Partial<WorkerInit> | undefined);
const port = parentPort;
// Started once the whole module graph has run: in the bundle this module's code comes before unpack.ts's
// (it imports it), whose LayerApplier the worker needs.
if (init?.kilnUnpack === true && port !== null) setImmediate(() => runWorker(init as WorkerInit, port));
