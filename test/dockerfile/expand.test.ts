import { describe, expect, test } from 'vitest';
import { DockerfileError } from '../../src/errors.js';
import { expandWithUsage, expandWord, expandWords, expansionOf } from '../../src/dockerfile/expand.js';

const vars = new Map<string, string>([
  ['v', 'value'],
  ['empty', ''],
  ['spaced', 'a b  c'],
  ['path', '/usr/local/bin/app.tar.gz'],
  ['HOME', '/root'],
]);
const lookup = (n: string): string | undefined => vars.get(n);
const x = (w: string, escape: '\\' | '`' = '\\'): string => expandWord(w, lookup, escape);

describe('expandWord substitutes variables as BuildKit does', () => {
  test.each([
    ['$v', 'value'],
    ['${v}', 'value'],
    ['pre${v}post', 'prevaluepost'],
    ['$v.txt', 'value.txt'],
    ['$unset', ''],
    ['${unset}', ''],
    ['$', '$'],
    ['a$', 'a$'],
    ['$1', ''],
    ['${v:-def}', 'value'],
    ['${unset:-def}', 'def'],
    ['${empty:-def}', 'def'],
    ['${empty-def}', ''],
    ['${unset-def}', 'def'],
    ['${v:+alt}', 'alt'],
    ['${empty:+alt}', ''],
    ['${empty+alt}', 'alt'],
    ['${unset+alt}', ''],
    ['${unset:-${v}}', 'value'],
    ['${unset:-a b}', 'a b'],
    ['${path#*/}', 'usr/local/bin/app.tar.gz'],
    ['${path##*/}', 'app.tar.gz'],
    ['${path%.*}', '/usr/local/bin/app.tar'],
    ['${path%%.*}', '/usr/local/bin/app'],
    ['${path/local/LOCAL}', '/usr/LOCAL/bin/app.tar.gz'],
    ['${spaced// /_}', 'a_b__c'],
  ])('%s -> %s', (word, want) => {
    expect(x(word)).toBe(want);
  });
});

describe('quotes and escapes', () => {
  test.each([
    ["'$v'", '$v'],
    ['"$v"', 'value'],
    ['"a \'b\' $v"', "a 'b' value"],
    ["'a \"b\"'", 'a "b"'],
    ['\\$v', '$v'],
    ['"\\$v"', '$v'],
    ['"\\"quoted\\""', '"quoted"'],
    ['"back\\slash"', 'back\\slash'],
    ['a\\ b', 'a b'],
    ['trailing\\', 'trailing'],
    ['"${unset:-x y}"', 'x y'],
    ["${unset:-'$v'}", '$v'],
  ])('%s -> %s', (word, want) => {
    expect(x(word)).toBe(want);
  });

  test('the backtick escape directive escapes with ` and leaves \\ alone', () => {
    expect(x('C:\\path\\$v', '`')).toBe('C:\\path\\value');
    expect(x('`$v', '`')).toBe('$v');
    expect(x('"`"q`""', '`')).toBe('"q"');
  });
});

describe('expandWords splits on unquoted whitespace, including in variable values', () => {
  test.each([
    ['80 443/tcp', ['80', '443/tcp']],
    ['$spaced', ['a', 'b', 'c']],
    ['"$spaced"', ['a b  c']],
    ["'a b' c", ['a b', 'c']],
    ['a\\ b c', ['a b', 'c']],
    ['"" x', ['x']],
    ['  lead  trail  ', ['lead', 'trail']],
  ])('%s -> %j', (word, want) => {
    expect(expandWords(word, lookup)).toEqual(want);
  });
});

describe('errors are DockerfileErrors pointing at the instruction', () => {
  test.each([
    ["'open", 'unexpected end of statement while looking for matching single-quote'],
    ['"open', 'unexpected end of statement while looking for matching double-quote'],
    ['${v', "syntax error: missing '}'"],
    ['${}', 'syntax error: bad substitution'],
    ['${:x}', 'syntax error: bad substitution'],
    ['${v!x}', 'unsupported modifier (!) in substitution'],
    ['${unset?}', 'unset: is not allowed to be unset'],
    ['${empty:?must not be empty}', 'empty: must not be empty'],
    ['${v:-unterminated', "syntax error: missing '}'"],
  ])('%s fails: %s', (word, detail) => {
    let caught: unknown;
    try {
      expandWord(word, lookup, '\\', { file: 'Dockerfile', line: 7, source: `ENV X=${word}` });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DockerfileError);
    const e = caught as DockerfileError;
    expect(e.line).toBe(7);
    expect(e.detail).toContain(detail);
    expect(e.message.startsWith('Dockerfile:7 ENV X=')).toBe(true);
  });
});

test('expandWithUsage reports which variables were found and which were not', () => {
  const r = expandWithUsage('$v ${nope:-x} $HOME', lookup);
  expect(r.value).toBe('value x /root');
  expect([...r.matched].sort()).toEqual(['HOME', 'v']);
  expect(r.unmatched).toEqual(['nope']);
});

test('expansionOf states which instructions the builder expands', () => {
  for (const k of ['add', 'copy', 'env', 'expose', 'from', 'label', 'stopsignal', 'user', 'volume', 'workdir', 'arg'] as const) {
    expect(expansionOf(k)).toBe('builder');
  }
  for (const k of ['run', 'cmd', 'entrypoint', 'shell', 'healthcheck'] as const) expect(expansionOf(k)).toBe('shell');
  expect(expansionOf('onbuild')).toBe('none');
  expect(expansionOf('maintainer')).toBe('none');
});
