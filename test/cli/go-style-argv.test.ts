import { describe, expect, it } from 'vitest';
import { executorCommand, BOOLEAN_FLAGS } from '../../src/cli/executor-flags.js';
import { expandGoShorthands, normalizeGoStyleArgv } from '../../src/cli/go-style-argv.js';
import { Command } from 'commander';

/** Parses argv as the executor does (run-command.ts) and returns commander's values. */
function parse(args: string[]): Record<string, unknown> {
  const cmd = executorCommand().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  cmd.parse(normalizeGoStyleArgv(args, BOOLEAN_FLAGS), { from: 'user' });
  return cmd.opts();
}

// kaniko's executor parses its flags with spf13/pflag: a shorthand takes its value as `-fX`, `-f X` or
// `-f=X` (pflag's parseSingleShortArg strips the `=`), a long flag as `--dockerfile X` or `--dockerfile=X`.
describe("kaniko's shorthand flags in every pflag form", () => {
  const cases: Array<[string, string, string, unknown]> = [
    ['-f', '--dockerfile', 'dockerfile', 'sub/Dockerfile.x'],
    ['-c', '--context', 'context', 'dir:///work/ctx'],
    ['-v', '--verbosity', 'verbosity', 'trace'],
  ];
  for (const [short, long, key, value] of cases) {
    it(`${short} / ${long}`, () => {
      const v = String(value);
      for (const form of [[`${short}${v}`], [short, v], [`${short}=${v}`], [`${long}=${v}`], [long, v]]) {
        expect(parse(form)[key], form.join(' ')).toBe(value);
      }
    });
  }

  it('-d (repeatable) in every form', () => {
    const o = parse(['-dreg/a:1', '-d', 'reg/b:2', '-d=reg/c:3', '--destination=reg/d:4', '--destination', 'reg/e:5']);
    expect(o.destination).toEqual(['reg/a:1', 'reg/b:2', 'reg/c:3', 'reg/d:4', 'reg/e:5']);
  });

  it('-f=- (stdin) and an empty -f=', () => {
    expect(parse(['-f=-']).dockerfile).toBe('-');
    expect(parse(['-f=']).dockerfile).toBe('');
  });

  it('a value that looks like a shorthand is the previous flag\'s value, and -- ends the flags', () => {
    expect(expandGoShorthands(['--build-arg', '-v=x', '-d', '-f=y', '--', '-v=z'], executorCommand().options)).toEqual([
      '--build-arg', '-v=x', '-d', '-f=y', '--', '-v=z',
    ]);
    expect(parse(['--build-arg', '-v=x']).buildArg).toEqual(['-v=x']);
  });

  it('verbosity in any case and `warning`, as logrus.ParseLevel reads it', () => {
    expect(parse(['-v=DEBUG']).verbosity).toBe('debug');
    expect(parse(['--verbosity', 'Warning']).verbosity).toBe('warn');
    expect(() => parse(['-v=loud'])).toThrow(/argument 'loud' is invalid\. Allowed choices are panic, fatal, error, warn, info, debug, trace/);
  });

  it('a boolean shorthand takes =true|false', () => {
    const opts = new Command().option('-x, --extra', 'a boolean', false).option('-y <v>', 'a value').options;
    expect(expandGoShorthands(['-x=true', '-x=false', '-x=maybe', '-y=1'], opts)).toEqual(['-x', '-x=maybe', '-y', '1']);
  });
});
