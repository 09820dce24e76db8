// COPY/ADD --exclude and COPY --parents below the executor: which sources are selected
// (copy-select.ts), what the copier writes for them (copy-files.ts) and what the layer cache hashes
// (source-digest.ts), on real temp dirs.
import { lstat, mkdir, readFile, readdir, stat, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestSources } from '../../src/builder/source-digest.js';
import { IgnoreMatcher } from '../../src/context/dockerignore.js';
import { DockerfileError } from '../../src/errors.js';
import { copyIntoRootfs, type CopyRequest } from '../../src/instructions/copy/copy-files.js';
import { dropExcludedMatches, parentsMatches, splitPivot, type ParentsRoot } from '../../src/instructions/copy/copy-select.js';
import { tempDir } from '../rootfs/fixtures.js';

const site = { file: 'Dockerfile', line: 3, source: 'COPY --parents x /d/' };

let tmp: { path: string; cleanup: () => Promise<void> };
let src: string;
let dst: string;

async function files(root: string, layout: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(layout)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Every path below `dir`, sorted, directories with a trailing `/`. */
async function tree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const rel = prefix === '' ? d.name : `${prefix}/${d.name}`;
    if (d.isDirectory()) out.push(`${rel}/`, ...(await tree(dir, rel)));
    else out.push(rel);
  }
  return out;
}

function request(more: Partial<CopyRequest>): CopyRequest {
  return { sourceRoot: src, sources: [''], multiple: false, destRoot: dst, dest: '/d/', owner: { uid: 0, gid: 0 }, chmod: undefined, excluded: () => false, site, ...more };
}

beforeEach(async () => {
  tmp = await tempDir();
  src = join(tmp.path, 'src');
  dst = join(tmp.path, 'dst');
  await mkdir(src);
  await mkdir(dst);
});
afterEach(async () => tmp.cleanup());

describe('splitPivot', () => {
  it('splits at the first /./ and keeps what follows, cleaned', () => {
    expect(splitPivot('./x/./y/z')).toEqual({ pivot: './x', pattern: 'y/z' });
    expect(splitPivot('/opt/./app/bin')).toEqual({ pivot: '/opt', pattern: 'app/bin' });
    expect(splitPivot('a/./b/./c')).toEqual({ pivot: 'a', pattern: 'b/c' });
  });
  it('without a pivot, the whole source is the pattern below the root, never climbing out', () => {
    expect(splitPivot('./pkgs/*/package.json')).toEqual({ pivot: '', pattern: 'pkgs/*/package.json' });
    expect(splitPivot('../../etc/passwd')).toEqual({ pivot: '', pattern: 'etc/passwd' });
    expect(splitPivot('/abs/x')).toEqual({ pivot: '', pattern: 'abs/x' });
  });
});

describe('dropExcludedMatches', () => {
  const ex = new IgnoreMatcher(['*.txt'], '--exclude');
  const at = (...paths: string[]) => paths.map((p) => ({ path: p, named: p }));
  it('drops wildcard matches by their path below the literal prefix', () => {
    expect(dropExcludedMatches('hom*', at('homa.txt', 'homb.md'), ex)).toEqual(at('homb.md'));
    expect(dropExcludedMatches('src/*', at('src/a.txt', 'src/b.go'), ex)).toEqual(at('src/b.go'));
  });
  it('never drops a literal source, nor anything without --exclude', () => {
    expect(dropExcludedMatches('a.txt', at('a.txt'), ex)).toEqual(at('a.txt'));
    expect(dropExcludedMatches('*.txt', at('a.txt'), undefined)).toEqual(at('a.txt'));
  });
  it('matches a symlink match by its own name, not by its target', () => {
    // `link.md -> notes.txt`: --exclude=*.txt does not leave out the match `link.md`.
    expect(dropExcludedMatches('*.md', [{ path: 'notes.txt', named: 'link.md' }], ex)).toEqual([{ path: 'notes.txt', named: 'link.md' }]);
    expect(dropExcludedMatches('*.txt', [{ path: 'real.md', named: 'link.txt' }], ex)).toEqual([]);
  });
});

