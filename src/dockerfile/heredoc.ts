// Here-document detection, after BuildKit's parser.go (`heredocsFromLine`, `heredocFromMatch`).
// The line is lexed with quotes, escapes and unset variables kept raw; every word shaped like
// `[fd]<<[-]DELIM` opens a heredoc. The delimiter is lexed again with and without quotes: if the two
// differ in quote count, some part was quoted, and the body is used verbatim (`expand: false`).

import { lex } from './expand.js';

export interface HeredocStart {
  readonly name: string;
  readonly expand: boolean;
  readonly chomp: boolean;
  readonly fileDescriptor: number;
}

const HEREDOC = /^(\d*)<<(-?)([^<]*)$/;
const noVars = (): undefined => undefined;

function countQuotes(s: string): number {
  let n = 0;
  for (const c of s) if (c === "'" || c === '"') n++;
  return n;
}

/** Parses one word as a heredoc opener; `undefined` when it is not one. Throws on mismatched quoting. */
export function parseHeredocWord(word: string): HeredocStart | undefined {
  const m = HEREDOC.exec(word);
  if (m === null) return undefined;
  const rest = m[3] ?? '';
  if (rest === '') return undefined;
  // BuildKit lexes the delimiter with `\` whatever the escape directive says.
  const plain = lex(rest, noVars, '\\', { skipUnset: true }).words;
  if (plain.length !== 1) return undefined;
  const raw = lex(rest, noVars, '\\', { skipUnset: true, rawQuotes: true }).words;
  if (raw.length !== plain.length) throw new Error(`internal lexing of heredoc produced inconsistent results: ${rest}`);
  const name = plain[0] as string;
  return {
    name,
    expand: countQuotes(name) === countQuotes(raw[0] as string),
    chomp: m[2] === '-',
    fileDescriptor: m[1] === '' || m[1] === undefined ? 0 : Number.parseInt(m[1], 10),
  };
}

/** Every heredoc opened on a logical line, in order. Lexing errors mean "no heredocs", as in BuildKit. */
export function heredocsInLine(line: string): HeredocStart[] {
  let words: readonly string[];
  try {
    words = lex(line, noVars, '\\', { rawQuotes: true, rawEscapes: true, skipUnset: true }).words;
  } catch {
    return [];
  }
  const out: HeredocStart[] = [];
  for (const w of words) {
    const h = parseHeredocWord(w);
    if (h !== undefined) out.push(h);
  }
  return out;
}

/** `<<-` strips leading tabs from every body line (BuildKit's `ChompHeredocContent`). */
export function chompContent(content: string): string {
  return content.replace(/^\t+/gm, '');
}
