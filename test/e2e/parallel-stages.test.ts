// Independent stages built at the same time (--jobs): the same image as one at a time, each log line
// naming its stage, and a failing stage that cancels the others (their RUN processes killed, the work
// dir removed) and is named in the error. Concurrency is shown by a rendezvous, never by a clock: two
// stages that each wait for the other's mark in a shared cache mount can only both finish together.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { executor, manifestDigest, writeContext } from '../support/executor.js';
import { parseLogLines } from '../support/log-events-schema.js';
import { randomBytes } from 'node:crypto';

const run = promisify(execFile);

describe('parallel stages (--jobs)', () => {
  const registry = inject('registry');
  const images = inject('images');
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });
  const tempDir = async (prefix: string) => {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const context = async (files: Record<string, string>) => {
    const dir = await writeContext(files);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  const threeStages = [
    `FROM ${images.busybox} AS one`,
    'RUN mkdir /out && echo one > /out/one && sleep 0.3',
    `FROM ${images.busybox} AS two`,
    'RUN mkdir /out && echo two > /out/two && sleep 0.2',
    `FROM ${images.busybox} AS three`,
    'WORKDIR /out',
    'RUN echo three > three && sleep 0.1',
    `FROM ${images.busybox}`,
    'COPY --from=one /out/one /all/',
    'COPY --from=two /out/two /all/',
    'COPY --from=three /out/three /all/',
    '',
  ].join('\n');

  it('builds the same image with --jobs 3 as with --jobs 1 (--reproducible), and tags parallel lines with their stage', async () => {
    const ctx = await context({ Dockerfile: threeStages });
    const flags = ['--context', ctx, '--insecure', '--insecure-pull', '--reproducible'];
    const seq = await executor([...flags, '--destination', `${registry}/e2e/jobs:seq`, '--jobs', '1']);
    expect(seq.code, seq.stderr).toBe(0);
    const par = await executor([...flags, '--destination', `${registry}/e2e/jobs:par`, '--jobs', '3']);
    expect(par.code, par.stderr).toBe(0);
    expect(await manifestDigest(`${registry}/e2e/jobs:par`)).toBe(await manifestDigest(`${registry}/e2e/jobs:seq`));
    // kaniko's line, after the stage's name; one at a time: kaniko's line alone.
    expect(par.stderr).toMatch(/^INFO\[\d{4}\] \[two\] RUN mkdir \/out && echo two/m);
    expect(par.stderr).toMatch(/^INFO\[\d{4}\] \[three\] WORKDIR \/out$/m);
    expect(seq.stderr).toMatch(/^INFO\[\d{4}\] RUN mkdir \/out && echo two/m);
    expect(seq.stderr).not.toContain('[two]');
    // RUN's own output too, while stages overlap.
    const out = async (name: string) => {
      const dir = await context({ Dockerfile: [`FROM ${images.busybox} AS ${name}a`, 'RUN echo made-a; echo oops-a >&2', `FROM ${images.busybox} AS ${name}b`, 'RUN echo made-b', `FROM ${images.busybox}`, `COPY --from=${name}a /bin/busybox /a`, `COPY --from=${name}b /bin/busybox /b`, ''].join('\n') });
      return executor(['--context', dir, '--no-push', '--insecure-pull', '--jobs', name === 'p' ? '2' : '1']);
    };
    const [p, s] = [await out('p'), await out('s')];
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/^\[pa\] made-a$/m);
    expect(p.stdout).toMatch(/^\[pb\] made-b$/m);
    expect(p.stderr).toMatch(/^\[pa\] oops-a$/m);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^made-a$/m);
    expect(s.stdout).not.toContain('[sa]');
  });

  it('runs independent stages at the same time, and --log-format json gives each line its own stage', async () => {
    const id = randomBytes(6).toString('hex');
    const cacheDir = await tempDir('kiln-jobs-cache-');
    // Each stage marks its arrival and waits for the other's: built one after the other, the first gives up.
    const meet = (me: string, other: string) =>
      `RUN --mount=type=cache,id=${id},target=/meet,sharing=shared touch /meet/${me} && i=0; until [ -e /meet/${other} ]; do i=$((i+1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done`;
    const ctx = await context({
      Dockerfile: [`FROM ${images.busybox} AS left`, meet('left', 'right'), `FROM ${images.busybox} AS right`, meet('right', 'left'), `FROM ${images.busybox}`, 'COPY --from=left /bin/busybox /l', 'COPY --from=right /bin/busybox /r', ''].join('\n'),
    });
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--jobs', '2', '--mount-cache-dir', cacheDir, '--log-format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const { events, messages } = parseLogLines(r.stderr);
    const runLines = messages.filter((m) => typeof m['msg'] === 'string' && (m['msg'] as string).startsWith('RUN --mount'));
    expect(runLines.map((m) => [m['stage'], (m['msg'] as string).includes('touch /meet/left') ? 'left' : 'right']).sort()).toEqual([
      ['left', 'left'],
      ['right', 'right'],
    ]);
    // Every step event names the stage it belongs to.
    for (const e of events) if (e.event === 'step-end' && String(e.instruction).includes('/meet/')) expect(String(e.instruction)).toContain(`touch /meet/${String(e.stage)}`);
  });

  it('with the default --jobs, starts three stages that compute together on 2 cores, not two and then one', async () => {
    const id = randomBytes(6).toString('hex');
    const cacheDir = await tempDir('kiln-jobs-cache-');
    // Each stage marks its arrival, then spins (no sleep: its core stays busy, so no core looks idle)
    // until all three have arrived. With one slot a core, two would spin while the third waits for a
    // slot, and both give up after their iterations; started together, the three meet at once.
    const names = ['a', 'b', 'c'];
    const spin = (me: string) =>
      `RUN --mount=type=cache,id=${id},target=/meet,sharing=shared touch /meet/${me} && i=0; until [ -e /meet/a ] && [ -e /meet/b ] && [ -e /meet/c ]; do i=$((i+1)); [ $i -lt 2000000 ] || exit 9; done`;
    const ctx = await context({
      Dockerfile: [...names.flatMap((n) => [`FROM ${images.busybox} AS ${n}`, spin(n)]), `FROM ${images.busybox}`, ...names.map((n) => `COPY --from=${n} /bin/busybox /${n}`), ''].join('\n'),
    });
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--mount-cache-dir', cacheDir]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('cancels the other stages when one fails: error names the stage and line, RUN processes killed, work dir removed', async () => {
    const marker = `${40 + Math.floor(Math.random() * 50)}.${randomBytes(2).readUInt16BE()}`;
    const tmp = await tempDir('kiln-jobs-tmp-');
    const ctx = await context({
      Dockerfile: [`FROM ${images.busybox} AS slow`, `RUN sleep ${marker}`, `FROM ${images.busybox} AS bad`, 'RUN sleep 0.5; exit 3', `FROM ${images.busybox}`, 'COPY --from=slow /bin/busybox /s', 'COPY --from=bad /bin/busybox /b', ''].join('\n'),
    });
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--jobs', '2'], { env: { TMPDIR: tmp } });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/error building image: stage bad: Dockerfile:4 RUN sleep 0\.5; exit 3: failed to execute command: exit status 3/);
    // The slow stage's RUN did not outlive the build.
    const ps = await run('ps', ['-eo', 'args']);
    expect(ps.stdout).not.toContain(`sleep ${marker}`);
    expect(await readdir(tmp)).toEqual([]);
  });
});