describe('parentsMatches', () => {
  const at = (more: Partial<ParentsRoot> = {}): ParentsRoot => ({ root: src, pivot: '', ignored: () => false, exclude: undefined, site, shown: 'x', ...more });

  it('keeps each match of a glob with its path below the pivot', async () => {
    await files(src, { 'pkgs/p1/package.json': '1', 'pkgs/p2/package.json': '2', 'pkgs/p2/index.js': 'i', 'x/y/a.txt': 'a', 'x/y/c.md': 'c' });
    expect(await parentsMatches('pkgs/*/package.json', at())).toEqual([
      { rel: 'pkgs/p1/package.json', keep: 'pkgs/p1/package.json' },
      { rel: 'pkgs/p2/package.json', keep: 'pkgs/p2/package.json' },
    ]);
    expect(await parentsMatches('y/*.txt', at({ pivot: 'x' }))).toEqual([{ rel: 'x/y/a.txt', keep: 'y/a.txt' }]);
  });

  it('lets ** span any number of directories, zero included', async () => {
    await files(src, { 'src/a.txt': '', 'src/x/b.txt': '', 'src/x/y/c.txt': '', 'src/x/y/d.md': '' });
    expect((await parentsMatches('src/**/*.txt', at())).map((m) => m.keep)).toEqual(['src/a.txt', 'src/x/b.txt', 'src/x/y/c.txt']);
  });

  it('copies nothing for a glob that matches nothing, but refuses a missing literal path', async () => {
    await files(src, { 'a/b': '' });
    expect(await parentsMatches('nothing/*.txt', at())).toEqual([]);
    await expect(parentsMatches('a/missing', at())).rejects.toBeInstanceOf(DockerfileError);
  });

  it('leaves out .dockerignored and --exclude\'d entries and what is below them', async () => {
    await files(src, { 'a/keep.txt': '', 'a/drop.txt': '', 'b/x.txt': '', 'c/y.txt': '' });
    const found = await parentsMatches('*/*.txt', at({ ignored: (rel) => rel === 'c', exclude: new IgnoreMatcher(['a/drop.txt', 'b'], '--exclude') }));
    expect(found.map((m) => m.keep)).toEqual(['a/keep.txt']);
    await expect(parentsMatches('c/y.txt', at({ ignored: (rel) => rel === 'c' }))).rejects.toBeInstanceOf(DockerfileError);
  });

  it('matches an excluded directory only when an exception re-includes something in it, as docker sends the context', async () => {
    await files(src, { 'keep/file': '', 'keep/other': '', 'drop/x': '' });
    // .dockerignore `*` and `!keep/file`, as ContextFiles.isExcluded answers it: excluded directories are entered.
    const dockerignore = new IgnoreMatcher(['*', '!keep/file']);
    const ignored = (rel: string, isDir: boolean): boolean => dockerignore.matches(rel) && !(isDir && dockerignore.hasExceptions);
    expect((await parentsMatches('*', at({ ignored }))).map((m) => m.keep)).toEqual(['keep']);
    expect((await parentsMatches('keep', at({ ignored }))).map((m) => m.keep)).toEqual(['keep']);
    await expect(parentsMatches('drop', at({ ignored }))).rejects.toBeInstanceOf(DockerfileError);
  });
});

describe('copyIntoRootfs with --exclude', () => {
  it('matches below each source: top-level patterns stay at the top, ** reaches down, an excluded directory goes whole', async () => {
    await files(src, { 'app/a.go': '', 'app/a_test.go': '', 'app/lib/b.go': '', 'app/lib/b_test.go': '', 'app/node_modules/m/i.js': '', 'app/x.md': '' });
    await copyIntoRootfs(request({ sources: ['app'], exclude: new IgnoreMatcher(['*_test.go', 'node_modules'], '--exclude') }));
    expect(await tree(dst)).toEqual(['d/', 'd/a.go', 'd/lib/', 'd/lib/b.go', 'd/lib/b_test.go', 'd/x.md']);
  });

  it('re-includes what a ! exception names inside an excluded directory, and only that', async () => {
    await files(src, { 'docs/keep.md': 'k', 'docs/drop.md': 'd', 'other/z': '' });
    await copyIntoRootfs(request({ exclude: new IgnoreMatcher(['docs', 'other', '!docs/keep.md'], '--exclude') }));
    expect(await tree(dst)).toEqual(['d/', 'd/docs/', 'd/docs/keep.md']);
  });

  it('adds to .dockerignore, which keeps matching context-relative paths', async () => {
    await files(src, { 'app/a': '', 'app/b': '', 'app/c': '' });
    await copyIntoRootfs(request({ sources: ['app'], excluded: (rel) => rel === 'app/a', exclude: new IgnoreMatcher(['b'], '--exclude') }));
    expect(await tree(dst)).toEqual(['d/', 'd/c']);
  });
});

