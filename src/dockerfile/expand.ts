// Word expansion with the semantics of BuildKit's shell lexer (frontend/dockerfile/shell/lex.go):
// `$v`, `${v}`, `${v:-x}`, `${v-x}`, `${v:+x}`, `${v+x}`, `${v:?x}`, `${v?x}`, `${v#p}`, `${v##p}`,
// `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`; single quotes literal; double quotes expand `$` only;
// the escape character (`\` or `` ` ``) escapes one character. This is NOT a shell: no command
// substitution, no globbing, no arithmetic. Pure: the variables come from `lookup`.
//
// Which instructions the builder expands (Dockerfile reference, "Environment replacement"): ADD COPY
// ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ONBUILD(no: its trigger expands when it runs)
// plus ARG. RUN/CMD/ENTRYPOINT are left to the shell; see `expansionOf`.

import { DockerfileError } from '../errors.js';
import type { EscapeChar, InstructionKind } from './instructions.js';

/** Returns a variable's value, or `undefined` when it is not set (set-but-empty is `''`). */
export type Lookup = (name: string) => string | undefined;

/** Where an expanded word came from, so expansion errors point at the instruction. */
export interface ExpandSite {
  readonly file: string;
  readonly line?: number;
  readonly source?: string;
}

export interface ExpandResult {
  /** The word with quotes removed and variables substituted, inner whitespace kept. */
  readonly value: string;
  /** The same, split into words on unquoted whitespace (also whitespace from variable values). */
  readonly words: readonly string[];
  /** Variables that were looked up and found / not found (BuildKit uses these for lint and unused-arg checks). */
  readonly matched: readonly string[];
  readonly unmatched: readonly string[];
}

/** Lexer switches, as BuildKit's `Lex` has them; only the heredoc detector uses anything but defaults. */
export interface LexOptions {
  /** Keep quote characters in the output. */
  readonly rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  readonly rawEscapes?: boolean;
  /** Leave references to unset variables as written (`$x`, `${x:-y}`). */
  readonly skipUnset?: boolean;
}

/** Expands one word (ENV/LABEL values, WORKDIR, USER, COPY paths ...). Throws `DockerfileError`. */
export function expandWord(word: string, lookup: Lookup, escape: EscapeChar = '\\', site?: ExpandSite): string {
  return lex(word, lookup, escape, {}, site).value;
}

/** Expands and splits into words (EXPOSE, and anything else that takes a list). Throws `DockerfileError`. */
export function expandWords(word: string, lookup: Lookup, escape: EscapeChar = '\\', site?: ExpandSite): string[] {
  return [...lex(word, lookup, escape, {}, site).words];
}

/** The full result: value, words, and which variables were used. Throws `DockerfileError`. */
export function expandWithUsage(word: string, lookup: Lookup, escape: EscapeChar = '\\', site?: ExpandSite): ExpandResult {
  return lex(word, lookup, escape, {}, site);
}

/** A lookup over a map (e.g. a stage's ARG/ENV scope). */
export function lookupIn(vars: ReadonlyMap<string, string>): Lookup {
  return (name) => vars.get(name);
}

/** How the builder treats an instruction's arguments. */
export type Expansion =
  /** Expanded by the builder against the stage's ARG + ENV scope. */
  | 'builder'
  /** Left to the shell inside the container (RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK). */
  | 'shell'
  /** Not expanded at all (ONBUILD: the trigger expands in the child build; MAINTAINER). */
  | 'none';

/** Whether the builder expands variables in an instruction of this kind (Dockerfile reference, "Environment replacement"). */
export function expansionOf(kind: InstructionKind | 'from'): Expansion {
  switch (kind) {
    case 'add':
    case 'copy':
    case 'env':
    case 'expose':
    case 'from':
    case 'label':
    case 'stopsignal':
    case 'user':
    case 'volume':
    case 'workdir':
    case 'arg':
      return 'builder';
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'shell':
    case 'healthcheck':
      return 'shell';
    case 'onbuild':
    case 'maintainer':
      return 'none';
  }
}

/** The lexer itself. Exported for the heredoc detector, which needs BuildKit's raw modes. */
export function lex(word: string, lookup: Lookup, escape: EscapeChar, options: LexOptions, site?: ExpandSite): ExpandResult {
  const lexer = new Lexer(word, lookup, escape, options);
  try {
    const { value, words } = lexer.processStopOn(undefined, options.rawEscapes ?? false);
    return { value, words, matched: [...lexer.matched], unmatched: [...lexer.unmatched] };
  } catch (err) {
    if (err instanceof LexError) {
      const where: { file: string; line?: number; source?: string } = { file: site?.file ?? 'Dockerfile' };
      if (site?.line !== undefined) where.line = site.line;
      if (site?.source !== undefined) where.source = site.source;
      throw new DockerfileError(`failed to process ${JSON.stringify(word)}: ${err.message}`, where);
    }
    throw err;
  }
}

