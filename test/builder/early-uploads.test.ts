// EarlyUploads looks at a layer file every poll interval while it is written; the push waits for it
// (settle) before it starts. A small layer's end must end that wait at once: the poll's sleep used to
// run out first, which held every push up by up to an interval (~17 ms of a small build's ~300).
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { FileLayer, LayerWriting } from '../../src/blob/layer-file.js';
import { EarlyUploads } from '../../src/builder/early-uploads.js';
import { captureContext, newClient } from '../registry/fixtures.js';

/** A layer being written that stays small and ends after `ms`. */
function smallWriting(ms: number): LayerWriting {
  const done = sleep(ms).then(() => ({}) as FileLayer);
  return {
    written: () => 100,
    done,
    follow: () => {
      throw new Error('a small layer is never followed');
    },
  };
}

describe('EarlyUploads', () => {
  it('settles when a small layer ends, not at the next look at its file', async () => {
    const ctx = captureContext();
    const client = newClient(ctx);
    // A poll interval no test would wait for: only the layer's end can settle this in time.
    const uploads = new EarlyUploads(client, { registry: '127.0.0.1:1', repository: 'kiln/none' }, ctx, { pollMs: 60_000 });
    uploads.watch(smallWriting(20));
    const outcome = await Promise.race([uploads.settle().then(() => 'settled'), sleep(5_000).then(() => 'still waiting')]);
    client.close();
    expect(outcome).toBe('settled');
    // Nothing was uploaded: the push handles small layers.
    expect(ctx.lines.join('')).not.toContain('while it was written');
  });
});
