// The lock kiln builds take around the tmpfs decision (src/builder/machine-lock.ts): one holder at a
// time across processes, a bounded wait that says why it gave up, and released by the kernel when the
// holder is killed, so a SIGKILLed build never leaves the others waiting.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { takeMachineLock } from '../../src/builder/machine-lock.js';
import { captureContext } from '../registry/fixtures.js';

const DIST_LOCK = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'dist/builder/machine-lock.js');

describe('takeMachineLock', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-lock-'));
    file = join(dir, 'decide.lock');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lets one holder in at a time; the next gets it once the first releases', async () => {
    const ctx = captureContext();
    const first = await takeMachineLock(file, 5000, ctx);
    expect(first.held).toBe(true);
    const busy = await takeMachineLock(file, 1000, ctx);
    expect(busy).toEqual({ held: false, why: `another kiln held ${file} for 1 s` });
    const waiting = takeMachineLock(file, 10_000, ctx);
    if (first.held) await first.lock.release();
    const second = await waiting;
    expect(second.held).toBe(true);
    if (second.held) await second.lock.release();
  });

  it('is released when its holder is SIGKILLed', async () => {
    // Another process (kiln as built) takes the lock and never lets go.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `const { takeMachineLock } = await import(${JSON.stringify(DIST_LOCK)}); const ctx = { log: { debug() {}, info() {}, warn() {}, error() {} }, signal: new AbortController().signal }; const o = await takeMachineLock(${JSON.stringify(file)}, 5000, ctx); console.log(o.held ? 'held' : o.why); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const said = await new Promise<string>((r) => holder.stdout.once('data', (b: Buffer) => r(b.toString().trim())));
    expect(said).toBe('held');
    const ctx = captureContext();
    expect((await takeMachineLock(file, 1000, ctx)).held).toBe(false);
    holder.kill('SIGKILL');
    const started = Date.now();
    const after = await takeMachineLock(file, 5000, ctx);
    expect(after.held).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
    if (after.held) await after.lock.release();
  });

  it('gives up at once when the build is interrupted', async () => {
    const ctx = captureContext();
    const first = await takeMachineLock(file, 5000, ctx);
    const controller = new AbortController();
    const waiting = takeMachineLock(file, 30_000, { ...ctx, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    expect(await waiting).toEqual({ held: false, why: 'interrupted' });
    if (first.held) await first.lock.release();
  });
});
