// Instruction flags (`--from=x`, `--link`, `--mount=...`), checked like BuildKit's instructions/bflag.go:
// a string flag needs `=value`, a bool flag is `--x`, `--x=true` or `--x=false`, only list flags may repeat.

export type FlagKind = 'bool' | 'string' | 'strings';
export type FlagSpec = Readonly<Record<string, FlagKind>>;

export interface ParsedFlags {
  /** Bool flags that were given (absent means false). */
  readonly bools: ReadonlyMap<string, boolean>;
  readonly strings: ReadonlyMap<string, string>;
  readonly lists: ReadonlyMap<string, readonly string[]>;
}

/** Parses `words` (from `extractFlags`) against `spec`; reports problems through `fail`, which throws. */
export function parseFlags(words: readonly string[], spec: FlagSpec, fail: (detail: string) => never): ParsedFlags {
  const bools = new Map<string, boolean>();
  const strings = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const used = new Set<string>();
  for (const word of words) {
    if (!word.startsWith('--')) fail(`flag should start with --: ${word}`);
    if (word === '--') break;
    const body = word.slice(2);
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const value = eq >= 0 ? body.slice(eq + 1) : undefined;
    const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (kind === undefined) fail(`unknown flag: --${name}`);
    if (used.has(name) && kind !== 'strings') fail(`duplicate flag specified: --${name}`);
    used.add(name);
    switch (kind) {
      case 'bool': {
        if (value === undefined) {
          bools.set(name, true);
          break;
        }
        const lower = value.toLowerCase();
        if (lower !== 'true' && lower !== 'false') {
          fail(value === '' ? `missing a value on flag: --${name}` : `expecting boolean value for flag --${name}, not: ${value}`);
        }
        bools.set(name, lower === 'true');
        break;
      }
      case 'string':
        if (value === undefined) fail(`missing a value on flag: --${name}`);
        strings.set(name, value);
        break;
      case 'strings': {
        if (value === undefined) fail(`missing a value on flag: --${name}`);
        const list = lists.get(name) ?? [];
        list.push(value);
        lists.set(name, list);
        break;
      }
      case undefined:
        break;
    }
  }
  return { bools, strings, lists };
}