describe('copyIntoRootfs with --parents', () => {
  it('writes each source below the destination at its path below the pivot, parents taking the source directories\' modes', async () => {
    await files(src, { 'x/y/a.txt': 'a', 'x/y/sub/b.txt': 'b' });
    await chmod(join(src, 'x/y'), 0o750);
    await copyIntoRootfs(request({ sources: ['x/y/a.txt', 'x/y/sub'], parents: ['y/a.txt', 'y/sub'], dest: '/d' }));
    expect(await tree(dst)).toEqual(['d/', 'd/y/', 'd/y/a.txt', 'd/y/sub/', 'd/y/sub/b.txt']);
    expect((await stat(join(dst, 'd/y'))).mode & 0o777).toBe(0o750);
    expect(await readFile(join(dst, 'd/y/sub/b.txt'), 'utf8')).toBe('b');
  });

  it('matches --exclude below the pivot, the kept path included', async () => {
    await files(src, { 'src/a.txt': '', 'src/x/b.txt': '', 'src/x/c.txt': '' });
    await copyIntoRootfs(request({ sources: ['src'], parents: ['src'], exclude: new IgnoreMatcher(['src/x/b.txt'], '--exclude') }));
    expect(await tree(dst)).toEqual(['d/', 'd/src/', 'd/src/a.txt', 'd/src/x/', 'd/src/x/c.txt']);
    expect((await lstat(join(dst, 'd/src'))).isDirectory()).toBe(true);
  });
});

describe('the layer cache digest', () => {
  it('does not change when an excluded file does, and changes when a copied one does', async () => {
    await files(src, { 'app/keep.txt': 'k', 'app/skip.log': '1', 'app/logs/x': '1' });
    const exclude = new IgnoreMatcher(['*.log', 'logs'], '--exclude');
    const digest = (): Promise<string> => digestSources({ root: src, sources: ['app'], excluded: () => false, exclude, withOwners: false });
    const first = await digest();
    await writeFile(join(src, 'app/skip.log'), '2');
    await writeFile(join(src, 'app/logs/x'), '2');
    expect(await digest()).toBe(first);
    await writeFile(join(src, 'app/keep.txt'), 'changed');
    expect(await digest()).not.toBe(first);
  });

  it('differs by where --parents puts a source', async () => {
    await files(src, { 'x/y/a': 'a' });
    const one = await digestSources({ root: src, sources: ['x/y/a'], bases: ['y/a'], excluded: () => false, withOwners: false });
    const two = await digestSources({ root: src, sources: ['x/y/a'], bases: ['x/y/a'], excluded: () => false, withOwners: false });
    expect(one).not.toBe(two);
  });

  it('differs by the name a followed symlink source is copied as, and not when there is none', async () => {
    await files(src, { t: 'target' });
    const plain = await digestSources({ root: src, sources: ['t'], excluded: () => false, withOwners: false });
    const same = await digestSources({ root: src, sources: ['t'], named: ['t'], excluded: () => false, withOwners: false });
    const l = await digestSources({ root: src, sources: ['t'], named: ['l'], excluded: () => false, withOwners: false });
    const m = await digestSources({ root: src, sources: ['t'], named: ['m'], excluded: () => false, withOwners: false });
    expect(same).toBe(plain);
    expect(l).not.toBe(plain);
    expect(l).not.toBe(m);
  });
});

describe('copyIntoRootfs: names and created destinations', () => {
  it('copies a followed symlink source under the name it was named by (BuildKit: filepath.Base(src))', async () => {
    await files(src, { t: 'target' });
    await copyIntoRootfs(request({ sources: ['t'], named: ['l'], dest: '/d/' }));
    expect(await tree(dst)).toEqual(['d/', 'd/l']);
    expect(await readFile(join(dst, 'd/l'), 'utf8')).toBe('target');
  });

  it('makes a missing destination of a directory source 0755 with the copy owner, not the source directory\'s mode', async () => {
    await files(src, { 'dir/sub/f': 'f' });
    await chmod(join(src, 'dir'), 0o700);
    await chmod(join(src, 'dir/sub'), 0o750);
    await copyIntoRootfs(request({ sources: ['dir'], dest: '/made' }));
    expect((await stat(join(dst, 'made'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(dst, 'made/sub'))).mode & 0o7777).toBe(0o750);
    // An existing destination keeps its own mode.
    await mkdir(join(dst, 'kept'), { mode: 0o711 });
    await chmod(join(dst, 'kept'), 0o711);
    await copyIntoRootfs(request({ sources: ['dir'], dest: '/kept' }));
    expect((await stat(join(dst, 'kept'))).mode & 0o7777).toBe(0o711);
  });
});
