import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openContext, type BuildContext } from '../../src/context/build-context.js';
import { contextRelativeSource, expandSources, walkContext } from '../../src/context/context-sources.js';

async function tree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

describe('openContext', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-ctx-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('opens dir://PATH, plain paths relative to cwd, and reads .dockerignore', async () => {
    await tree(work, { 'app/.dockerignore': '*.log\n', 'app/a.txt': 'a' });
    const viaScheme = await openContext(`dir://${join(work, 'app')}`, '/');
    const viaRelative = await openContext('app', work);
    expect(viaScheme.root).toBe(viaRelative.root);
    expect(viaRelative.ignore.patterns).toEqual(['*.log']);
  });

  it.each(['tar://ctx.tar.gz', 'git://github.com/x/y', 's3://bucket/ctx.tgz', 'https://example.com/ctx.tgz', 'gs://b/c'])(
    'opens only directories: %s is fetched first (or refused), and the error names its scheme',
    async (spec) => {
      const scheme = spec.slice(0, spec.indexOf('://'));
      await expect(openContext(spec, work)).rejects.toMatchObject({
        code: 'CONTEXT',
        message: expect.stringContaining(`${scheme}://`) as unknown,
      });
    },
  );

  it('refuses a missing context and a file', async () => {
    await writeFile(join(work, 'f'), '');
    await expect(openContext('nope', work)).rejects.toMatchObject({ code: 'CONTEXT' });
    await expect(openContext('f', work)).rejects.toThrow(/not a directory/);
  });
});

