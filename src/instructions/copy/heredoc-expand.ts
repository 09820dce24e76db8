// Variable expansion of a COPY/ADD heredoc body, as BuildKit does it for an unquoted delimiter: `$var`
// and `${var...}` are expanded, while quotes and backslashes are plain text (its lexer runs with
// SkipProcessQuotes and RawEscapes), so `It's "quoted"` and `printf 'a\n'` stay as written and only a
// backslash in front of `$` keeps the `$` from being expanded (the backslash itself stays).
import { expandWord, type Lookup } from '../../dockerfile/expand.js';
import type { EscapeChar } from '../../dockerfile/instructions.js';
import type { InstructionSite } from '../handler.js';

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const SPECIAL = /[0-9@*#?$!-]/;

export function expandHeredocBody(content: string, lookup: Lookup, escape: EscapeChar, site: InstructionSite): string {
  let out = '';
  let i = 0;
  while (i < content.length) {
    const ch = content[i] as string;
    if (ch === escape && i + 1 < content.length) {
      out += ch + (content[i + 1] as string);
      i += 2;
      continue;
    }
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const end = dollarEnd(content, i);
    if (end === i + 1) {
      out += '$';
      i++;
      continue;
    }
    // One `$...` reference at a time through the Dockerfile's own expander.
    out += expandWord(content.slice(i, end), lookup, escape, site);
    i = end;
  }
  return out;
}

/** Index just past the `$` reference starting at `start` (start + 1 when it is a lone `$`). */
function dollarEnd(s: string, start: number): number {
  const next = s[start + 1];
  if (next === undefined) return start + 1;
  if (next === '{') {
    let depth = 0;
    for (let j = start + 1; j < s.length; j++) {
      if (s[j] === '{') depth++;
      else if (s[j] === '}' && --depth === 0) return j + 1;
    }
    return start + 1; // unterminated: a literal `$`
  }
  if (NAME_START.test(next)) {
    let j = start + 2;
    while (j < s.length && NAME_CHAR.test(s[j] as string)) j++;
    return j;
  }
  if (SPECIAL.test(next)) return start + 1; // `$1`, `$@`...: no Dockerfile variable, kept as written
  return start + 1;
}
