// Layers uploaded while they are being written. A large layer's compression and its upload used to run
// one after the other (the push came after the build); now, once a layer of an output stage has more
// than STREAM_ABOVE compressed bytes in its file, its upload to the first destination starts and follows
// the file as it grows (RegistryClient.streamBlob: one streamed PATCH, as kaniko uploads), and the PUT
// of its digest goes when the layer is complete. The push at the end then finds the blob there (its HEAD
// says so) and sends only what is missing. A failed early upload costs nothing but the bytes sent: the
// push uploads that blob as it always did. Small layers are left to the push (a few round trips), and
// so are layers whose digest is likely in the registry already (a COPY's, a --reproducible build's: see
// StageRootfs.snapshot), which the push's HEAD would spare from being sent at all.
import { setTimeout as sleep } from 'node:timers/promises';
import type { LayerWriting } from '../blob/layer-file.js';
import { inBackground } from '../log/log-scope.js';
import type { RunContext } from '../log/run-context.js';
import { counted } from '../log/transfers.js';
import type { RegistryClient } from '../registry/client.js';

/** Compressed bytes a layer must reach before it is uploaded while written. */
export const STREAM_ABOVE = 8 * 1024 * 1024;
const POLL_MS = 20;

export class EarlyUploads {
  readonly #client: RegistryClient;
  readonly #registry: string;
  readonly #repository: string;
  readonly #ctx: RunContext;
  readonly #running = new Set<Promise<void>>();
  readonly #pollMs: number;

  constructor(
    client: RegistryClient,
    destination: { readonly registry: string; readonly repository: string },
    ctx: RunContext,
    opts: { readonly pollMs?: number } = {},
  ) {
    this.#pollMs = opts.pollMs ?? POLL_MS;
    this.#client = client;
    this.#registry = destination.registry;
    this.#repository = destination.repository;
    this.#ctx = ctx;
  }

  /** A layer file being written (Snapshotter's hook): uploaded as it grows if it gets large enough. */
  watch(writing: LayerWriting): void {
    // It goes on after the step that wrote the layer: its lines keep naming that step.
    const p = inBackground(this.#ctx, () => this.#upload(writing));
    this.#running.add(p);
    void p.finally(() => this.#running.delete(p));
  }

  /** Waits for every early upload (each ends, uploaded or given up, never with an error). */
  async settle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running]);
  }

  async #upload(writing: LayerWriting): Promise<void> {
    let ended = false;
    // The wait between two looks at the file ends when the layer does: a small layer's push (which
    // settle() holds up) starts at once, not up to a poll interval later.
    const end = new AbortController();
    const onEnd = (): void => {
      ended = true;
      end.abort();
    };
    writing.done.then(onEnd, onEnd);
    while (!ended && writing.written() < STREAM_ABOVE) await sleep(this.#pollMs, undefined, { signal: end.signal }).catch(() => undefined);
    if (ended) return; // small, or failed: the push handles it (or nothing does)
    const where = `${this.#registry}/${this.#repository}`;
    const digest = writing.done.then((l) => l.digest());
    // Awaited by streamBlob only after the bytes are sent: a failure before that must not go unhandled.
    digest.catch(() => {});
    const transfer = this.#ctx.transfers?.start({ kind: 'upload', label: 'a layer being written' });
    try {
      await this.#client.streamBlob(this.#registry, this.#repository, () => (transfer === undefined ? writing.follow() : counted(writing.follow(), transfer)), digest);
      const layer = await writing.done;
      transfer?.end({ bytes: await layer.size(), digest: await layer.digest() });
      this.#ctx.log.debug(`uploaded layer ${await layer.digest()} (${await layer.size()} bytes) to ${where} while it was written`);
    } catch (err) {
      transfer?.fail();
      if (this.#ctx.signal.aborted) return;
      this.#ctx.log.debug(`uploading a layer to ${where} while it was written failed (the push uploads it): ${(err as Error).message}`);
    }
  }
}
