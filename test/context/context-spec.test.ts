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
    ['s3://bucket/ctx.tgz', { kind: 's3', bucket: 'bucket', key: 'ctx.tgz' }],
    ['s3://bucket/dir/sub/ctx.tar.gz', { kind: 's3', bucket: 'bucket', key: 'dir/sub/ctx.tar.gz' }],
    // kaniko's GetBucketAndItem: a bucket alone (or with a bare slash) is its context.tar.gz.
    ['s3://bucket', { kind: 's3', bucket: 'bucket', key: 'context.tar.gz' }],
    ['gs://bucket/', { kind: 'gcs', bucket: 'bucket', object: 'context.tar.gz' }],
    ['gs://bucket/a/b.tgz', { kind: 'gcs', bucket: 'bucket', object: 'a/b.tgz' }],
    ['https://acct.blob.core.windows.net/ctr/dir/ctx%20one.tar.gz', { kind: 'azure', url: 'https://acct.blob.core.windows.net/ctr/dir/ctx%20one.tar.gz', account: 'acct', container: 'ctr', blob: 'dir/ctx one.tar.gz' }],
    ['https://acct.blob.core.chinacloudapi.cn/ctr/c.tgz', { kind: 'azure', url: 'https://acct.blob.core.chinacloudapi.cn/ctr/c.tgz', account: 'acct', container: 'ctr', blob: 'c.tgz' }],
    // Only the blob host itself: a name that merely starts like one is a plain download.
    ['https://acct.blob.core.windows.net.example.com/ctr/c.tgz', { kind: 'https', url: 'https://acct.blob.core.windows.net.example.com/ctr/c.tgz' }],
  ])('%s', (spec, expected) => {
    expect(parseContextSpec(spec)).toEqual(expected);
  });

  it.each([
    ['tar://', /nothing after tar:\/\//],
    ['git://h/r##abc', /expected git:\/\/HOST\/REPO/],
    ['git://h/r#ref#not-a-commit', /is not a commit id/],
    ['git://h/r#a#b#c', /expected git:\/\/HOST\/REPO/],
    ['s3://', /nothing after s3:\/\//],
    ['gs:///obj', /expected gs:\/\/BUCKET\/PATH/],
    ['https://acct.blob.core.windows.net/ctr', /expected https:\/\/ACCOUNT\.blob\.core\.windows\.net\/CONTAINER\/PATH/],
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
