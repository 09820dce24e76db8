// Splitting an instruction's argument text into words, before any expansion. These follow BuildKit's
// parser/line_parsers.go and parser/split_command.go, whose quirks are part of the language:
// `parseWords` keeps quotes and escapes (they are removed later, by expansion), whereas the plain
// whitespace split used by FROM, EXPOSE, COPY/ADD and VOLUME knows nothing about quotes at all.

import type { EscapeChar } from './instructions.js';

// Go's unicode.IsSpace.
const SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/;
export function isSpace(ch: string): boolean {
  return SPACE.test(ch);
}

/** BuildKit's `reWhitespace` (`[\t\v\f\r ]+`): the separator of whitespace-delimited arguments. */
const WHITESPACE_RUN = /[\t\v\f\r ]+/;

/** FROM, EXPOSE, shell-form COPY/ADD/VOLUME: split on whitespace, quotes NOT honoured. */
export function splitWhitespace(text: string): string[] {
  const t = text.trim();
  if (t === '') return [];
  return t.split(WHITESPACE_RUN);
}

/** Splits `text` in two at the first whitespace run (`ENV key value with spaces`, `HEALTHCHECK CMD ...`). */
export function splitFirstWord(text: string): [string, string] {
  const m = WHITESPACE_RUN.exec(text);
  if (m === null) return [text, ''];
  return [text.slice(0, m.index), text.slice(m.index + m[0].length)];
}

/**
 * Words separated by unquoted whitespace, with quotes and escape characters KEPT (BuildKit's
 * `parseWords`, used by ENV, LABEL and ARG). An escape character at the very end is dropped.
 */
export function parseWords(rest: string, escape: EscapeChar): string[] {
  const chars = Array.from(rest);
  const words: string[] = [];
  let word = '';
  let blankOk = false;
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  for (let i = 0; i <= chars.length; i++) {
    const atEnd = i === chars.length;
    let ch = chars[i] ?? '';
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (atEnd) {
      if (blankOk || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOk || word.length > 0) words.push(word);
        word = '';
        blankOk = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
        phase = 'quote';
      }
      if (ch === escape) {
        if (i + 1 === chars.length) continue;
        // Unquoted: keep the escape and the escaped character, even a quote.
        word += ch;
        i++;
        ch = chars[i] ?? '';
      }
      word += ch;
      continue;
    }
    // phase === 'quote'
    if (ch === quote) phase = 'word';
    if (ch === escape && quote !== "'") {
      if (i + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      i++;
      ch = chars[i] ?? '';
    }
    word += ch;
  }
  return words;
}

/**
 * Takes the leading `--flag[=value]` words off an instruction's arguments (BuildKit's
 * `extractBuilderFlags`). Quotes inside a flag word are removed and `\` escapes one character
 * (always `\` here, whatever the escape directive, as BuildKit does). A lone `--` ends the flags.
 */
export function extractFlags(line: string): { flags: string[]; rest: string } {
  const chars = Array.from(line);
  const flags: string[] = [];
  let word = '';
  let blankOk = false;
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let quote = '';
  for (let i = 0; i <= chars.length; i++) {
    const atEnd = i === chars.length;
    let ch = chars[i] ?? '';
    if (phase === 'spaces') {
      if (atEnd) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || chars[i + 1] !== '-') return { flags, rest: chars.slice(i).join('') };
      phase = 'word';
    }
    if (atEnd) {
      if (word !== '--' && (blankOk || word.length > 0)) flags.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return { flags, rest: chars.slice(i).join('') };
        if (blankOk || word.length > 0) flags.push(word);
        word = '';
        blankOk = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
        phase = 'quote';
        continue;
      }
      if (ch === '\\') {
        if (i + 1 === chars.length) continue;
        i++;
        ch = chars[i] ?? '';
      }
      word += ch;
      continue;
    }
    if (ch === quote) {
      phase = 'word';
      continue;
    }
    if (ch === '\\') {
      if (i + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      i++;
      ch = chars[i] ?? '';
    }
    word += ch;
  }
  return { flags, rest: '' };
}

/**
 * `parseMaybeJSON`: the arguments as a JSON array of strings when they are one, else `undefined`.
 * A JSON array holding anything but strings is an error (returned as `'not-strings'`).
 */
export function parseJsonArray(rest: string): readonly string[] | 'not-strings' | undefined {
  const t = rest.trimStart();
  if (!t.startsWith('[')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  if (!parsed.every((x): x is string => typeof x === 'string')) return 'not-strings';
  return parsed;
}
