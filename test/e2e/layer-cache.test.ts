// kaniko's layer cache (`--cache`, `--cache-repo` and the flags around it), end to end: the executor
// built twice against a real registry, results read with skopeo, umoci and tar.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { executor, layerEntries, skopeoJson, unpackWithUmoci, writeContext, type ExecResult } from '../support/executor.js';
import { freePort, startRegistry } from '../support/registry.js';

const registry = inject('registry');
const busybox = inject('images').busybox;
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

let repoCount = 0;
/** A fresh cache repository per test, so no test sees another's entries. */
function cacheRepo(): string {
  return `${registry}/layer-cache/c${process.pid}-${repoCount++}`;
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = await writeContext(files);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function build(ctx: string, dest: string, extra: readonly string[], env?: Record<string, string>): Promise<ExecResult> {
  const r = await executor(['--context', ctx, '--destination', `${registry}/layer-cache/${dest}`, '--insecure', '--insecure-pull', ...extra], env === undefined ? {} : { env });
  if (r.code !== 0) throw new Error(`executor exited ${r.code}:\n${r.stderr}`);
  return r;
}

async function layers(ref: string): Promise<string[]> {
  const m = (await skopeoJson(['inspect', '--tls-verify=false', '--raw', `docker://${ref}`])) as { layers: { digest: string }[] };
  return m.layers.map((l) => l.digest);
}

async function tags(repo: string): Promise<string[]> {
  try {
    return ((await skopeoJson(['list-tags', '--tls-verify=false', `docker://${repo}`])) as { Tags: string[] }).Tags;
  } catch {
    return []; // the repository does not exist
  }
}

async function fileIn(dest: string, path: string): Promise<string | undefined> {
  const image = await unpackWithUmoci(`docker://${registry}/layer-cache/${dest}`);
  cleanups.push(() => image.cleanup());
  return readFile(join(image.rootfs, path), 'utf8').catch(() => undefined);
}

describe('layer cache', () => {
  it('a second build takes RUN layers from the cache: same layer digests, the RUN does not run, the repo holds the entries', async () => {
    const cache = cacheRepo();
    const ctx = await context({
      Dockerfile: [
        'FROM ' + busybox,
        'WORKDIR /app',
        'RUN head -c 32 /dev/urandom | od -x > /stamp',
        'ENV X=1',
        'RUN true',
        'RUN head -c 32 /dev/urandom | od -x > stamp2',
        '',
      ].join('\n'),
    });
    const t0 = Date.now();
    const first = await build(ctx, 'one:1', ['--cache=true', '--cache-repo', cache, '-v', 'debug']);
    const t1 = Date.now();
    const second = await build(ctx, 'one-again:2', ['--cache', '--cache-repo', cache, '-v', 'debug']);
    const t2 = Date.now();
    console.log(`layer cache: first build ${t1 - t0} ms, second (all cached) ${t2 - t1} ms`);
    expect(first.stderr).toContain('No cached layer found for cmd RUN head -c 32 /dev/urandom | od -x > /stamp');
    expect(first.stderr).toContain('Pushing layer');
    expect(second.stderr).toContain(`Checking for cached layer ${cache}:`);
    expect(second.stderr).toContain('Using caching version of cmd: WORKDIR /app');
    expect(second.stderr).toContain('Using caching version of cmd: RUN head -c 32 /dev/urandom | od -x > /stamp');
    // A RUN that changed no file is cached too (as an image without layers).
    expect(second.stderr).toContain('Using caching version of cmd: RUN true');
    expect(second.stderr).toContain('Using caching version of cmd: RUN head -c 32 /dev/urandom | od -x > stamp2');
    expect(second.stderr).not.toContain('Running:');
    // Nothing needed the rootfs: the base was not even unpacked.
    expect(second.stderr).not.toContain('Unpacking rootfs');
    const built = await layers(`${registry}/layer-cache/one-again:2`);
    expect(built).toEqual(await layers(`${registry}/layer-cache/one:1`));
    // The cached layers reach the new repository by a cross-repository mount from the cache, not an upload.
    for (const digest of built.slice(1)) expect(second.stderr).toContain(`mounted ${digest} from ${cache.slice(registry.length + 1)} into layer-cache/one-again`);
    // The first build stored its new layers in the cache while it went on; its own push then mounted
    // them from there rather than uploading each layer a second time.
    for (const digest of built.slice(1)) {
      expect(first.stderr).toContain(`mounted ${digest} from ${cache.slice(registry.length + 1)} into layer-cache/one`);
      expect(first.stderr).not.toMatch(new RegExp(`uploaded blob ${digest} \\(\\d+ bytes\\) to [^ ]+/layer-cache/one\\b`));
    }
    expect(await fileIn('one-again:2', 'stamp')).toBe(await fileIn('one:1', 'stamp'));
    expect(await fileIn('one-again:2', 'app/stamp2')).toBe(await fileIn('one:1', 'app/stamp2'));
    expect((await tags(cache)).length).toBe(4);
    // History is written as without the cache: same entries, same empty_layer marks.
    const history = async (tag: string): Promise<unknown> =>
      ((await skopeoJson(['inspect', '--tls-verify=false', '--config', `docker://${registry}/layer-cache/${tag}`])) as { history: { created_by?: string; empty_layer?: boolean }[] }).history.map((h) => [h.created_by, h.empty_layer ?? false]);
    expect(await history('one-again:2')).toEqual(await history('one:1'));
  });

  it('--reproducible: a build from the cache is the same image, digest for digest', async () => {
    const cache = cacheRepo();
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'RUN head -c 32 /dev/urandom | od -x > /stamp', 'RUN true', ''].join('\n') });
    const digest = async (tag: string): Promise<string> => {
      const file = join(ctx, `digest-${tag}`);
      await build(ctx, `repro:${tag}`, ['--cache', '--cache-repo', cache, '--reproducible', '--digest-file', file]);
      return readFile(file, 'utf8');
    };
    const first = await digest('1');
    expect(await digest('2')).toBe(first);
  });

  it('a COPY\'d file that changes changes the key of a later RUN; an unrelated context file does not', async () => {
    const cache = cacheRepo();
    const ctx = await context({
      Dockerfile: ['FROM ' + busybox, 'COPY app.txt /app.txt', 'RUN cat /app.txt > /copy && head -c 8 /dev/urandom | od -x >> /copy', ''].join('\n'),
      'app.txt': 'v1\n',
      'other.txt': 'a\n',
    });
    await build(ctx, 'copy:1', ['--cache', '--cache-repo', cache]);
    await writeFile(join(ctx, 'other.txt'), 'b\n');
    const unrelated = await build(ctx, 'copy:2', ['--cache', '--cache-repo', cache]);
    expect(unrelated.stderr).toContain('Using caching version of cmd: RUN cat /app.txt');
    await writeFile(join(ctx, 'app.txt'), 'v2\n');
    const changed = await build(ctx, 'copy:3', ['--cache', '--cache-repo', cache]);
    expect(changed.stderr).toContain('No cached layer found for cmd RUN cat /app.txt');
    expect(changed.stderr).toContain('Running:');
    expect(await fileIn('copy:3', 'copy')).toMatch(/^v2\n/);
  });

  for (const variant of [
    { name: 'before the rootfs exists (applied when a later RUN unpacks it)', first: [] as string[] },
    // A RUN with a cache mount is never cached: it unpacks the rootfs before the hits.
    { name: 'onto an unpacked rootfs (the snapshotter re-reads its baseline)', first: ['RUN --mount=type=cache,target=/var/cache/k true'] },
  ]) {
    it(`cached layers applied ${variant.name}: later RUNs see their files, deletions hold, no file is in two layers`, async () => {
      const cache = cacheRepo();
      const tag = variant.first.length === 0 ? 'apply-lazy' : 'apply-now';
      const ctx = await context({
        Dockerfile: [
          'FROM ' + busybox,
          ...variant.first,
          'RUN echo one > /keep && echo bye > /gone && mkdir -p /d && echo x > /d/x',
          'RUN rm /gone && date > /t',
          'ARG N',
          'RUN cat /keep > /copied && ls / > /listing && echo $N > /n',
          '',
        ].join('\n'),
      });
      await build(ctx, `${tag}:1`, ['--cache', '--cache-repo', cache, '--build-arg', 'N=1']);
      const second = await build(ctx, `${tag}:2`, ['--cache', '--cache-repo', cache, '--build-arg', 'N=2']);
      expect(second.stderr).toContain('Using caching version of cmd: RUN echo one > /keep');
      expect(second.stderr).toContain('Using caching version of cmd: RUN rm /gone');
      expect(second.stderr).toContain('No cached layer found for cmd RUN cat /keep');
      const one = await layers(`${registry}/layer-cache/${tag}:1`);
      const two = await layers(`${registry}/layer-cache/${tag}:2`);
      expect(two.length).toBe(one.length);
      // Base and the cached RUNs' layers are the same blobs; only the last RUN's differs.
      expect(two.slice(0, -1)).toEqual(one.slice(0, -1));
      expect(two.at(-1)).not.toBe(one.at(-1));
      const image = await unpackWithUmoci(`docker://${registry}/layer-cache/${tag}:2`);
      cleanups.push(() => image.cleanup());
      const f = (p: string): Promise<string | undefined> => readFile(join(image.rootfs, p), 'utf8').catch(() => undefined);
      expect(await f('copied')).toBe('one\n');
      expect(await f('n')).toBe('2\n');
      expect(await f('gone')).toBeUndefined();
      expect(await f('listing')).not.toMatch(/^gone$/m);
      expect(await f('d/x')).toBe('x\n');
      // The last RUN's layer holds what it wrote, nothing of the cached layers.
      const last = (await layerEntries(image.layout, two.at(-1) ?? '')).map((e) => e.split(' ')[2]);
      expect(last.filter((p) => !p?.endsWith('/'))).toEqual(['copied', 'listing', 'n']);
    });
  }

  it('FROM and COPY --from an earlier stage: keys follow that stage\'s key, and its cached layers reach the copy', async () => {
    const cache = cacheRepo();
    const ctx = await context({
      Dockerfile: [
        `FROM ${busybox} AS build`,
        'RUN head -c 16 /dev/urandom | od -x > /artifact',
        'FROM build AS test',
        'RUN cp /artifact /tested',
        `FROM ${busybox}`,
        'COPY --from=test /artifact /tested /out/',
        'RUN cat /out/artifact > /seen',
        '',
      ].join('\n'),
    });
    await build(ctx, 'stages:1', ['--cache', '--cache-repo', cache]);
    const second = await build(ctx, 'stages:2', ['--cache', '--cache-repo', cache]);
    expect(second.stderr).not.toContain('Running:');
    expect(second.stderr).toContain('Using caching version of cmd: RUN cat /out/artifact > /seen');
    const artifact = await fileIn('stages:1', 'seen');
    expect(await fileIn('stages:2', 'seen')).toBe(artifact);
    expect(await fileIn('stages:2', 'out/tested')).toBe(artifact);
  });

  it('--cache-copy-layers in a stage that defers its base: hits need no base, and a later COPY that unpacks it gets them first', async () => {
    const cache = cacheRepo();
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'COPY site/ /srv/', 'COPY conf.txt /etc', ''].join('\n'), 'site/a.txt': 'a\n', 'conf.txt': 'c1\n' });
    await build(ctx, 'deferred:1', ['--cache', '--cache-repo', cache, '--cache-copy-layers']);
    const same = await build(ctx, 'deferred:2', ['--cache', '--cache-repo', cache, '--cache-copy-layers']);
    expect(same.stderr).toContain('Using caching version of cmd: COPY conf.txt /etc');
    expect(same.stderr).not.toContain('Unpacking rootfs');
    await writeFile(join(ctx, 'conf.txt'), 'c2\n');
    const changed = await build(ctx, 'deferred:3', ['--cache', '--cache-repo', cache, '--cache-copy-layers']);
    expect(changed.stderr).toContain('Using caching version of cmd: COPY site/ /srv/');
    expect(changed.stderr).toContain('Unpacking rootfs as cmd COPY requires it.');
    expect(await fileIn('deferred:3', 'srv/a.txt')).toBe('a\n');
    expect(await fileIn('deferred:3', 'etc/conf.txt')).toBe('c2\n');
    expect(await fileIn('deferred:3', 'etc/passwd')).toContain('root:');
  });

  it('--cache-ttl: an entry older than the TTL is a miss', async () => {
    const cache = cacheRepo();
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'RUN date > /stamp', ''].join('\n') });
    await build(ctx, 'ttl:1', ['--cache', '--cache-repo', cache]);
    await new Promise((r) => setTimeout(r, 2100));
    const stale = await build(ctx, 'ttl:2', ['--cache', '--cache-repo', cache, '--cache-ttl', '1s']);
    expect(stale.stderr).toContain('Cache entry expired');
    expect(stale.stderr).toContain('Running:');
    const fresh = await build(ctx, 'ttl:3', ['--cache', '--cache-repo', cache, '--cache-ttl=6h30m']);
    expect(fresh.stderr).toContain('Using caching version of cmd: RUN date');
  });

  it('--no-push-cache pushes nothing; --cache-run-layers=false caches no RUN; --cache-copy-layers caches COPY', async () => {
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'COPY a.txt /a.txt', 'RUN date > /d', ''].join('\n'), 'a.txt': 'a\n' });
    const noPush = cacheRepo();
    const r1 = await build(ctx, 'flags:1', ['--cache', '--cache-repo', noPush, '--no-push-cache']);
    expect(r1.stderr).toContain(`Checking for cached layer ${noPush}:`);
    expect(await tags(noPush)).toEqual([]);

    const noRun = cacheRepo();
    const r2 = await build(ctx, 'flags:2', ['--cache', '--cache-repo', noRun, '--cache-run-layers=false']);
    expect(r2.stderr).not.toContain('Checking for cached layer');
    expect(await tags(noRun)).toEqual([]);

    const copies = cacheRepo();
    await build(ctx, 'flags:3', ['--cache', '--cache-repo', copies, '--cache-copy-layers', '--cache-run-layers=false']);
    expect((await tags(copies)).length).toBe(1);
    const again = await build(ctx, 'flags:4', ['--cache', '--cache-repo', copies, '--cache-copy-layers=true', '--cache-run-layers=false']);
    expect(again.stderr).toContain('Using caching version of cmd: COPY a.txt /a.txt');
    expect(await fileIn('flags:4', 'a.txt')).toBe('a\n');
  });

  it('without --cache-repo the cache is <first destination>/cache; with --no-push it must be given', async () => {
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'RUN date > /d', ''].join('\n') });
    await build(ctx, 'inferred:1', ['--cache']);
    expect((await tags(`${registry}/layer-cache/inferred/cache`)).length).toBe(1);
    const r = await executor(['--context', ctx, '--no-push', '--cache']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('if using cache with --no-push, specify cache repo with --cache-repo');
  });

  it('a cache repo that cannot be reached, or refuses the credentials, is a warning: the build succeeds', async () => {
    const ctx = await context({ Dockerfile: ['FROM ' + busybox, 'RUN date > /d', ''].join('\n') });
    const down = await build(ctx, 'down:1', ['--cache', '--cache-repo', `127.0.0.1:${await freePort()}/cache`]);
    expect(down.stderr).toMatch(/WARN.*Error checking for cached layer/);
    expect(down.stderr).toMatch(/WARN.*Error uploading layer to cache/);

    const guarded = await startRegistry({ auth: { kind: 'htpasswd', users: { alice: 'right' } } });
    cleanups.push(() => guarded.stop());
    const cfg = await mkdtemp(join(tmpdir(), 'kiln-cache-cfg-'));
    cleanups.push(() => rm(cfg, { recursive: true, force: true }));
    await writeFile(join(cfg, 'config.json'), JSON.stringify({ auths: { [guarded.host]: { auth: Buffer.from('alice:wrong').toString('base64') } } }));
    const denied = await build(ctx, 'denied:1', ['--cache', '--cache-repo', `${guarded.host}/cache`], { DOCKER_CONFIG: cfg });
    expect(denied.stderr).toMatch(/WARN.*Error checking for cached layer/);
    expect(denied.stderr).toMatch(/WARN.*Error uploading layer to cache/);
    expect(denied.stderr).not.toContain('wrong');
  });
});
