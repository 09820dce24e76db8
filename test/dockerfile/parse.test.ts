import { describe, expect, test } from 'vitest';
import { parseDockerfile } from '../../src/dockerfile/parse.js';

const first = (text: string) => parseDockerfile(text).stages[0]?.instructions[0];

describe('syntax layer follows BuildKit', () => {
  test('directives only count at the very top, and an unknown one ends them', () => {
    expect(parseDockerfile('\n# escape=`\nFROM a\n').directives.escape).toBe('\\');
    expect(parseDockerfile('# foo=bar\n# escape=`\nFROM a\n').directives.escape).toBe('\\');
    expect(parseDockerfile('# syntax = docker/dockerfile:1\n#escape=`\nFROM a\n').directives).toEqual({
      syntax: 'docker/dockerfile:1',
      escape: '`',
    });
  });

  test('an escaped escape at the end of a line is not a continuation', () => {
    const df = parseDockerfile('FROM a\nRUN echo \\\\\nRUN next\n');
    expect(df.stages[0]?.instructions.map((i) => i.line)).toEqual([2, 3]);
  });

  test('CRLF line endings, a BOM and trailing whitespace after the escape are accepted', () => {
    const df = parseDockerfile('\uFEFFFROM a\r\nRUN one \\  \r\n  two\r\nCMD x\r\n');
    const run = df.stages[0]?.instructions[0];
    expect(run).toMatchObject({ kind: 'run', line: 2, endLine: 3, command: { form: 'shell', command: 'one   two' } });
    expect(df.stages[0]?.instructions[1]?.line).toBe(4);
  });

  test('heredoc bodies keep their line endings and are not instructions', () => {
    const run = first('FROM a\nRUN <<EOF\r\nFROM b\r\nEOF\r\n');
    expect(run).toMatchObject({ kind: 'run', endLine: 4, heredocs: [{ name: 'EOF', content: 'FROM b\r\n' }] });
  });

  test('a heredoc whose delimiter is partly quoted is not expanded', () => {
    const run = first('FROM a\nRUN <<E"O"F\n$X\nEOF\n');
    expect(run).toMatchObject({ heredocs: [{ name: 'EOF', expand: false, content: '$X\n' }] });
  });

  test('keywords are case-insensitive and flags may be quoted', () => {
    const copy = first('from a\ncoPY --chown="a b" x y\n');
    expect(copy).toMatchObject({ kind: 'copy', chown: 'a b', sources: [{ kind: 'path', path: 'x' }], dest: 'y' });
  });

  test('a lone -- ends the flags', () => {
    expect(first('FROM a\nRUN -- --not-a-flag\n')).toMatchObject({ command: { form: 'shell', command: '--not-a-flag' } });
  });

  test('a JSON form that does not parse falls back to the shell form', () => {
    expect(first('FROM a\nCMD [not json]\n')).toMatchObject({ command: { form: 'shell', command: '[not json]' } });
    expect(first('FROM a\nCOPY ["a b", "/c d/"]\n')).toMatchObject({ form: 'json', sources: [{ path: 'a b' }], dest: '/c d/' });
  });

  test('the ONBUILD expression is what docker stores', () => {
    expect(first('FROM a\nonbuild   run echo hi\n')).toMatchObject({ kind: 'onbuild', expression: 'run echo hi', trigger: { kind: 'run' } });
  });
});
