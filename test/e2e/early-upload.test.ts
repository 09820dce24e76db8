// Large layers are uploaded while they are written (src/builder/early-uploads.ts): the push then finds
// them in place. Checked against the real registry (skopeo copies the image back, verifying every
// digest), and through a proxy that refuses the streamed upload, which the push must make up for.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../registry/fault-proxy.js';
import { executor, writeContext } from '../support/executor.js';

const run = promisify(execFile);

/** skopeo copies the image into a dir: every blob is read back and checked against its digest. */
async function copyBack(ref: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-early-'));
  try {
    await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `dir:${dir}`], { maxBuffer: 16 << 20 });
    return (await readdir(dir)).filter((f) => /^[0-9a-f]{64}$/.test(f));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('large layers uploaded while they are written', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  let proxy: FaultProxy;

  beforeAll(async () => {
    ctx = await writeContext({
      // 40 MB that gzip cannot shrink: the layer passes the 8 MiB threshold long before it is complete.
      Dockerfile: [`FROM ${images.busybox}`, 'RUN head -c 40000000 /dev/urandom > /big.bin', 'RUN echo small > /small.txt', ''].join('\n'),
    });
    proxy = await startFaultProxy(registry);
  });

  afterAll(async () => {
    await proxy?.stop();
    await rm(ctx, { recursive: true, force: true });
  });

  it('streams the large layer before the push, which then uploads only the rest', async () => {
    const dest = `${registry}/e2e/early-upload:1`;
    const r = await executor(['--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull', '-v', 'debug']);
    expect(r.code, r.stderr).toBe(0);
    const streamed = /uploaded layer (sha256:[0-9a-f]{64}) \((\d+) bytes\) to \S+ while it was written/.exec(r.stderr);
    expect(streamed, r.stderr).not.toBeNull();
    expect(Number(streamed?.[2])).toBeGreaterThan(8 * 1024 * 1024);
    // The push's HEAD finds it; the small layer and the config are uploaded by the push as before.
    expect(r.stderr).toContain(`blob ${streamed?.[1]} already in ${registry}/e2e/early-upload`);
    expect(r.stderr).not.toMatch(new RegExp(`uploaded blob ${streamed?.[1]}`));
    const blobs = await copyBack(dest);
    expect(blobs).toContain(streamed?.[1]?.slice('sha256:'.length));
  });

  it('leaves a COPY\'s layer and a --reproducible build\'s to the push (their digest may be in the registry already)', async () => {
    const copyCtx = await writeContext({ 'big.bin': randomBytes(15_000_000).toString('latin1'), Dockerfile: [`FROM ${images.busybox}`, 'COPY big.bin /big.bin', ''].join('\n') });
    try {
      const copied = await executor(['--context', `dir://${copyCtx}`, '--destination', `${registry}/e2e/early-upload-copy:1`, '--insecure', '--insecure-pull', '-v', 'debug']);
      expect(copied.code, copied.stderr).toBe(0);
      expect(copied.stderr).not.toContain('while it was written');
      const reproducible = await executor(['--context', `dir://${ctx}`, '--destination', `${registry}/e2e/early-upload-repro:1`, '--insecure', '--insecure-pull', '--reproducible', '-v', 'debug']);
      expect(reproducible.code, reproducible.stderr).toBe(0);
      expect(reproducible.stderr).not.toContain('while it was written');
    } finally {
      await rm(copyCtx, { recursive: true, force: true });
    }
  });

  it('pushes the layer as usual when the registry refuses the streamed upload', async () => {
    proxy.fault = (req) => (req.method === 'PATCH' ? { status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"no streaming today"}]}' } : undefined);
    const dest = `${proxy.host}/e2e/early-upload-refused:1`;
    const r = await executor(['--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull', '-v', 'debug']);
    proxy.fault = undefined;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/uploading a layer to \S+ while it was written failed \(the push uploads it\)/);
    const big = /uploaded blob (sha256:[0-9a-f]{64}) \((\d+) bytes\)/g;
    const sizes = [...r.stderr.matchAll(big)].map((m) => Number(m[2]));
    expect(sizes.some((n) => n > 8 * 1024 * 1024)).toBe(true);
    expect(proxy.requests.some((q) => q.method === 'DELETE' && q.path.includes('/e2e/early-upload-refused/blobs/uploads/'))).toBe(true);
    await copyBack(`${registry}/e2e/early-upload-refused:1`);
  });
});
