// The layer downloads a build runs into its work dir (base-blobs/), stopped and waited for when the
// build ends. They run in the background (prefetchBases starts every base's at once; a stage that
// failed or was cancelled leaves its own going), and one still writing while the work dir is removed
// makes the removal fail (ENOTEMPTY, which then hid the build's own error) or leaves files behind.
import type { SpoolingImage } from '../sources/registry-spool.js';

export class BuildDownloads {
  readonly #stop = new AbortController();
  readonly #images: SpoolingImage[] = [];
  /** The build's signal, aborted as well by `stop`: the one the spools download under. */
  readonly signal: AbortSignal;

  constructor(build: AbortSignal) {
    this.signal = AbortSignal.any([build, this.#stop.signal]);
  }

  /** Tracks a spooling image of this build (its downloads must use `signal`). */
  add(image: SpoolingImage): SpoolingImage {
    this.#images.push(image);
    return image;
  }

  /**
   * Cuts off every download still running and resolves when none is left. After the outputs are
   * written: a push may read a base layer from its download until then.
   */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#images.map((i) => i.settle()));
  }
}
