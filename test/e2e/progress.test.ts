// Progress of downloads and uploads through a slow link (slow-proxy.ts): plain lines every interval in
// a log, progress events in JSON, and on a terminal (tmux) one live line per transfer, gone at the end;
// a large layer file being written; a layer cache hit's download, in the lines and the summary.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR, executor, skopeoJson, writeContext } from '../support/executor.js';
import { parseLogLines, summarySchema } from '../support/log-events-schema.js';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy.js';

const run = promisify(execFile);
const RATE = 400_000;
const LINE = /(Downloading|Uploading) (sha256:[0-9a-f]{12}): [\d.]+ (B|KiB|MiB) \/ [\d.]+ (KiB|MiB) \(\d+%\), [\d.]+ (B|KiB|MiB)\/s(, ETA \S+)?$/;

describe('progress', () => {
  const registry = inject('registry');
  const images = inject('images');
  let proxy: SlowProxy;
  let ctx: string;
  beforeAll(async () => {
    proxy = await startSlowProxy(registry, RATE);
    ctx = await writeContext({
      Dockerfile: `FROM ${images.busybox.replace(registry, proxy.host)}\nRUN head -c 1200000 /dev/urandom > /blob\n`,
      // Step 1 hits the layer cache the second time; step 2 misses (another N, no file changed: its entry
      // holds no layer) and needs the rootfs, so the cached layer is downloaded and applied.
      'cached/Dockerfile': `FROM ${images.busybox.replace(registry, proxy.host)}\nRUN head -c 1200000 /dev/urandom > /blob\nARG N\nRUN echo $N\n`,
    });
  });
  afterAll(async () => {
    await proxy.stop();
    await rm(ctx, { recursive: true, force: true });
  });

  it('--progress plain: a line per running transfer every interval, never more often', async () => {
    const r = await executor(['--context', ctx, '-d', `${proxy.host}/test/progress:plain`, '--insecure', '--insecure-pull', '--progress', 'plain', '--log-timestamp'], {
      env: { KILN_PROGRESS_INTERVAL_MS: '1000' },
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').flatMap((l) => {
      const m = /^INFO\[(\S+)\] (.*)$/.exec(l);
      const p = m === null ? null : LINE.exec(m[2] ?? '');
      return m === null || p === null ? [] : [{ at: Date.parse(m[1] ?? ''), kind: p[1], label: p[2] }];
    });
    expect(lines.some((l) => l.kind === 'Downloading')).toBe(true);
    expect(lines.some((l) => l.kind === 'Uploading')).toBe(true);
    for (const label of new Set(lines.map((l) => `${l.kind} ${l.label}`))) {
      const at = lines.filter((l) => `${l.kind} ${l.label}` === label).map((l) => l.at);
      for (let i = 1; i < at.length; i++) expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThanOrEqual(900);
    }
    // kaniko's lines are all still there.
    expect(r.stderr).toMatch(/\] Pushed 127\.0\.0\.1:\d+\/test\/progress@sha256:/);
  });

  it('--log-format json: progress is an event (the schema holds), and no plain line is written', async () => {
    const r = await executor(['--context', ctx, '--no-push', '--insecure-pull', '--log-format', 'json'], { env: { KILN_PROGRESS_INTERVAL_MS: '1000' } });
    expect(r.code, r.stderr).toBe(0);
    const { events, messages } = parseLogLines(r.stderr);
    const progress = events.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatchObject({ transfer: 'download', total: expect.any(Number) });
    expect(messages.some((m) => LINE.test(m.msg))).toBe(false);
  });

  it('a large layer file being written shows its progress too (plain)', async () => {
    const big = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN head -c 60000000 /dev/urandom > /big\n` });
    try {
      const r = await executor(['--context', big, '--no-push', '--insecure-pull', '--progress', 'plain'], { env: { KILN_PROGRESS_INTERVAL_MS: '20' } });
      expect(r.code, r.stderr).toBe(0);
      // The compressed size is not known while it is written: bytes and rate, no total or ETA.
      const writing = r.stderr.split('\n').filter((l) => /^INFO\[\d{4}\] Writing layer stage0-0\.tar\.gz: [\d.]+ (B|KiB|MiB), [\d.]+ (B|KiB|MiB)\/s$/.test(l));
      expect(writing.length, r.stderr).toBeGreaterThan(0);
    } finally {
      await rm(big, { recursive: true, force: true });
    }
  });

  it('a layer cache hit is downloaded like a base layer: its progress is shown and "pulled" counts it', async () => {
    const cacheRepo = `${proxy.host}/test/progress-cache-${process.pid}`;
    const args = ['--context', join(ctx, 'cached'), '--no-push', '--insecure', '--insecure-pull', '--cache', '--cache-repo', cacheRepo, '--progress', 'plain'];
    const env = { KILN_PROGRESS_INTERVAL_MS: '1000' };
    const first = await executor([...args, '--build-arg', 'N=1'], { env });
    expect(first.code, first.stderr).toBe(0);
    const summaryFile = join(ctx, 'cached-summary.json');
    const again = await executor([...args, '--build-arg', 'N=2', '--summary-file', summaryFile], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^INFO\[\d{4}\]\s+1\s+2\s+\S+\s+1\.1 MiB\s+hit\s+RUN head -c 1200000/m);
    // What was fetched, from the registry's own manifests: the base's layers and the one cached layer.
    type Manifest = { layers: { digest: string; size: number }[] };
    const base = (await skopeoJson(['inspect', '--tls-verify=false', '--raw', `docker://${images.busybox}`])) as Manifest;
    const tags = ((await skopeoJson(['list-tags', '--tls-verify=false', `docker://${cacheRepo.replace(proxy.host, registry)}`])) as { Tags: string[] }).Tags;
    const entries = await Promise.all(tags.map(async (t) => (await skopeoJson(['inspect', '--tls-verify=false', '--raw', `docker://${cacheRepo.replace(proxy.host, registry)}:${t}`])) as Manifest));
    const cachedLayers = [...new Map(entries.flatMap((e) => e.layers).map((l) => [l.digest, l])).values()];
    expect(cachedLayers).toHaveLength(1);
    const fetched = [...base.layers, ...cachedLayers];
    const summary = summarySchema.parse(JSON.parse(await readFile(summaryFile, 'utf8')));
    expect(summary.pulled).toEqual({ bytes: fetched.reduce((n, l) => n + l.size, 0), layers: fetched.length });
    // Through the slow link the cached layer's download lasts seconds: its plain progress lines say so.
    const cached = cachedLayers[0]?.digest.slice(0, 'sha256:'.length + 12) ?? 'none';
    const lines = again.stderr.split('\n').filter((l) => LINE.test(l.replace(/^INFO\[\d{4}\] /, '')));
    expect(lines.some((l) => l.includes(`Downloading ${cached}: `)), again.stderr).toBe(true);
  });

  it("the warmer shows the progress of the layers it downloads (plain), as the executor's", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-warm-progress-'));
    try {
      const image = images.busybox.replace(registry, proxy.host);
      const r = await run(process.execPath, [EXECUTOR.replace(/executor\.js$/, 'warmer.js'), '--cache-dir', dir, '--image', image, '--insecure-pull', '--progress', 'plain'], {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, DOCKER_CONFIG: dir, KILN_PROGRESS_INTERVAL_MS: '1000' },
      });
      const base = (await skopeoJson(['inspect', '--tls-verify=false', '--raw', `docker://${images.busybox}`])) as { layers: { digest: string; size: number }[] };
      const largest = [...base.layers].sort((x, y) => y.size - x.size)[0]?.digest.slice(0, 'sha256:'.length + 12) ?? 'none';
      const lines = r.stderr.split('\n').filter((l) => LINE.test(l.replace(/^INFO\[\d{4}\] /, '')));
      expect(lines.some((l) => l.includes(`Downloading ${largest}: `)), r.stderr).toBe(true);
      expect(r.stderr).toContain(`Wrote ${image} to cache`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('on a terminal (tmux): one live line per transfer at the bottom, updated, and cleared when done', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-tty-'));
    const socket = `kiln-progress-${process.pid}`;
    const done = join(dir, 'exit');
    const cmd = [
      `env -i PATH="${process.env['PATH'] ?? '/usr/bin:/bin'}" HOME="${dir}" DOCKER_CONFIG="${dir}" TERM=xterm`,
      `"${process.execPath}" "${EXECUTOR}" --context "${ctx}" -d ${proxy.host}/test/progress:tty --insecure --insecure-pull >/dev/null;`,
      `echo $? > "${done}"; sleep 60`,
    ].join(' ');
    try {
      await run('tmux', ['-L', socket, 'new-session', '-d', '-x', '150', '-y', '60', '-s', 'p', cmd]);
      const frames: string[] = [];
      while (!existsSync(done)) {
        frames.push((await run('tmux', ['-L', socket, 'capture-pane', '-p', '-t', 'p'])).stdout);
        await sleep(150);
      }
      expect((await readFile(done, 'utf8')).trim()).toBe('0');
      const live = frames.filter((f) => f.split('\n').some((l) => LINE.test(l)));
      expect(live.length).toBeGreaterThan(1);
      for (const f of live) {
        const rows = f.trimEnd().split('\n');
        // The live lines are the last ones on the screen, below the log.
        expect(LINE.test(rows.at(-1) ?? ''), f).toBe(true);
      }
      const texts = new Set(live.flatMap((f) => f.split('\n').filter((l) => LINE.test(l))));
      expect(texts.size).toBeGreaterThan(1);
      const all = (await run('tmux', ['-L', socket, 'capture-pane', '-p', '-S', '-', '-t', 'p'])).stdout;
      expect(all).toMatch(/^INFO\[\d{4}\] Pushed 127\.0\.0\.1:\d+\/test\/progress@sha256:/m);
      expect(all).toMatch(/^INFO\[\d{4}\] Build summary: succeeded in /m);
      // Nothing of the live block is left in the scrollback.
      expect(all.split('\n').filter((l) => LINE.test(l))).toEqual([]);
    } finally {
      await run('tmux', ['-L', socket, 'kill-server']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
