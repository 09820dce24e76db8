// RUN in sandbox mode is isolated: its own PID, mount and UTS namespaces, a read-only /proc/sys,
// and nothing it writes reaches the host's own files.
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, unpackWithUmoci, writeContext, type UnpackedImage } from '../support/executor.js';

describe('RUN isolation in sandbox mode', () => {
  const registry = inject('registry');
  const images = inject('images');
  const marker = `/tmp/kiln-escape-${process.pid}-${Date.now()}`;
  const hostName = hostname();
  let ctx: string;
  let unpacked: UnpackedImage;
  let code: number;
  let stderr: string;

  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: [
        `FROM ${images.busybox}`,
        // Each probe records what it saw; none may fail the build.
        `RUN echo inside > ${marker} && echo $$ > /pid && hostname > /hostname-seen`,
        'RUN (echo evil > /proc/sys/kernel/hostname) 2> /procsys-err; echo $? > /procsys-status',
        'RUN ls /proc | grep -E "^[0-9]+$" | wc -l > /proc-count && cat /proc/1/cmdline | tr "\\0" " " > /pid1',
        'RUN mount -t tmpfs none /mnt 2> /mount-err; echo $? > /mount-status',
        '',
      ].join('\n'),
    });
    const r = await executor(['--context', ctx, '--destination', `${registry}/e2e/sandbox:1`, '--insecure', '--insecure-pull']);
    code = r.code;
    stderr = r.stderr;
    if (r.code === 0) unpacked = await unpackWithUmoci(`docker://${registry}/e2e/sandbox:1`);
  });
  afterAll(async () => {
    await unpacked?.cleanup();
    await rm(ctx, { recursive: true, force: true });
    await rm(marker, { force: true });
  });

  const file = (p: string) => readFile(join(unpacked.rootfs, p), 'utf8');

  it('builds', () => {
    expect(stderr).not.toContain('error building image');
    expect(code).toBe(0);
  });

  it('writes into the image, never onto the host', async () => {
    expect(await file(marker)).toBe('inside\n');
    expect(existsSync(marker)).toBe(false);
  });

  it('runs in its own PID namespace, where the command is a low pid and few processes exist', async () => {
    expect(Number(await file('/pid'))).toBeLessThan(10);
    expect(Number(await file('/proc-count'))).toBeLessThan(10);
  });

  it('gets its own hostname and cannot change the host\'s through /proc/sys', async () => {
    expect((await file('/hostname-seen')).trim()).toBe('kiln');
    expect((await file('/procsys-status')).trim()).not.toBe('0');
    expect(await file('/procsys-err')).toMatch(/Read-only file system/);
    expect(hostname()).toBe(hostName);
  });

  it('cannot mount filesystems (CAP_SYS_ADMIN is dropped)', async () => {
    expect((await file('/mount-status')).trim()).not.toBe('0');
  });
});