class LexError extends Error {}

// Go's unicode.IsSpace (note: U+0085 yes, U+FEFF no, unlike JS `\s`).
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;
const LETTER = /^\p{L}$/u;
const DIGIT = /^\p{Nd}$/u;

function isSpace(ch: string): boolean {
  return SPACE.test(ch);
}

/** Shell special parameters (POSIX 2.5.2): `$@ $* $# $? $- $$ $! $0`. */
function isSpecialParam(ch: string): boolean {
  return '@*#?-$!0'.includes(ch);
}

/** BuildKit's `wordsStruct`: accumulates whitespace-separated words as characters arrive. */
class Words {
  private word = '';
  private inWord = false;
  readonly words: string[] = [];
  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length > 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else {
      this.addRawString(ch);
    }
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  finish(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

class Lexer {
  private readonly chars: string[];
  private pos = 0;
  readonly matched = new Set<string>();
  readonly unmatched = new Set<string>();

  constructor(
    word: string,
    private readonly lookup: Lookup,
    private readonly escape: EscapeChar,
    private readonly options: LexOptions,
  ) {
    this.chars = Array.from(word);
  }

  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    const ch = this.chars[this.pos];
    if (ch !== undefined) this.pos++;
    return ch;
  }

  private getEnv(name: string): string | undefined {
    const v = this.lookup(name);
    if (v === undefined) this.unmatched.add(name);
    else this.matched.add(name);
    return v;
  }

  /** Processes until `stop` (consumed) or the end; `stop` undefined means "until the end". */
  processStopOn(stop: string | undefined, rawEscapes: boolean): { value: string; words: string[] } {
    let result = '';
    const words = new Words();
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (stop !== undefined && ch === stop) {
        this.next();
        return { value: result, words: words.finish() };
      }
      if (ch === '$') {
        const tmp = this.processDollar();
        result += tmp;
        words.addString(tmp); // unquoted variable values are split into words
      } else if (ch === "'") {
        const tmp = this.processSingleQuote();
        result += tmp;
        words.addRawString(tmp);
      } else if (ch === '"') {
        const tmp = this.processDoubleQuote(rawEscapes);
        result += tmp;
        words.addRawString(tmp);
      } else {
        let c = this.next() as string;
        if (c === this.escape) {
          if (rawEscapes) {
            words.addRawString(c);
            result += c;
          }
          const escaped = this.next();
          if (escaped === undefined) break; // an escape at the very end is dropped
          c = escaped;
          words.addRawString(c);
        } else {
          words.addChar(c);
        }
        result += c;
      }
    }
    if (stop !== undefined) throw new LexError(`unexpected end of statement while looking for matching ${stop}`);
    return { value: result, words: words.finish() };
  }

  private processSingleQuote(): string {
    // Everything up to the next ' is literal; a ' cannot be escaped inside (sh(1), "Single Quotes").
    let result = '';
    const open = this.next() as string;
    if (this.options.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === undefined) throw new LexError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.options.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private processDoubleQuote(rawEscapes: boolean): string {
    // Literal except `$`; the escape char escapes only `"`, `$` and itself, otherwise it stays.
    let result = '';
    const open = this.next() as string;
    if (this.options.rawQuotes) result += open;
    for (;;) {
      const p = this.peek();
      if (p === undefined) throw new LexError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        if (this.options.rawQuotes) result += p;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        continue;
      }
      let ch = this.next() as string;
      if (ch === this.escape) {
        if (rawEscapes) result += ch;
        const after = this.peek();
        if (after === undefined) continue;
        if (after === '"' || after === '$' || after === this.escape) ch = this.next() as string;
      }
      result += ch;
    }
  }

