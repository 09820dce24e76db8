import { describe, expect, it } from 'vitest';
import { BadPatternError, cleanPath, goMatch } from '../../src/context/go-path.js';

describe('cleanPath (Go path.Clean)', () => {
  it.each([
    ['', '.'],
    ['a/b/../c', 'a/c'],
    ['./a//b/', 'a/b'],
    ['../a', '../a'],
    ['a/../..', '..'],
    ['/../a', '/a'],
    ['/', '/'],
    ['.', '.'],
  ])('%j -> %j', (input, want) => {
    expect(cleanPath(input)).toBe(want);
  });
});

describe('goMatch (Go filepath.Match)', () => {
  // A selection of Go's own path/filepath match_test.go table.
  it.each([
    ['abc', 'abc', true],
    ['*', 'abc', true],
    ['*c', 'abc', true],
    ['a*', 'a', true],
    ['a*', 'ab/c', false],
    ['a*/b', 'abc/b', true],
    ['a*/b', 'a/c/b', false],
    ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
    ['a*b?c*x', 'abxbbxdbxebxczzx', true],
    ['a*b?c*x', 'abxbbxdbxebxczzy', false],
    ['ab[c]', 'abc', true],
    ['ab[b-d]', 'abc', true],
    ['ab[e-g]', 'abc', false],
    ['ab[^c]', 'abc', false],
    ['ab[^b-d]', 'abe', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'ab', false],
    ['a?b', 'a☺b', true],
    ['a[^a]b', 'a☺b', true],
    ['[\\]a]', ']', true],
    ['[\\-]', '-', true],
    ['*x', 'xxx', true],
  ])('%j on %j is %s', (pattern, name, want) => {
    expect(goMatch(pattern, name)).toBe(want);
  });

  it.each(['[]a]', '[-]', '[x-]', '[', '[^', 'a\\', '[a-b-c]', '*['])('malformed %j throws BadPatternError', (pattern) => {
    expect(() => goMatch(pattern, 'a')).toThrow(BadPatternError);
  });
});
