// Here-documents after BuildKit's Dockerfile frontend ("Here-Documents" in the Dockerfile reference):
// RUN <<EOF runs the body as a script (a `#!` line makes it a program run from /dev/pipes/<name>),
// <<-EOF strips leading tabs, a quoted delimiter turns expansion off; COPY/ADD <<EOF write files.
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

const images = inject('images');

describe('heredocs', () => {
  let b: LayoutBuild;
  beforeAll(async () => {
    b = await buildToLayout({
      Dockerfile: [
        `FROM ${images.busybox}`,
        'ARG NAME=world',
        'ENV GREETING=hello',
        'RUN <<EOF',
        'echo "$GREETING $NAME" > /run-simple',
        'echo second line >> /run-simple',
        'EOF',
        // <<- strips leading tabs from the body and the terminator.
        'RUN <<-EOF',
        '\techo tabbed > /run-chomp',
        '\tEOF',
        // The shell still expands: the delimiter's quotes only matter to the shell (it is sh's heredoc).
        'RUN cat <<\'EOF\' > /run-quoted',
        'literal $GREETING',
        'EOF',
        // A shebang: written to /dev/pipes/EOF and executed by its interpreter, not by sh -c.
        'RUN <<EOF',
        '#!/bin/awk -f',
        'BEGIN { print "from awk" > "/run-awk" }',
        'EOF',
        'RUN <<SCRIPT',
        '#!/bin/sh',
        'echo "$0" > /run-script-path',
        'SCRIPT',
        // COPY/ADD heredocs: files named by the destination; expanded unless the delimiter is quoted.
        'COPY <<EOF /etc/app.conf',
        'greeting=$GREETING name=${NAME} it\'s "quoted" \\n',
        'EOF',
        'COPY <<"EOF" /etc/raw.conf',
        'greeting=$GREETING',
        'EOF',
        'COPY --chmod=0755 <<one.sh <<two.sh /scripts/',
        'echo one',
        'one.sh',
        'echo two',
        'two.sh',
        'ADD --chown=1000:1000 <<EOF /home/app/added.txt',
        'added',
        'EOF',
        '',
      ].join('\n'),
    });
  });
  afterAll(async () => b?.cleanup());

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('RUN <<EOF runs the body with the stage\'s ENV and ARGs', async () => {
    expect(await b.file('run-simple')).toBe('hello world\nsecond line\n');
  });

  it('RUN <<-EOF strips leading tabs', async () => {
    expect(await b.file('run-chomp')).toBe('tabbed\n');
  });

  it('a quoted delimiter passes the body to the shell verbatim', async () => {
    expect(await b.file('run-quoted')).toBe('literal $GREETING\n');
  });

  it('a #! body runs as a program with its own interpreter, from /dev/pipes/<name>', async () => {
    expect(await b.file('run-awk')).toBe('from awk\n');
    expect(await b.file('run-script-path')).toBe('/dev/pipes/SCRIPT\n');
  });

  it('COPY <<EOF writes an expanded file, keeping quotes and backslashes', async () => {
    expect(await b.file('etc/app.conf')).toBe('greeting=hello name=world it\'s "quoted" \\n\n');
  });

  it('COPY <<"EOF" writes the body verbatim', async () => {
    expect(await b.file('etc/raw.conf')).toBe('greeting=$GREETING\n');
  });

  it('several heredocs are several files, with --chmod', async () => {
    expect(await b.file('scripts/one.sh')).toBe('echo one\n');
    expect(await b.file('scripts/two.sh')).toBe('echo two\n');
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'scripts/one.sh'));
    expect(st.mode & 0o7777).toBe(0o755);
  });

  it('ADD <<EOF writes a file with --chown; heredoc files default to 0644', async () => {
    expect(await b.file('home/app/added.txt')).toBe('added\n');
    const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', 'home/app/added.txt'));
    expect(`${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}`).toBe('1000:1000:644');
  });

  it('leaves no /dev/pipes script in the image', async () => {
    expect(await lstat(join(b.image?.rootfs ?? '/nonexistent', 'dev/pipes')).catch(() => undefined)).toBeUndefined();
  });
});
