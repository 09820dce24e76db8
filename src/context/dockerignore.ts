// .dockerignore, read and matched as docker does (moby/patternmatcher + its ignorefile.ReadAll):
//   - a UTF-8 BOM is dropped; lines starting with `#` are comments (checked before trimming);
//   - each line is trimmed; `!` marks an exception; patterns are path.Clean'ed and a leading `/`
//     dropped, so `/a`, `./a` and `a` are the same;
//   - `*` and `?` stop at `/`, `[...]` is a class, `**` matches any number of directories;
//   - a path is excluded when the last pattern that matches it, or one of its parent directories,
//     is not an exception (MatchesOrParentMatches).
// The Dockerfile-specific `<Dockerfile>.dockerignore` next to the Dockerfile wins over the
// context's `.dockerignore` (BuildKit).
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ContextError } from '../errors.js';
import { BadPatternError, cleanPath, goMatch } from './go-path.js';

/** Parses .dockerignore text into cleaned patterns (exceptions keep their `!`). */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (const raw of lines) {
    if (raw.startsWith('#')) continue;
    let pattern = raw.trim();
    if (pattern === '') continue;
    const invert = pattern.startsWith('!');
    if (invert) pattern = pattern.slice(1).trim();
    if (pattern.length > 0) {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    out.push(invert ? `!${pattern}` : pattern);
  }
  return out;
}

interface CompiledPattern {
  readonly source: string;
  readonly exclusion: boolean;
  readonly test: (path: string) => boolean;
}

/** A compiled list of ignore patterns; immutable, safe to share. */
export class IgnoreMatcher {
  readonly patterns: readonly string[];
  readonly #compiled: readonly CompiledPattern[];
  /** Whether any `!` exception exists: an excluded directory may then still hold included files. */
  readonly hasExceptions: boolean;

  /** `label` names where the patterns come from in errors (`.dockerignore`, `--exclude`). */
  constructor(patterns: readonly string[], label = '.dockerignore') {
    const compiled: CompiledPattern[] = [];
    for (const raw of patterns) {
      let p = raw.trim();
      if (p === '') continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p.startsWith('!')) {
        if (p.length === 1) throw new ContextError(`${label}: illegal exclusion pattern: "!"`);
        exclusion = true;
        p = p.slice(1);
      }
      // As patternmatcher: filepath.Match's error state is the syntax check.
      try {
        goMatch(p, '.');
      } catch (err) {
        if (err instanceof BadPatternError) throw new ContextError(`${label}: syntax error in pattern ${JSON.stringify(p)}`);
        throw err;
      }
      compiled.push({ source: p, exclusion, test: compilePattern(p, label) });
    }
    this.#compiled = compiled;
    this.patterns = [...patterns];
    this.hasExceptions = compiled.some((c) => c.exclusion);
  }

  /** Whether a context-relative slash path is excluded (patternmatcher's MatchesOrParentMatches). */
  matches(relPath: string): boolean {
    const file = cleanPath(relPath);
    if (file === '.') return false;
    const slash = file.lastIndexOf('/');
    const parentDirs = slash < 0 ? [] : file.slice(0, slash).split('/');
    let matched = false;
    for (const pattern of this.#compiled) {
      // An inclusion cannot change a match, nor an exception a non-match.
      if (pattern.exclusion !== matched) continue;
      let match = pattern.test(file);
      for (let i = 0; !match && i < parentDirs.length; i++) {
        match = pattern.test(parentDirs.slice(0, i + 1).join('/'));
      }
      if (match) matched = !pattern.exclusion;
    }
    return matched;
  }
}

/** patternmatcher's compile: exact, prefix (`a/**`), suffix (`**\/a`) or a regexp. */
function compilePattern(pattern: string, label: string): (path: string) => boolean {
  const chars = [...pattern];
  let re = '^';
  type Kind = 'exact' | 'prefix' | 'suffix' | 'regexp';
  let kind: Kind = 'exact';
  for (let i = 0, n = 0; i < chars.length; i++, n++) {
    const ch = chars[i];
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++;
        if (i + 1 >= chars.length) {
          if (kind === 'exact') kind = 'prefix';
          else {
            re += '.*';
            kind = 'regexp';
          }
        } else {
          re += '(.*/)?';
          kind = 'regexp';
        }
        if (n === 0) kind = 'suffix';
      } else {
        re += '[^/]*';
        kind = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      kind = 'regexp';
    } else if (ch !== undefined && '.+()|{}$'.includes(ch)) {
      re += `\\${ch}`;
    } else if (ch === '\\') {
      const next = chars[i + 1];
      if (next !== undefined) {
        re += `\\${next}`;
        i++;
        kind = 'regexp';
      } else {
        re += '\\\\';
      }
    } else if (ch === '[' || ch === ']') {
      re += ch;
      kind = 'regexp';
    } else {
      re += ch;
    }
  }
  switch (kind) {
    case 'exact':
      return (path) => path === pattern;
    case 'prefix': {
      const prefix = pattern.slice(0, -2);
      return (path) => path.startsWith(prefix);
    }
    case 'suffix': {
      const suffix = pattern.slice(2);
      return (path) => path.endsWith(suffix) || (suffix.startsWith('/') && path === suffix.slice(1));
    }
    case 'regexp': {
      let regexp: RegExp;
      try {
        regexp = new RegExp(`${re}$`);
      } catch (err) {
        throw new ContextError(`${label}: syntax error in pattern ${JSON.stringify(pattern)}`, { cause: err });
      }
      return (path) => regexp.test(path);
    }
  }
}

/** The ignore file that applies: `<Dockerfile>.dockerignore` beside the Dockerfile, else `<context>/.dockerignore`. */
export async function loadDockerignore(contextRoot: string, dockerfilePath?: string): Promise<IgnoreMatcher> {
  const candidates = [
    ...(dockerfilePath !== undefined ? [join(dirname(dockerfilePath), `${basename(dockerfilePath)}.dockerignore`)] : []),
    join(contextRoot, '.dockerignore'),
  ];
  for (const file of candidates) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new ContextError(`reading ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return new IgnoreMatcher(parseDockerignore(text));
  }
  return new IgnoreMatcher([]);
}
