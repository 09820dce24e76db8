// A stage of COPYs and WORKDIRs that need nothing from the base (issue 4: "built without downloading
// or unpacking the base layers, as kaniko does"): its base layers are neither downloaded nor unpacked,
// its layers hold only what COPY wrote (never the destination or its parents, which belong to the
// base), and the image, unpacked by umoci, is what docker build gives. A COPY that does depend on the
// base unpacks it then, and what was deferred is applied on top.
import { lstat, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chrootRun, executor, layerEntries, unpackWithUmoci, writeContext, type UnpackedImage } from '../support/executor.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';
import { skopeo } from './fixtures.js';

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150)); // the access log comes through a pipe

interface Built {
  code: number;
  stderr: string;
  baseLayerGets: number;
  image: UnpackedImage;
  /** `mode uid/gid path` of each layer the build added, by layer. */
  added: string[][];
}

describe('deferred base image', () => {
  let reg: RunningRegistry;
  let base: string;
  /** A base whose /lib is a symlink to usr/lib, as in merged-/usr distributions. */
  let usrMerged: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    reg = await startRegistry({ accessLog: true });
    base = `${reg.host}/kiln/busybox:latest`;
    await skopeo('copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${inject('images').busybox}`, `docker://${base}`);
    usrMerged = `${reg.host}/kiln/usr-merged:latest`;
    const ctx = await writeContext({ Dockerfile: `FROM ${base}\nRUN mkdir -p /usr/lib && rm -rf /lib && ln -s usr/lib /lib && echo base > /usr/lib/from-base\n` });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const r = await executor(['--context', ctx, '--destination', usrMerged, '--insecure', '--insecure-pull']);
    expect(r.code).toBe(0);
  });
  afterAll(async () => {
    for (const c of cleanups) await c();
    await reg?.stop();
  });

  async function layersOf(ref: string): Promise<string[]> {
    return (JSON.parse(await skopeo('inspect', '--tls-verify=false', '--raw', `docker://${ref}`)) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
  }

  async function build(from: string, lines: string[], files: Record<string, string>, tag: string, extra: string[] = []): Promise<Built> {
    const ctx = await writeContext({ Dockerfile: [`FROM ${from}`, ...lines, ''].join('\n'), ...files });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const fromLayers = await layersOf(from);
    const mark = reg.requests().length;
    const dest = `${reg.host}/kiln/deferred:${tag}`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', ...extra]);
    await settle();
    const gets = reg.requests().slice(mark).filter((q) => q.method === 'GET' && fromLayers.some((d) => q.path.endsWith(d))).length;
    expect(r.stderr.split('\n').filter((l) => l.startsWith('error building image'))).toEqual([]);
    expect(r.code).toBe(0);
    const image = await unpackWithUmoci(`docker://${dest}`);
    cleanups.push(() => image.cleanup());
    const all = await layersOf(dest);
    const added = await Promise.all(all.slice(fromLayers.length).map((d) => layerEntries(image.layout, d)));
    return { code: r.code, stderr: r.stderr, baseLayerGets: gets, image, added };
  }

  it('WORKDIR + COPY into directories: no base layer downloaded or unpacked; layers hold only what was copied', async () => {
    const b = await build(
      base,
      ['ENV APP=/app', 'WORKDIR $APP', 'COPY site/ ./', 'COPY hello.txt /opt/tools/', 'COPY conf /etc/conf.d', 'LABEL deferred=yes'],
      { 'site/index.html': '<p>hi</p>\n', 'site/css/a.css': 'a{}\n', 'hello.txt': 'hello\n', 'conf/x.conf': 'x=1\n' },
      'dirs',
    );
    expect(b.baseLayerGets).toBe(0);
    expect(b.stderr).toContain('Deferring the base image');
    expect(b.stderr).not.toContain('Unpacking rootfs');
    expect(b.added.map((l) => l.map((e) => e.split(' ')[2]))).toEqual([
      ['app/css/', 'app/css/a.css', 'app/index.html'],
      ['opt/tools/hello.txt'],
      ['etc/conf.d/x.conf'],
    ]);
    const f = (p: string) => readFile(join(b.image.rootfs, p), 'utf8');
    expect(await f('app/index.html')).toBe('<p>hi</p>\n');
    expect(await f('opt/tools/hello.txt')).toBe('hello\n');
    expect(await f('etc/conf.d/x.conf')).toBe('x=1\n');
    // The base's own files are all there, and the image runs.
    expect(await f('etc/passwd')).toContain('root:');
    expect(await chrootRun(b.image.rootfs, ['/bin/sh', '-c', 'cat /app/css/a.css /opt/tools/hello.txt'])).toBe('a{}\nhello\n');
  });

  it('a destination under a base symlink lands where the symlink leads, and the symlink stays', async () => {
    const b = await build(usrMerged, ['COPY lib/ /lib/', 'COPY one.so /lib/extra/'], { 'lib/libx.so': 'x\n', 'one.so': '1\n' }, 'symlink');
    expect(b.baseLayerGets).toBe(0);
    expect(await readlink(join(b.image.rootfs, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(b.image.rootfs, 'usr/lib/libx.so'), 'utf8')).toBe('x\n');
    expect(await readFile(join(b.image.rootfs, 'usr/lib/extra/one.so'), 'utf8')).toBe('1\n');
    expect(await readFile(join(b.image.rootfs, 'usr/lib/from-base'), 'utf8')).toBe('base\n');
  });

  it('a file copied to a path the base holds as a directory needs the base: unpacked then, deferred layers applied first', async () => {
    const b = await build(base, ['COPY site/ /srv/', 'COPY hello.txt /etc'], { 'site/a.txt': 'a\n', 'hello.txt': 'hello\n' }, 'fallback');
    expect(b.baseLayerGets).toBeGreaterThan(0);
    expect(b.stderr).toContain('Unpacking rootfs as cmd COPY requires it.');
    // docker's rule: /etc is a directory, so the file goes into it.
    expect((await lstat(join(b.image.rootfs, 'etc'))).isDirectory()).toBe(true);
    expect(await readFile(join(b.image.rootfs, 'etc/hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(b.image.rootfs, 'srv/a.txt'), 'utf8')).toBe('a\n');
    expect(b.added.map((l) => l.map((e) => e.split(' ')[2]))).toEqual([['srv/a.txt'], ['etc/', 'etc/hello.txt']]);
  });

  it('a file copied to a file destination the base leaves free: base layers read for their names only, never unpacked', async () => {
    const b = await build(
      base,
      ['COPY app.bin /usr/local/bin/app', 'COPY motd /etc/motd.kiln', 'COPY top.txt /top.txt', 'CMD ["/usr/local/bin/app"]'],
      { 'app.bin': '#!/bin/sh\necho app\n', motd: 'hi\n', 'top.txt': 'top\n' },
      'file-dest',
    );
    expect(b.stderr).toContain('Deferring the base image');
    expect(b.stderr).not.toContain('Unpacking rootfs');
    // Each layer holds the file alone: its parents are the base's (/etc) or made by whoever unpacks it.
    expect(b.added.map((l) => l.map((e) => e.split(' ')[2]))).toEqual([['usr/local/bin/app'], ['etc/motd.kiln'], ['top.txt']]);
    const f = (p: string) => readFile(join(b.image.rootfs, p), 'utf8');
    expect(await f('usr/local/bin/app')).toBe('#!/bin/sh\necho app\n');
    expect(await f('etc/motd.kiln')).toBe('hi\n');
    expect(await f('top.txt')).toBe('top\n');
    expect(await f('etc/passwd')).toContain('root:');
    expect(await chrootRun(b.image.rootfs, ['/bin/sh', '-c', 'cat /etc/motd.kiln /top.txt'])).toBe('hi\ntop\n');
  });

  it('a file copied under a base symlink, or onto one, needs the base: the file goes where the symlink leads', async () => {
    const under = await build(usrMerged, ['COPY one.so /lib/one.so'], { 'one.so': '1\n' }, 'file-under-symlink');
    expect(under.stderr).toContain('Unpacking rootfs as cmd COPY requires it.');
    expect(await readlink(join(under.image.rootfs, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(under.image.rootfs, 'usr/lib/one.so'), 'utf8')).toBe('1\n');
    const onto = await build(usrMerged, ['COPY two.so /lib'], { 'two.so': '2\n' }, 'file-onto-symlink');
    expect(onto.stderr).toContain('Unpacking rootfs as cmd COPY requires it.');
    expect(await readlink(join(onto.image.rootfs, 'lib'))).toBe('usr/lib');
    expect(await readFile(join(onto.image.rootfs, 'usr/lib/two.so'), 'utf8')).toBe('2\n');
  });

  it('--single-snapshot: nothing deferred, so a later COPY that needs the base loses none of the earlier ones', async () => {
    const b = await build(base, ['COPY site/ /srv/', 'COPY hello.txt /etc'], { 'site/a.txt': 'a\n', 'hello.txt': 'hello\n' }, 'single', ['--single-snapshot']);
    expect(b.stderr).not.toContain('Deferring the base image');
    expect(b.added.map((l) => l.map((e) => e.split(' ')[2]))).toEqual([['etc/', 'etc/hello.txt', 'srv/', 'srv/a.txt']]);
    expect(await readFile(join(b.image.rootfs, 'srv/a.txt'), 'utf8')).toBe('a\n');
    expect(await readFile(join(b.image.rootfs, 'etc/hello.txt'), 'utf8')).toBe('hello\n');
  });

  it('FROM scratch is never deferred: its layer keeps the parent directories, as docker writes them', async () => {
    const ctx = await writeContext({ Dockerfile: 'FROM scratch\nCOPY app.bin /usr/local/bin/\n', 'app.bin': 'bin\n' });
    cleanups.push(() => rm(ctx, { recursive: true, force: true }));
    const dest = `${reg.host}/kiln/deferred:scratch`;
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure']);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('Deferring the base image');
    const image = await unpackWithUmoci(`docker://${dest}`);
    cleanups.push(() => image.cleanup());
    const [layer] = await layersOf(dest);
    expect((await layerEntries(image.layout, layer ?? '')).map((e) => e.split(' ')[2])).toEqual(['usr/', 'usr/local/', 'usr/local/bin/', 'usr/local/bin/app.bin']);
  });

  it('a stage with COPY --chown is never deferred (names need the base; created directories get the owner)', async () => {
    const b = await build(base, ['COPY --chown=1000:1000 hello.txt /home/app/'], { 'hello.txt': 'hello\n' }, 'chown');
    expect(b.baseLayerGets).toBeGreaterThan(0);
    expect(b.stderr).not.toContain('Deferring the base image');
    expect(b.added[0]).toContain('-rw-r--r-- 1000/1000 home/app/hello.txt');
  });

  it('COPY --from a deferred stage reads the stage\'s whole filesystem, base included', async () => {
    const b = await build(base, ['COPY hello.txt /opt/', 'FROM scratch', 'COPY --from=0 /opt/hello.txt /etc/passwd /out/'], { 'hello.txt': 'hello\n' }, 'from');
    expect(await readFile(join(b.image.rootfs, 'out/hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(join(b.image.rootfs, 'out/passwd'), 'utf8')).toContain('root:');
  });
});
