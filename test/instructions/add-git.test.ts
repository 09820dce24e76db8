// Which ADD sources are git repositories, and what their fragment and query say, after BuildKit's
// dfgitutil.ParseGitRef (and its test table).
import { describe, expect, it } from 'vitest';
import { DockerfileError } from '../../src/errors.js';
import { isGitSource, parseGitChecksum, parseGitSource } from '../../src/instructions/add/add-git.js';

const site = { file: 'Dockerfile', line: 2, source: 'ADD x /y' };
const parse = (s: string): ReturnType<typeof parseGitSource> => parseGitSource(s, site);

describe('ADD git sources', () => {
  it('takes http(s) URLs as git repositories only when the path ends in .git', () => {
    expect(parse('https://example.com/')).toBeUndefined();
    expect(parse('https://example.com/foo')).toBeUndefined();
    expect(parse('https://example.com/foo.git/')).toBeUndefined();
    expect(parse('https://example.com/foo.git.bar')).toBeUndefined();
    expect(parse('http://github.com/docker/docker.git:#branch')).toBeUndefined();
    expect(parse('https://example.com/foo.git')).toMatchObject({ transport: 'https', remote: 'https://example.com/foo.git', ref: undefined, subdir: undefined });
    expect(parse('http://127.0.0.1:8080/org/app.git#v1')).toMatchObject({ transport: 'http', host: '127.0.0.1:8080', ref: 'v1' });
  });

  it('reads #ref, #ref:subdir and #:subdir', () => {
    expect(parse('https://example.com/foo.git#release/1.2')).toMatchObject({ ref: 'release/1.2', subdir: undefined });
    expect(parse('https://github.com/foo/bar.git#baz/qux:quux/quuz')).toMatchObject({ remote: 'https://github.com/foo/bar.git', ref: 'baz/qux', subdir: 'quux/quuz' });
    expect(parse('https://github.com/docker/docker.git#:myfolder')).toMatchObject({ ref: undefined, subdir: 'myfolder' });
  });

  it('reads the query form and refuses conflicts and unknown keys', () => {
    expect(parse('https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir')).toMatchObject({ remote: 'https://github.com/docker/docker.git', ref: 'v1.0.0', subdir: '/subdir' });
    expect(parse('https://h/r.git?tag=v1')).toMatchObject({ ref: 'refs/tags/v1' });
    expect(parse('https://h/r.git?branch=dev&keep-git-dir&submodules=false')).toMatchObject({ ref: 'refs/heads/dev', keepGitDir: true, submodules: false });
    expect(parse('https://h/r.git?checksum=abc123')).toMatchObject({ ref: 'abc123', checksum: 'abc123' });
    expect(() => parse('https://h/r.git#main?ref=dev')).not.toThrow(); // the query is inside the fragment there
    expect(() => parse('https://h/r.git?ref=dev#main')).toThrow(/ref conflicts: "main" vs "dev"/);
    expect(() => parse('https://h/r.git?tag=a&branch=b')).toThrow(/branch conflicts with tag/);
    expect(() => parse('https://h/r.git?ref=')).toThrow(/query "ref" has no value/);
    expect(() => parse('https://h/r.git?colour=red')).toThrow(DockerfileError);
    expect(isGitSource('https://h/r.git?colour=red')).toBe(true);
  });

  it('recognises git://, ssh:// and scp-like sources, and keeps user info out of what is shown', () => {
    expect(parse('git://example.com/foo')).toMatchObject({ transport: 'git', remote: 'git://example.com/foo' });
    expect(parse('ssh://git@example.com/foo.git#main')).toMatchObject({ transport: 'ssh', ref: 'main' });
    expect(parse('git@github.com:moby/buildkit.git#v0.10.1:docs')).toMatchObject({ transport: 'ssh', remote: 'git@github.com:moby/buildkit.git', host: 'github.com', ref: 'v0.10.1', subdir: 'docs' });
    expect(parse('https://user:s3cret@example.com/foo.git')).toMatchObject({ remote: 'https://user:s3cret@example.com/foo.git', shown: 'https://example.com/foo.git' });
  });

  it('leaves local paths and other schemes alone', () => {
    for (const p of ['./.git', '.git', 'src/app.git', 'a:b', 'ftp://h/r.git', 'dir/*.txt']) expect(isGitSource(p)).toBe(false);
  });

  it('takes a hex commit name as a git checksum', () => {
    expect(parseGitChecksum('ABCdef0123', site)).toBe('abcdef0123');
    expect(() => parseGitChecksum('sha256:abc', site)).toThrow(/expected hex commit hash/);
  });
});
