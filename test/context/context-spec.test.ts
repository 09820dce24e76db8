import { describe, expect, it } from 'vitest';
import { parseContextSpec, parseGitOptions } from '../../src/context/context-spec.js';

describe('parseContextSpec (kaniko pkg/buildcontext prefixes)', () => {
  it.each([
    ['/workspace/', { kind: 'dir', path: '/workspace/' }],
    ['rel/dir', { kind: 'dir', path: 'rel/dir' }],
    ['dir:///abs', { kind: 'dir', path: '/abs' }],
    ['tar:///tmp/ctx.tar.gz', { kind: 'tar', path: '/tmp/ctx.tar.gz' }],
    ['tar://stdin', { kind: 'stdin' }],
    ['TAR://stdin', { kind: 'stdin' }],
    ['git://github.com/acme/app.git', { kind: 'git', repo: 'github.com/acme/app.git', ref: undefined, commit: undefined }],
    ['git://github.com/acme/app.git#refs/heads/dev', { kind: 'git', repo: 'github.com/acme/app.git', ref: 'refs/heads/dev', commit: undefined }],
    ['git://h/r#refs/heads/dev#0123abcd', { kind: 'git', repo: 'h/r', ref: 'refs/heads/dev', commit: '0123abcd' }],
    ['https://example.com/ctx.tar.gz?sig=1', { kind: 'https', url: 'https://example.com/ctx.tar.gz?sig=1' }],
  ])('%s', (spec, expected) => {
    expect(parseContextSpec(spec)).toEqual(expected);
  });

  it.each([
    ['tar://', /nothing after tar:\/\//],
    ['git://h/r##abc', /expected git:\/\/HOST\/REPO/],
    ['git://h/r#ref#not-a-commit', /is not a commit id/],
    ['git://h/r#a#b#c', /expected git:\/\/HOST\/REPO/],
    ['s3://bucket/ctx.tgz', /s3:\/\/ contexts are not supported by kiln.*tar:\/\/PATH/],
    ['gs://bucket/ctx.tgz', /gs:\/\/ contexts are not supported/],
    ['ftp://h/ctx.tgz', /unknown scheme ftp:\/\//],
  ])('refuses %s', (spec, message) => {
    expect(() => parseContextSpec(spec)).toThrow(message);
  });
});

describe('parseGitOptions (kaniko --git)', () => {
  it('reads comma-separated and repeated key=value pairs', () => {
    expect(parseGitOptions(['branch=dev,single-branch=true', 'recurse-submodules=1', 'insecure-skip-tls=false'])).toEqual({
      branch: 'dev',
      singleBranch: true,
      recurseSubmodules: true,
      insecureSkipTls: false,
    });
    expect(parseGitOptions([])).toEqual({ branch: undefined, singleBranch: false, recurseSubmodules: false, insecureSkipTls: false });
  });

  it('refuses unknown keys, bad booleans and an empty branch', () => {
    expect(() => parseGitOptions(['depth=1'])).toThrow(/unknown option/);
    expect(() => parseGitOptions(['single-branch=yes'])).toThrow(/expected true or false/);
    expect(() => parseGitOptions(['branch='])).toThrow(/empty branch/);
  });
});
