// bin/load-kiln.js runs dist/bundle/kiln.cjs with its V8 code cache, and must never run a cache that
// does not match (V8 aborts on a corrupt one) nor a bundle older than dist/ (stale code).
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A copy of the executor's files: bin/, the bundle and its cache, the addon where the bundle looks. */
async function executorTree(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-loader-'));
  await cp(join(REPO, 'bin'), join(dir, 'bin'), { recursive: true });
  await cp(join(REPO, 'dist/bundle'), join(dir, 'dist/bundle'), { recursive: true });
  await mkdir(join(dir, 'build'));
  await symlink(join(REPO, 'build/Release'), join(dir, 'build/Release'));
  return dir;
}

async function help(dir: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(dir, 'bin/executor.js'), '--help']);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; signal?: string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.signal ?? ''} ${e.stderr ?? ''}` };
  }
}

describe('bundle loader', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await executorTree();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the bundle with its cache', async () => {
    const r = await help(dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--destination');
  });

  it('ignores a cache whose data was corrupted (V8 would abort on it) and still runs', async () => {
    const file = join(dir, 'dist/bundle/kiln.cjs.v8cache');
    const cache = await readFile(file);
    for (let i = 200; i < cache.length; i += 97) cache[i] = (cache[i] ?? 0) ^ 0xff;
    await writeFile(file, cache);
    const r = await help(dir);
    expect(r.stderr).not.toMatch(/SIGABRT|Check failed|FATAL/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--destination');
  });

  it('ignores a truncated cache, and one made for another bundle', async () => {
    const file = join(dir, 'dist/bundle/kiln.cjs.v8cache');
    const cache = await readFile(file);
    await writeFile(file, cache.subarray(0, 40));
    expect((await help(dir)).code).toBe(0);
    cache.write('0'.repeat(32), 0, 'latin1');
    await writeFile(file, cache);
    expect((await help(dir)).code).toBe(0);
  });

  it('runs dist/ instead of a bundle older than it', async () => {
    await mkdir(join(dir, 'dist/cli'), { recursive: true });
    await writeFile(join(dir, 'dist/cli/main.js'), 'export async function main() { process.stdout.write("from dist\\n"); return 0; }\n');
    await writeFile(join(dir, 'dist/package.json'), '{"type":"module"}\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(join(dir, 'dist/bundle/kiln.cjs'), old, old);
    const r = await help(dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('from dist\n');
  });
});