  private processDollar(): string {
    this.next(); // '$'
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const value = this.getEnv(name);
      if (value === undefined && this.options.skipUnset) return `$${name}`;
      return value ?? '';
    }
    this.next(); // '{'
    const first = this.peek();
    if (first === undefined) throw new LexError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new LexError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    if (ch === undefined) throw new LexError("syntax error: missing '}'");
    let chs = ch;
    if (ch === '}') {
      const value = this.getEnv(name);
      if (value === undefined && this.options.skipUnset) return `\${${name}}`;
      return value ?? '';
    }
    if (ch === '/') return this.processReplace(name);
    let nullIsUnset = false;
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      if (ch === undefined) throw new LexError("syntax error: missing '}'");
      chs += ch;
    } else if (!'+-?#%'.includes(ch)) {
      throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }
    let word: string;
    try {
      word = this.processStopOn('}', ch === '#' || ch === '%').value;
    } catch (err) {
      if (this.peek() === undefined) throw new LexError("syntax error: missing '}'");
      throw err;
    }
    const value = this.getEnv(name);
    if (this.options.skipUnset && value === undefined) return `\${${name}${chs}${word}}`;
    const unsetOrNull = value === undefined || (nullIsUnset && value === '');
    switch (ch) {
      case '-':
        return unsetOrNull ? word : (value ?? '');
      case '+':
        return unsetOrNull ? '' : word;
      case '?':
        if (value === undefined) throw new LexError(`${name}: ${word === '' ? 'is not allowed to be unset' : word}`);
        if (nullIsUnset && value === '') throw new LexError(`${name}: ${word === '' ? 'is not allowed to be empty' : word}`);
        return value;
      case '#':
      case '%': {
        const greedy = word.startsWith(ch);
        const pattern = greedy ? word.slice(1) : word;
        return ch === '%' ? trimSuffix(pattern, value ?? '', greedy) : trimPrefix(pattern, value ?? '', greedy);
      }
      default:
        throw new LexError(`unsupported modifier (${chs}) in substitution`);
    }
  }

  private processReplace(name: string): string {
    const replaceAll = this.peek() === '/';
    if (replaceAll) this.next();
    let pattern: string;
    try {
      pattern = this.processStopOn('/', true).value;
    } catch (err) {
      if (this.peek() === undefined) throw new LexError("syntax error: missing '/' in ${}");
      throw err;
    }
    let replacement: string;
    try {
      replacement = this.processStopOn('}', true).value;
    } catch (err) {
      if (this.peek() === undefined) throw new LexError("syntax error: missing '}'");
      throw err;
    }
    const value = this.getEnv(name);
    if (this.options.skipUnset && value === undefined) return `\${${name}/${pattern}/${replacement}}`;
    const re = shellPatternToRegex(pattern, true, false, replaceAll);
    // A function replacement keeps `$&` and friends in the replacement text literal.
    return (value ?? '').replace(re, () => replacement);
  }

  private processName(): string {
    // A name is letters, digits and `_`; a leading digit reads a positional parameter ($10 is "10").
    let name = '';
    for (;;) {
      const ch = this.peek();
      if (ch === undefined) break;
      if (name === '' && DIGIT.test(ch)) {
        while (this.peek() !== undefined && DIGIT.test(this.peek() as string)) name += this.next() as string;
        return name;
      }
      if (name === '' && isSpecialParam(ch)) {
        this.next();
        return ch;
      }
      if (!LETTER.test(ch) && !DIGIT.test(ch) && ch !== '_') break;
      name += this.next() as string;
    }
    return name;
  }
}

/**
 * A shell pattern (`?` one char, `*` any run, `\` escapes `*` `?` `\`; no bracket expressions, as in
 * BuildKit) as a RegExp. `*` is lazy unless `greedy`.
 */
function shellPatternToRegex(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  const chars = Array.from(pattern);
  let out = anchored ? '^' : '';
  for (let i = 0; i < chars.length; i++) {
    const tok = chars[i] as string;
    if (tok === '*') {
      out += greedy ? '[^\n]*' : '[^\n]*?';
    } else if (tok === '?') {
      out += '[^\n]';
    } else if (tok === '\\') {
      const nextCh = chars[i + 1];
      // `\}` and `\/` inside ${} are escapes of the substitution syntax, not of the pattern.
      if (nextCh === '}' || nextCh === '/') continue;
      if (nextCh !== '*' && nextCh !== '?' && nextCh !== '\\') {
        throw new LexError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${nextCh ?? ''}'`);
      }
      out += `\\${nextCh}`;
      i++;
    } else {
      out += tok.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(out, global ? 'gu' : 'u');
}

function trimPrefix(pattern: string, value: string, greedy: boolean): string {
  const m = shellPatternToRegex(pattern, greedy, true).exec(value);
  return m === null ? value : value.slice(m[0].length);
}

function trimSuffix(pattern: string, value: string, greedy: boolean): string {
  // Regexps find leftmost matches, so reverse both the value and the pattern (keeping `\x` pairs in order).
  const reversed = trimPrefix(reversePattern(pattern), Array.from(value).reverse().join(''), greedy);
  return Array.from(reversed).reverse().join('');
}

function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const tokens: string[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === '\\' && i + 1 < chars.length) {
      tokens.push(c + (chars[i + 1] as string));
      i++;
    } else {
      tokens.push(c);
    }
  }
  return tokens.reverse().join('');
}
