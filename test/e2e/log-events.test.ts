// --log-format json events and the build summary, from real builds against the test registry: every
// line checked against docs/log-events.md's schema, and the summary's numbers against the registry.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, skopeoJson, writeContext } from '../support/executor.js';
import { parseLogLines, summarySchema } from '../support/log-events-schema.js';

describe('JSON events and the build summary', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  const tag = `${registry}/test/events:${process.pid}`;
  beforeAll(async () => {
    ctx = await writeContext({
      Dockerfile: `FROM ${images.busybox} AS build\nRUN head -c 200000 /dev/urandom > /blob\nENV A=1\nFROM build AS unused\nRUN echo never\nFROM ${images.busybox}\nCOPY --from=build /blob /blob\nRUN echo final\n`,
      'fail/Dockerfile': `FROM ${images.busybox}\nRUN echo ok\nRUN exit 3\n`,
    });
  });
  afterAll(async () => rm(ctx, { recursive: true, force: true }));

  it('every line of a cached, pushed multi-stage build fits the schema; steps, layers and the push add up', async () => {
    const args = ['--context', ctx, '-d', tag, '--insecure', '--insecure-pull', '--cache', '--cache-repo', `${registry}/test/events-cache-${process.pid}`, '--log-format', 'json'];
    const first = await executor([...args, '--summary-file', join(ctx, 'first.json')]);
    expect(first.code, first.stderr).toBe(0);
    const { events, messages } = parseLogLines(first.stderr);
    // kaniko's lines are still there, with the step's fields when a step wrote them.
    const run = messages.find((m) => m.msg === 'RUN head -c 200000 /dev/urandom > /blob');
    expect(run).toMatchObject({ stage: 'build', step: 1, line: 2, instruction: 'RUN head -c 200000 /dev/urandom > /blob' });
    const starts = events.filter((e) => e.event === 'step-start');
    const ends = events.filter((e) => e.event === 'step-end');
    expect(starts.map((e) => `${e.stage}:${e.line}`)).toEqual(['build:2', 'build:3', 'stage-2:7', 'stage-2:8']);
    expect(ends.map((e) => `${e.stage}:${e.line}:${e.status}`)).toEqual(['build:2:ok', 'build:3:ok', 'stage-2:7:ok', 'stage-2:8:ok']);
    expect(ends.filter((e) => (e.instruction ?? '').startsWith('RUN')).every((e) => e.exit_code === 0)).toBe(true);
    expect(events.filter((e) => e.event === 'cache-miss').map((e) => e.line)).toEqual([2, 8]);
    const layers = events.filter((e) => e.event === 'layer');
    expect(layers.map((e) => e.line)).toEqual([2, 7]);
    expect(events.some((e) => e.event === 'pull' && e.image === images.busybox)).toBe(true);
    const push = events.find((e) => e.event === 'push');
    const end = events.at(-1);
    expect(end).toMatchObject({ event: 'build-end', status: 'success', exit_code: 0, digest: push?.event === 'push' ? push.digest : 'none' });
    // The pushed image holds the layers the events name, with the sizes they say.
    const manifest = (await skopeoJson(['inspect', '--tls-verify=false', '--raw', `docker://${tag}`])) as { layers: { digest: string; size: number }[] };
    const copied = layers[1];
    expect(manifest.layers).toContainEqual({ mediaType: expect.any(String), digest: copied?.event === 'layer' ? copied.digest : '', size: copied?.event === 'layer' ? copied.size : -1 });
    const summary = summarySchema.parse(JSON.parse(await readFile(join(ctx, 'first.json'), 'utf8')));
    expect(summary.skipped).toEqual(['unused']);
    expect(summary.stages.map((s) => s.steps.map((p) => p.layer?.size ?? null))).toEqual([
      [layers[0]?.event === 'layer' ? layers[0].size : -1, null],
      [copied?.event === 'layer' ? copied.size : -1, null],
    ]);
    expect(summary.pushed.blobs).toBeGreaterThan(0);
    // A cache push runs in the background while later steps run: its lines name the step whose layer
    // it stores. The build's next step starts before the push's first request is answered, so a line
    // that named the step running then would name another step, or none.
    const cacheRepo = `${registry}/test/events-cache-${process.pid}`;
    const fieldsOf = (l: { stage?: string | undefined; step?: number | undefined; line?: number | undefined }): string => `${l.stage}:${l.step}:${l.line}`;
    const stored = messages.filter((m) => m.msg.startsWith(`Pushing layer ${cacheRepo}:`));
    expect(stored.map(fieldsOf)).toEqual(['build:1:2', 'stage-2:2:8']);
    for (const s of stored) {
      const ref = s.msg.slice('Pushing layer '.length, -' to cache now'.length);
      const pushing = messages.filter((m) => m.msg === `Pushing image to ${ref}`);
      expect(pushing.map(fieldsOf)).toEqual([fieldsOf(s)]);
    }
    const pushedToCache = messages.filter((m) => m.msg.startsWith(`Pushed ${cacheRepo}@`));
    expect(pushedToCache.map(fieldsOf).sort()).toEqual(['build:1:2', 'stage-2:2:8']);
    // The layer of line 2 was uploaded by its cache push, and that upload event names line 2 too.
    const built = layers[0];
    const upload = events.find((e) => e.event === 'upload' && built?.event === 'layer' && e.digest === built.digest);
    expect(upload).toMatchObject({ stage: 'build', step: 1, line: 2 });

    // Again: the RUNs come from the cache, said by cache-hit events and in the text summary.
    const again = await executor([...args.slice(0, -2), '--summary-file', join(ctx, 'again.json')]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^INFO\[\d{4}\] Build summary: succeeded in /m);
    expect(again.stderr).toMatch(/^INFO\[\d{4}\]\s+1\s+2\s+\S+\s+195\.\d KiB\s+hit\s+RUN head -c 200000/m);
    expect(again.stderr).toMatch(/^INFO\[\d{4}\]\s+2\s+3\s+\S+\s+no change\s+-\s+ENV A=1/m);
    expect(again.stderr).toMatch(/^INFO\[\d{4}\]\s+skipped \(the target does not need them\): unused$/m);
    const cached = summarySchema.parse(JSON.parse(await readFile(join(ctx, 'again.json'), 'utf8')));
    expect(cached.stages[0]?.steps[0]?.cache).toBe('hit');
  });

  it('a failed RUN: its step-end has the exit code, the summary says FAILED, the file is written', async () => {
    const r = await executor(['--context', join(ctx, 'fail'), '--no-push', '--insecure-pull', '--log-format', 'json', '--summary-file', join(ctx, 'fail.json')]);
    expect(r.code).toBe(3);
    const { events } = parseLogLines(r.stderr);
    expect(events.filter((e) => e.event === 'step-end').map((e) => [e.line, e.status, e.exit_code])).toEqual([
      [2, 'ok', 0],
      [3, 'failed', 3],
    ]);
    expect(events.find((e) => e.event === 'build-end')).toMatchObject({ status: 'failure', exit_code: 3 });
    const s = summarySchema.parse(JSON.parse(await readFile(join(ctx, 'fail.json'), 'utf8')));
    expect(s).toMatchObject({ status: 'failure', exit_code: 3 });
    expect(s.error).toContain('exit status 3');
    const text = await executor(['--context', join(ctx, 'fail'), '--no-push', '--insecure-pull']);
    expect(text.stderr).toMatch(/^INFO\[\d{4}\] Build summary: FAILED \(exit code 3\) in /m);
    expect(text.stderr).toMatch(/^INFO\[\d{4}\]\s+2\s+3\s+\S+\s+FAILED \(exit 3\)\s+-\s+RUN exit 3/m);
    // kaniko's last line stays last.
    expect(text.stderr.trimEnd().split('\n').at(-1)).toMatch(/^error building image: .*exit status 3$/);
  });
});
