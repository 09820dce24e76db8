// --log-format and --verbosity, as kaniko's pipelines use them.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, writeContext } from '../support/executor.js';

describe('logging', () => {
  const images = inject('images');
  let ctx: string;
  beforeAll(async () => {
    ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN echo run-output\n` });
  });
  afterAll(async () => rm(ctx, { recursive: true, force: true }));

  it('--log-format json writes one JSON record per line, RUN output apart on stdout', async () => {
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--log-format', 'json']);
    expect(r.code).toBe(0);
    const records = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(records.length).toBeGreaterThan(3);
    expect(records.every((x) => typeof x.msg === 'string' && typeof x.level === 'string')).toBe(true);
    expect(records.map((x) => x.msg)).toContain('RUN echo run-output');
    expect(r.stdout).toBe('run-output\n');
  });

  it('--verbosity=error keeps info lines out, debug adds detail', async () => {
    const quiet = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--verbosity=error']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    const loud = await executor(['--context', ctx, '--no-push', '--insecure-pull', '-v', 'debug']);
    expect(loud.stderr).toMatch(/^DEBU\[\d{4}\] /m);
    expect(loud.stderr).toMatch(/^INFO\[\d{4}\] Taking snapshot/m);
  });

  it('--log-timestamp prints full timestamps instead of seconds since start', async () => {
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--log-timestamp']);
    expect(r.stderr).toMatch(/^INFO\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/m);
  });
});
