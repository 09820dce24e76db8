// A spooled base layer is read while it downloads (the unpack runs as the bytes arrive), and the read
// ends only when the download is complete; a broken download fails the reader. With retries, the
// reader waits for the verified file: a retry could replace bytes it would already have handed out.
// When the build ends, settle() stops the spool: nothing more is written into its directory.
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Layer } from '../../src/oci/image.js';
import { spoolingImage } from '../../src/sources/registry-spool.js';
import { captureContext, MemoryLayer, testImage } from '../registry/fixtures.js';

/** A layer whose compressed stream the test feeds by hand, one PassThrough per open. */
class FedLayer extends MemoryLayer {
  readonly opened: PassThrough[] = [];
  override async compressed(): Promise<Readable> {
    const s = new PassThrough();
    this.opened.push(s);
    return s;
  }
}

async function fedLayer(): Promise<FedLayer> {
  const m = await MemoryLayer.of({ 'blob.bin': randomBytes(600_000).toString('base64') });
  return new FedLayer(m.tar);
}

/** Reads `stream` into `into` as data comes; resolves when it ends. */
function collect(stream: Readable, into: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('data', (c: Buffer) => into.push(c));
    stream.once('end', resolve);
    stream.once('error', reject);
  });
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

const total = (bufs: Buffer[]) => bufs.reduce((n, b) => n + b.length, 0);

describe('spooled layers are read as they download', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-follow-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hands out the first bytes before the download ends, and ends only after it', async () => {
    const layer = await fedLayer();
    const image = spoolingImage(testImage([layer as Layer]), { dir, ctx: captureContext() });
    const [spooled] = await image.layers();
    const got: Buffer[] = [];
    let ended = false;
    const reading = collect(await spooled!.compressed(), got).then(() => (ended = true));
    await until(() => layer.opened.length === 1);
    const half = Math.floor(layer.gz.length / 2);
    layer.opened[0]!.write(layer.gz.subarray(0, half));
    await until(() => total(got) === half);
    expect(ended).toBe(false);
    layer.opened[0]!.end(layer.gz.subarray(half));
    await reading;
    expect(Buffer.concat(got)).toEqual(layer.gz);
    expect(await readdir(dir)).toEqual([(await layer.digest()).slice('sha256:'.length)]);
  });

  it('fails the reader when the download breaks off for good', async () => {
    const layer = await fedLayer();
    const image = spoolingImage(testImage([layer as Layer]), { dir, ctx: captureContext(), retries: 0 });
    const [spooled] = await image.layers();
    const got: Buffer[] = [];
    const reading = collect(await spooled!.compressed(), got);
    await until(() => layer.opened.length === 1);
    layer.opened[0]!.write(layer.gz.subarray(0, 1000));
    await until(() => total(got) === 1000);
    layer.opened[0]!.destroy(new Error('connection reset'));
    await expect(reading).rejects.toThrow(/download broke off: connection reset/);
  });

  it('with retries, hands out nothing until a retried download is complete and verified', async () => {
    const layer = await fedLayer();
    const image = spoolingImage(testImage([layer as Layer]), { dir, ctx: captureContext(), retries: 1 });
    const [spooled] = await image.layers();
    const got: Buffer[] = [];
    const reading = collect(await spooled!.compressed(), got);
    await until(() => layer.opened.length === 1);
    layer.opened[0]!.write(Buffer.from('not the blob at all'));
    layer.opened[0]!.destroy(new Error('connection reset'));
    await until(() => layer.opened.length === 2); // after the retry's back-off
    expect(total(got)).toBe(0);
    layer.opened[1]!.end(layer.gz);
    await reading;
    expect(Buffer.concat(got)).toEqual(layer.gz);
  });
});

describe('a spool stopped when its build ends', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-settle-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('settle: the running download ends (its partial file removed), the waiting one never starts', async () => {
    const first = await fedLayer();
    const second = await fedLayer();
    const stop = new AbortController();
    const image = spoolingImage(testImage([first as Layer, second as Layer]), { dir, concurrency: 1, ctx: { ...captureContext(), signal: stop.signal } });
    const all = image.spoolAll();
    all.catch(() => undefined);
    await until(() => first.opened.length === 1);
    first.opened[0]!.write(first.gz.subarray(0, 1000));
    await until(() => readdirSync(dir).length === 1);
    stop.abort();
    await image.settle();
    // Nothing left in the dir, and nothing that could still write there: the second layer was refused.
    expect(await readdir(dir)).toEqual([]);
    expect(second.opened.length).toBe(0);
    await expect(all).rejects.toThrow();
    expect(await readdir(dir)).toEqual([]);
  });

  it('settle on an image whose layers were never asked for resolves at once', async () => {
    const image = spoolingImage(testImage([(await fedLayer()) as Layer]), { dir, ctx: captureContext() });
    await image.settle();
    expect(await readdir(dir)).toEqual([]);
  });
});
