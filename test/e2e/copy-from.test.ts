// COPY --from an image reference (pulled like a base image) and wildcards in --from sources
// (BuildKit matches them with Go's filepath.Match inside the source's root); USER u:g, WORKDIR under
// USER and ARG scope, where kaniko and docker build differ and docker build is right.
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

const images = inject('images');

describe('COPY --from', () => {
  let b: LayoutBuild;
  beforeAll(async () => {
    b = await buildToLayout({
      Dockerfile: [
        `FROM ${images.busybox} AS build`,
        'RUN mkdir -p /out/sub && echo a > /out/a.txt && echo b > /out/b.txt && echo c > /out/c.log && echo s > /out/sub/s.txt && chown 1000:1000 /out/a.txt',
        'FROM scratch',
        `COPY --from=${images.busybox} /etc/passwd /from-image/passwd`,
        'COPY --from=build /out/*.txt /txt/',
        'COPY --from=build /out/*/s.txt /nested/',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => b?.cleanup());

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('copies from an image reference, pulled like a base', async () => {
    expect(await b.file('from-image/passwd')).toContain('app:x:1000:1000');
  });

  it('expands wildcards in the other stage, keeping owners', async () => {
    expect(await b.file('txt/a.txt')).toBe('a\n');
    expect(await b.file('txt/b.txt')).toBe('b\n');
    expect(await lstat(join(b.image?.rootfs ?? '/nonexistent', 'txt/c.log')).catch(() => undefined)).toBeUndefined();
    expect((await lstat(join(b.image?.rootfs ?? '/nonexistent', 'txt/a.txt'))).uid).toBe(1000);
    expect(await b.file('nested/s.txt')).toBe('s\n');
  });

  it('fails a wildcard that matches nothing, naming the line', async () => {
    const r = await buildToLayout({ Dockerfile: `FROM ${images.busybox} AS a\nFROM ${images.busybox}\nCOPY --from=a /nothing-*.txt /x/\n` });
    await r.cleanup();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:3 COPY .*matches nothing/);
  });

  it('refuses ADD --parents (BuildKit has the flag on COPY only) and a malformed --exclude, naming the line', async () => {
    const r = await buildToLayout({ 'a.txt': 'a', Dockerfile: `FROM ${images.busybox}\nADD --parents a.txt /x/\n` });
    await r.cleanup();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Dockerfile:2 ADD .*unknown flag: --parents/);
    const bad = await buildToLayout({ 'a.txt': 'a', Dockerfile: `FROM ${images.busybox}\nCOPY --exclude=[ a.txt /x/\n` });
    await bad.cleanup();
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Dockerfile:2 COPY .*--exclude: syntax error in pattern "\["/);
  });
});

describe('COPY --exclude and --parents in a stage that unpacks its base, and from an image', () => {
  let b: LayoutBuild;
  beforeAll(async () => {
    b = await buildToLayout({
      'src/a.txt': 'a',
      'src/x/b.txt': 'b',
      'src/x/c.log': 'c',
      'x/y/z.txt': 'z',
      Dockerfile: [
        `FROM ${images.busybox}`,
        'RUN mkdir -p /pre',
        'COPY --parents --exclude=**/*.log src/**/*.txt src/x/c.log ./x/./y/z.txt /p/',
        `COPY --exclude=passwd --from=${images.busybox} /etc /etc-copy/`,
        `COPY --parents --from=${images.busybox} /./etc/group /img/`,
        'RUN ls -R /p /img > /listing',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => b?.cleanup());

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('keeps the parents of each match, a literal source too, and leaves excluded matches out', async () => {
    expect(await b.file('p/src/a.txt')).toBe('a');
    expect(await b.file('p/src/x/b.txt')).toBe('b');
    expect(await b.file('p/y/z.txt')).toBe('z');
    expect(await lstat(join(b.image?.rootfs ?? '/nonexistent', 'p/src/x/c.log')).catch(() => undefined)).toBeUndefined();
    expect(await b.file('listing')).toContain('/p/src/x');
  });

  it('applies --exclude and --parents to an image source', async () => {
    expect(await b.file('etc-copy/group')).toContain('root');
    expect(await lstat(join(b.image?.rootfs ?? '/nonexistent', 'etc-copy/passwd')).catch(() => undefined)).toBeUndefined();
    expect(await b.file('img/etc/group')).toContain('root');
  });

  it('records --parents in the history, as BuildKit does', async () => {
    const history = (await b.config()).history?.map((h) => h.created_by ?? '') ?? [];
    expect(history.some((h) => h.startsWith('COPY --parents '))).toBe(true);
  });
});

describe('USER, WORKDIR and ARG scope (docker build semantics)', () => {
  let b: LayoutBuild;
  beforeAll(async () => {
    b = await buildToLayout(
      {
        Dockerfile: [
          'ARG GLOBAL=global-value',
          `FROM ${images.busybox} AS first`,
          'ARG STAGE_ARG=first-stage',
          'RUN echo "$STAGE_ARG" > /first-arg',
          `FROM ${images.busybox}`,
          'COPY --from=first /first-arg /first-arg',
          // An ARG of an earlier stage is not in scope here, nor is a global ARG without re-declaring it.
          'RUN echo "stage=[$STAGE_ARG] global=[$GLOBAL]" > /leak-check',
          'ARG GLOBAL',
          'RUN echo "global=[$GLOBAL]" > /global-redeclared',
          // USER u:g runs RUN with that group (docker), not the user's primary group.
          'USER app:65534',
          'RUN id -u > /tmp/uid && id -g > /tmp/gid',
          // WORKDIR created under a USER belongs to that user (BuildKit's dispatchWorkdir llb.WithUser).
          'USER app',
          'WORKDIR /srv/work',
          'USER root',
          '',
        ].join('\n'),
      },
      ['--build-arg', 'STAGE_ARG=from-cli'],
    );
  });
  afterAll(async () => b?.cleanup());

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('ARGs never leak into later stages', async () => {
    expect(await b.file('first-arg')).toBe('from-cli\n');
    expect(await b.file('leak-check')).toBe('stage=[] global=[]\n');
    expect(await b.file('global-redeclared')).toBe('global=[global-value]\n');
    const config = await b.config();
    expect(JSON.stringify(config.config?.Env ?? [])).not.toContain('STAGE_ARG');
  });

  it('USER u:g runs RUN with that group', async () => {
    expect(await b.file('tmp/uid')).toBe('1000\n');
    expect(await b.file('tmp/gid')).toBe('65534\n');
  });

  it('WORKDIR created under USER is owned by that user', async () => {
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'srv/work'));
    expect(`${st.uid}:${st.gid}`).toBe('1000:1000');
    expect((await b.config()).config?.WorkingDir).toBe('/srv/work');
  });
});
