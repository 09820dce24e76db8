// The snapshotter waits out a clock tick after each scan only where the filesystem could give a write
// right after the scan the same ctime as the scan saw. These tests pin what skipping the wait rests on.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { ctimeIsFineGrained } from '../../src/snapshot/clock-probe.js';
import { Snapshotter } from '../../src/snapshot/snapshotter.js';
import { listTar, tempDir } from '../rootfs/fixtures.js';

let tmp: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(async () => {
  await tmp.cleanup();
});

describe('ctimeIsFineGrained', () => {
  it('leaves nothing behind in the directory it probes', () => {
    ctimeIsFineGrained(tmp.path);
    expect(readdirSync(tmp.path)).toEqual([]);
  });

  it('answers false where it cannot probe', () => {
    expect(ctimeIsFineGrained(join(tmp.path, 'missing'))).toBe(false);
  });

  it('a same-size rewrite with the old mtime put back, made right after init, is in the next layer', async () => {
    // Each round: a fresh baseline, then at once a write that a coarse ctime could hide.
    for (let round = 0; round < 20; round++) {
      const root = join(tmp.path, `root${round}`);
      await mkdir(root);
      await writeFile(join(root, 'f'), 'aaaa');
      const past = new Date('2020-01-01T00:00:00Z');
      await utimes(join(root, 'f'), past, past);
      const snap = new Snapshotter({ root, ignore: IgnoreList.empty(), workDir: tmp.path });
      await snap.init();
      await writeFile(join(root, 'f'), 'bbbb');
      await utimes(join(root, 'f'), past, past);
      const layer = await snap.snapshot(`l${round}.tar.gz`);
      expect(layer).not.toBeNull();
      const entries = await listTar(await (layer as NonNullable<typeof layer>).uncompressed());
      expect(entries.find((e) => e.name === 'f')?.content).toBe('bbbb');
    }
    expect(existsSync(join(tmp.path, 'root0', `.kiln-clock-probe-${process.pid}`))).toBe(false);
  });
});
