import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IgnoreMatcher, loadDockerignore, parseDockerignore } from '../../src/context/dockerignore.js';

describe('parseDockerignore', () => {
  it('drops BOM, comments and blanks; cleans patterns and a leading slash; keeps ! exceptions', () => {
    const text = '\uFEFF# comment\n\n  *.md  \n!README.md\n/abs/path\n./dot/x/\n ! spaced \n a/../b\n#x\n';
    expect(parseDockerignore(text)).toEqual(['*.md', '!README.md', 'abs/path', 'dot/x', '!spaced', 'b']);
  });

  it('keeps a line starting with a space and # as a pattern, as docker does', () => {
    expect(parseDockerignore(' #notacomment')).toEqual(['#notacomment']);
  });
});

describe('IgnoreMatcher', () => {
  const m = (patterns: string[]): IgnoreMatcher => new IgnoreMatcher(parseDockerignore(patterns.join('\n')));

  it('an excluded directory excludes everything below it', () => {
    const ig = m(['node_modules', 'build/']);
    expect(ig.matches('node_modules')).toBe(true);
    expect(ig.matches('node_modules/a/b.js')).toBe(true);
    expect(ig.matches('build/out.o')).toBe(true);
    expect(ig.matches('src/node_modules')).toBe(false);
  });

  it('* stays within a segment and ** spans directories', () => {
    const ig = m(['*.log', '**/*.tmp', 'docs/**/draft-*']);
    expect(ig.matches('a.log')).toBe(true);
    expect(ig.matches('sub/a.log')).toBe(false);
    expect(ig.matches('x.tmp')).toBe(true);
    expect(ig.matches('deep/er/x.tmp')).toBe(true);
    expect(ig.matches('docs/draft-1')).toBe(true);
    expect(ig.matches('docs/a/b/draft-2')).toBe(true);
    expect(ig.matches('docs/final')).toBe(false);
  });

  it('the last matching pattern wins, so ! exceptions re-include and later patterns re-exclude', () => {
    const ig = m(['*.md', '!README*.md', 'README-secret.md']);
    expect(ig.matches('CHANGES.md')).toBe(true);
    expect(ig.matches('README.md')).toBe(false);
    expect(ig.matches('README-secret.md')).toBe(true);
    expect(ig.hasExceptions).toBe(true);
  });

  it('an exception inside an excluded directory re-includes that file', () => {
    const ig = m(['vendor', '!vendor/keep.txt']);
    expect(ig.matches('vendor/drop.txt')).toBe(true);
    expect(ig.matches('vendor/keep.txt')).toBe(false);
  });

  it('? and character classes follow filepath.Match; the context root is never excluded', () => {
    const ig = m(['file?.txt', 'data[0-9]', '*']);
    expect(new IgnoreMatcher(['file?.txt']).matches('file1.txt')).toBe(true);
    expect(new IgnoreMatcher(['data[0-9]']).matches('data7')).toBe(true);
    expect(new IgnoreMatcher(['data[0-9]']).matches('datax')).toBe(false);
    expect(ig.matches('.')).toBe(false);
  });

  it('rejects "!" alone and malformed patterns with a ContextError', () => {
    expect(() => new IgnoreMatcher(['!'])).toThrow(/illegal exclusion pattern/);
    expect(() => new IgnoreMatcher(['a['])).toThrow(/syntax error in pattern/);
  });
});

describe('loadDockerignore', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-ignore-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('uses <Dockerfile>.dockerignore next to the Dockerfile over the context one', async () => {
    await writeFile(join(work, '.dockerignore'), 'from-context\n');
    await mkdir(join(work, 'docker'));
    await writeFile(join(work, 'docker/app.Dockerfile'), 'FROM scratch\n');
    await writeFile(join(work, 'docker/app.Dockerfile.dockerignore'), 'from-dockerfile\n');
    const specific = await loadDockerignore(work, join(work, 'docker/app.Dockerfile'));
    expect(specific.patterns).toEqual(['from-dockerfile']);
    const plain = await loadDockerignore(work, join(work, 'Dockerfile'));
    expect(plain.patterns).toEqual(['from-context']);
  });

  it('is empty without an ignore file', async () => {
    expect((await loadDockerignore(work)).patterns).toEqual([]);
  });
});