describe('expandSources', () => {
  let work: string;
  let outside: string;
  let ctx: BuildContext;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-src-'));
    outside = await mkdtemp(join(tmpdir(), 'kiln-outside-'));
    await tree(outside, { 'secret.txt': 'secret', 'dir/inner.txt': 'inner' });
    await tree(work, {
      '.dockerignore': '*.log\nvendor\n!vendor/keep.txt\n',
      'a.txt': 'a',
      'b.txt': 'b',
      'debug.log': 'log',
      'src/main.c': 'main',
      'src/util.c': 'util',
      'src/README': 'readme',
      'pkg/one/x.go': 'x',
      'pkg/two/y.go': 'y',
      'vendor/drop.txt': 'drop',
      'vendor/keep.txt': 'keep',
    });
    await symlink(join(outside, 'secret.txt'), join(work, 'abs-link'));
    await symlink('../' + outside.split('/').pop() + '/secret.txt', join(work, 'rel-escape-link'));
    await symlink('src/main.c', join(work, 'inside-link'));
    await symlink(outside, join(work, 'outside-dir'));
    await symlink('src', join(work, 'src-link'));
    ctx = await openContext(work, '/');
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  const paths = async (...sources: string[]): Promise<string[]> => (await expandSources(ctx, sources)).map((s) => s.path);

  it('returns literal sources cleaned and context-relative, with their type', async () => {
    const [file, dir, root] = await expandSources(ctx, ['./src/../a.txt', 'src/', '.']);
    expect(file).toMatchObject({ path: 'a.txt', type: 'file', hostPath: join(ctx.root, 'a.txt') });
    expect(dir).toMatchObject({ path: 'src', type: 'directory' });
    expect(root).toMatchObject({ path: '.', type: 'directory', hostPath: ctx.root });
  });

  it('expands *, ? and [..] per path segment like filepath.Match, in lexical order', async () => {
    expect(await paths('*.txt')).toEqual(['a.txt', 'b.txt']);
    expect(await paths('src/*.c')).toEqual(['src/main.c', 'src/util.c']);
    expect(await paths('?.txt')).toEqual(['a.txt', 'b.txt']);
    expect(await paths('[a].txt')).toEqual(['a.txt']);
    expect(await paths('pkg/*/*.go')).toEqual(['pkg/one/x.go', 'pkg/two/y.go']);
    await expect(paths('*.c')).rejects.toThrow(/no source files were specified/);
  });

  it('drops .dockerignore\'d matches and treats an ignored literal as not found', async () => {
    expect(await paths('*')).not.toContain('debug.log');
    expect(await paths('vendor/*')).toEqual(['vendor/keep.txt']);
    await expect(paths('debug.log')).rejects.toThrow(/not found in build context or excluded by \.dockerignore: debug\.log/);
    await expect(paths('vendor/drop.txt')).rejects.toThrow(/excluded by \.dockerignore/);
    expect(await paths('vendor/keep.txt')).toEqual(['vendor/keep.txt']);
  });

  it('finds an excluded directory that an exception re-includes something in, as docker sends it', async () => {
    // `vendor` is excluded, `!vendor/keep.txt` re-includes a file in it: BuildKit's context holds
    // `vendor` with only that file, so it is a source literally and by a wildcard.
    expect(await paths('vendor')).toEqual(['vendor']);
    expect(await paths('vendo?')).toEqual(['vendor']);
    // Nothing re-included below `src/README`-style excluded files: still not found.
    await expect(paths('debug.log')).rejects.toThrow(/not found/);
    expect(await paths('*')).toContain('vendor');
  });

  it('fails when a wildcard matches nothing, or a literal does not exist', async () => {
    await expect(paths('*.rs')).rejects.toThrow(/no source files were specified/);
    await expect(paths('missing.txt')).rejects.toMatchObject({ code: 'CONTEXT' });
  });

  it('refuses sources that climb out of the context, and resolves absolute sources inside it', async () => {
    for (const src of ['../x', '..', 'a/../../x', '../*']) {
      await expect(paths(src)).rejects.toThrow(/forbidden path outside the build context/);
    }
    expect(await paths('/a.txt', '/../b.txt', '/src/*.c')).toEqual(['a.txt', 'b.txt', 'src/main.c', 'src/util.c']);
    expect(contextRelativeSource('/')).toBe('.');
  });

  it('follows a source symlink only when its target stays inside the context', async () => {
    const [inside, abs, rel] = await expandSources(ctx, ['inside-link', 'abs-link', 'rel-escape-link']);
    expect(inside).toMatchObject({ type: 'symlink', linkTarget: 'src/main.c', followTo: { path: 'src/main.c', type: 'file' } });
    expect(abs?.type).toBe('symlink');
    expect(abs?.followTo).toBeUndefined();
    expect(rel?.followTo).toBeUndefined();
  });

  it('resolves symlinked parent directories inside the context, never reading outside', async () => {
    expect(await paths('src-link/main.c')).toEqual(['src/main.c']);
    // outside-dir -> /tmp/kiln-outside-*/ : resolved within the context, where dir/inner.txt does not exist.
    await expect(paths('outside-dir/dir/inner.txt')).rejects.toThrow(/not found/);
    await expect(paths('outside-dir/*')).rejects.toThrow(/no source files/);
  });

  it('reports a malformed wildcard', async () => {
    await expect(paths('src/[')).rejects.toThrow(/syntax error in pattern/);
  });
});

describe('walkContext', () => {
  let work: string;
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('lists a directory\'s entries without ignored ones, re-including ! exceptions, symlinks unfollowed', async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-walk-'));
    await tree(work, {
      '.dockerignore': 'app/*.log\napp/cache\n!app/cache/keep\n',
      'app/main.js': '',
      'app/x.log': '',
      'app/cache/drop': '',
      'app/cache/keep': '',
      'app/lib/util.js': '',
    });
    await symlink('/etc', join(work, 'app/etc-link'));
    const ctx = await openContext(work, '/');
    const entries: string[] = [];
    for await (const e of walkContext(ctx, 'app')) entries.push(`${e.path}:${e.type}`);
    expect(entries).toEqual([
      'app/cache/keep:file',
      'app/etc-link:symlink',
      'app/lib:directory',
      'app/lib/util.js:file',
      'app/main.js:file',
    ]);
  });
});
