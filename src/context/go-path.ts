// Go's path.Clean and filepath.Match for slash-separated paths: Dockerfile COPY sources and
// .dockerignore patterns are specified in these terms (docker and kaniko are Go), so edge cases
// (`a/../..`, `[^a]`, `\*`, a trailing `\`) must behave as they do there.
import { ContextError } from '../errors.js';

/** Go's path.Clean: the shortest equivalent slash path; `..` at the root of a rooted path is dropped. */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  if (rooted) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

/** Whether a path holds filepath.Match metacharacters (Go's `hasMeta`: `*`, `?`, `[`, `\`). */
export function hasMeta(p: string): boolean {
  return /[*?[\\]/.test(p);
}

/** A malformed pattern (Go's filepath.ErrBadPattern). */
export class BadPatternError extends ContextError {
  constructor(pattern: string) {
    super(`syntax error in pattern ${JSON.stringify(pattern)}`);
  }
}

/**
 * Go's filepath.Match on Unix: `*` any run of non-`/`, `?` one non-`/` character, `[...]` a class
 * (`^` negates, `a-z` ranges, `\` escapes), `\x` a literal x. Throws BadPatternError for a
 * malformed pattern, as Go returns ErrBadPattern.
 */
export function goMatch(pattern: string, name: string): boolean {
  let pat = [...pattern];
  let s = [...name];
  pattern: while (pat.length > 0) {
    const { star, chunk, rest } = scanChunk(pat);
    pat = rest;
    if (star && chunk.length === 0) return !s.includes('/');
    const first = matchChunk(chunk, s, pattern);
    if (first !== undefined && (first.length === 0 || pat.length > 0)) {
      s = first;
      continue;
    }
    if (star) {
      for (let i = 0; i < s.length && s[i] !== '/'; i++) {
        const t = matchChunk(chunk, s.slice(i + 1), pattern);
        if (t !== undefined) {
          if (pat.length === 0 && t.length > 0) continue;
          s = t;
          continue pattern;
        }
      }
    }
    // Before answering false, check the rest of the pattern is well formed, as Go does.
    while (pat.length > 0) {
      const next = scanChunk(pat);
      pat = next.rest;
      matchChunk(next.chunk, [], pattern);
    }
    return false;
  }
  return s.length === 0;
}

function scanChunk(pattern: readonly string[]): { star: boolean; chunk: string[]; rest: string[] } {
  let p = pattern.slice();
  let star = false;
  while (p.length > 0 && p[0] === '*') {
    p = p.slice(1);
    star = true;
  }
  let inRange = false;
  let i = 0;
  scan: for (; i < p.length; i++) {
    switch (p[i]) {
      case '\\':
        if (i + 1 < p.length) i++;
        break;
      case '[':
        inRange = true;
        break;
      case ']':
        inRange = false;
        break;
      case '*':
        if (!inRange) break scan;
        break;
    }
  }
  return { star, chunk: p.slice(0, i), rest: p.slice(i) };
}

/** Matches one chunk at the start of `s`; the rest of `s` on success, undefined on failure. */
function matchChunk(chunkIn: readonly string[], sIn: readonly string[], pattern: string): string[] | undefined {
  let chunk = chunkIn.slice();
  let s = sIn.slice();
  // After a failure Go keeps scanning the chunk only to report syntax errors.
  let failed = false;
  while (chunk.length > 0) {
    if (!failed && s.length === 0) failed = true;
    const c = chunk[0];
    if (c === '[') {
      let r = '';
      if (!failed) {
        r = s[0] ?? '';
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
      let negated = false;
      if (chunk[0] === '^') {
        negated = true;
        chunk = chunk.slice(1);
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (chunk.length > 0 && chunk[0] === ']' && nrange > 0) {
          chunk = chunk.slice(1);
          break;
        }
        const lo = getEsc(chunk, pattern);
        chunk = lo.rest;
        let hi = lo.ch;
        if (chunk[0] === '-') {
          const h = getEsc(chunk.slice(1), pattern);
          hi = h.ch;
          chunk = h.rest;
        }
        const cp = r.codePointAt(0) ?? -1;
        if ((lo.ch.codePointAt(0) ?? 0) <= cp && cp <= (hi.codePointAt(0) ?? 0)) match = true;
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === '?') {
      if (!failed) {
        if (s[0] === '/') failed = true;
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    } else {
      let lit = c;
      if (c === '\\') {
        chunk = chunk.slice(1);
        if (chunk.length === 0) throw new BadPatternError(pattern);
        lit = chunk[0];
      }
      if (!failed) {
        if (lit !== s[0]) failed = true;
        s = s.slice(1);
      }
      chunk = chunk.slice(1);
    }
  }
  return failed ? undefined : s;
}

function getEsc(chunkIn: readonly string[], pattern: string): { ch: string; rest: string[] } {
  let chunk = chunkIn;
  if (chunk.length === 0 || chunk[0] === '-' || chunk[0] === ']') throw new BadPatternError(pattern);
  if (chunk[0] === '\\') {
    chunk = chunk.slice(1);
    if (chunk.length === 0) throw new BadPatternError(pattern);
  }
  const ch = chunk[0] ?? '';
  const rest = chunk.slice(1);
  if (rest.length === 0) throw new BadPatternError(pattern);
  return { ch, rest };
}
