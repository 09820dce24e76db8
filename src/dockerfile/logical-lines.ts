// The syntax layer: Dockerfile text -> parser directives + logical lines (one per instruction), with
// 1-based line ranges and heredoc bodies attached. Follows BuildKit's parser/parser.go and
// parser/directives.go rule for rule.
//
// Why not dockerfile-ast here: it is an editor's parser and its instruction ranges diverge from
// BuildKit exactly where a builder cannot afford it. Checked against 0.7.1:
//   - `RUN ["sh", "-c", "cat <<EOF"]` opens a heredoc in dockerfile-ast and swallows the rest of the
//     file; BuildKit never looks for heredocs in JSON form.
//   - `RUN <<A <<-B`: one `tabbed` flag is shared by all heredocs of the line, so `A` gets `<<-` rules.
//   - `RUN 3<<EOF` (fd prefix) is not recognised, and the body lines become instructions.
//   - `# foo=bar` followed by `# escape=`` ` still sets the escape; BuildKit stops looking for
//     directives at the first comment that is not a known directive.
// Instruction boundaries decide what runs, so this layer is ours; the rest of the package never sees
// line scanning.

import { DockerfileError } from '../errors.js';
import { chompContent, heredocsInLine } from './heredoc.js';
import type { EscapeChar, Heredoc, Warning } from './instructions.js';
import { extractFlags, parseJsonArray } from './shell-words.js';

export interface Directives {
  readonly syntax?: string;
  readonly escape: EscapeChar;
  readonly check?: string;
}

/** An instruction's text, split the way BuildKit's `splitCommand` does. */
export interface CommandParts {
  /** The keyword as written (case kept, for messages). */
  readonly keyword: string;
  /** Leading `--flag[=value]` words, quotes removed. */
  readonly flags: readonly string[];
  /** The arguments after the flags, trimmed. */
  readonly rest: string;
}

export interface LogicalLine extends CommandParts {
  readonly line: number;
  readonly endLine: number;
  /** The logical line, continuations joined and comment lines dropped, trimmed. */
  readonly source: string;
  readonly heredocs: readonly Heredoc[];
}

export interface SyntaxTree {
  readonly directives: Directives;
  readonly lines: readonly LogicalLine[];
  readonly warnings: readonly Warning[];
}

const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
const DIRECTIVE = /^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
/** BuildKit's `tokenWhitespace`. */
const TOKEN_WHITESPACE = /[\t\v\f\r ]+/;
const HEREDOC_KEYWORDS = new Set(['run', 'copy', 'add']);

function trimLeadingWhitespace(s: string): string {
  return s.replace(/^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/, '');
}
function trimNewline(s: string): string {
  return s.replace(/[\r\n]+$/, '');
}
function isComment(s: string): boolean {
  return trimLeadingWhitespace(s).startsWith('#');
}

/** Splits `KEYWORD [--flags] args` (BuildKit's `splitCommand`). */
export function splitCommand(text: string): CommandParts {
  const t = text.trim();
  const m = TOKEN_WHITESPACE.exec(t);
  if (m === null) return { keyword: t, flags: [], rest: '' };
  const { flags, rest } = extractFlags(t.slice(m.index + m[0].length));
  return { keyword: t.slice(0, m.index), flags, rest: rest.trim() };
}

/** Whether BuildKit looks for heredocs in this instruction (RUN, COPY, ADD, also as ONBUILD triggers; never JSON form). */
function canContainHeredoc(parts: CommandParts): boolean {
  let p = parts;
  if (p.keyword.toLowerCase() === 'onbuild') p = splitCommand(p.rest);
  if (!HEREDOC_KEYWORDS.has(p.keyword.toLowerCase())) return false;
  return !Array.isArray(parseJsonArray(p.rest));
}

export function scanDockerfile(text: string, file: string): SyntaxTree {
  // Physical lines keep their `\n` so heredoc bodies are byte-exact; logic works on trimNewline(line).
  const physical = text.split(/(?<=\n)/);
  if (physical[0]?.startsWith('\uFEFF')) physical[0] = physical[0].slice(1);
  const fail = (detail: string, line: number, source?: string): never => {
    throw new DockerfileError(detail, source === undefined ? { file, line } : { file, line, source });
  };

  // Directives: only at the very top, each at most once; the first line that is not a known
  // directive ends them (blank lines and ordinary comments included).
  let escape: EscapeChar = '\\';
  let syntax: string | undefined;
  let check: string | undefined;
  const seen = new Set<string>();
  for (let i = 0; i < physical.length; i++) {
    const t = trimLeadingWhitespace(trimNewline(physical[i] as string));
    if (!t.startsWith('#')) break;
    const m = DIRECTIVE.exec(trimLeadingWhitespace(t.slice(1)));
    if (m === null) break;
    const key = (m[1] as string).toLowerCase();
    const value = m[2] as string;
    if (!KNOWN_DIRECTIVES.has(key)) break;
    if (seen.has(key)) fail(`only one ${key} parser directive can be used`, i + 1);
    seen.add(key);
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') fail(`invalid escape token '${value}' does not match \` or \\`, i + 1);
      escape = value as EscapeChar;
    } else if (key === 'syntax') {
      syntax = value;
    } else {
      check = value;
    }
  }

  // The escape char is a line continuation when it is the last non-blank character, unless it is
  // itself escaped (`([^E])E[ \t]*$`), or when it stands alone on the line (BuildKit's lineContinuationRegex).
  const e = escape === '\\' ? '\\\\' : '`';
  const continuation = new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
  const trimContinuation = (s: string): { text: string; end: boolean } =>
    continuation.test(s) ? { text: s.replace(continuation, '$1'), end: false } : { text: s, end: true };

  const lines: LogicalLine[] = [];
  const warnings: Warning[] = [];
  let i = 0;
  while (i < physical.length) {
    const first = physical[i] as string;
    i++;
    const startLine = i;
    if (isComment(first)) continue;
    const firstTrim = trimContinuation(trimLeadingWhitespace(trimNewline(first)));
    if (firstTrim.end && firstTrim.text === '') continue;
    let buf = firstTrim.text;
    let end = firstTrim.end;
    let emptyContinuation = false;
    while (!end && i < physical.length) {
      const raw = trimNewline(physical[i] as string);
      i++;
      if (isComment(raw)) continue;
      if (trimLeadingWhitespace(raw) === '') {
        emptyContinuation = true;
        continue;
      }
      const next = trimContinuation(raw);
      buf += next.text;
      end = next.end;
    }
    const source = buf.trim();
    if (source === '') continue; // a lone continuation at the end of the file
    const parts = splitCommand(buf);
    if (emptyContinuation) {
      warnings.push({
        code: 'empty-continuation-line',
        message: `Empty continuation line found in: ${source} (empty continuation lines will become errors in a future release)`,
        line: startLine,
      });
    }

    const heredocs: Heredoc[] = [];
    if (buf.includes('<<') && canContainHeredoc(parts)) {
      let starts;
      try {
        starts = heredocsInLine(buf);
      } catch (err) {
        if (err instanceof DockerfileError) fail(err.detail, startLine, source);
        fail(err instanceof Error ? err.message : String(err), startLine, source);
      }
      for (const h of starts ?? []) {
        let content = '';
        let terminated = false;
        while (i < physical.length) {
          const raw = physical[i] as string;
          i++;
          let candidate = trimNewline(raw);
          if (h.chomp) candidate = candidate.replace(/^\t+/, '');
          if (candidate === h.name) {
            terminated = true;
            break;
          }
          content += raw;
        }
        if (!terminated) fail(`unterminated heredoc ${h.name}`, startLine, source);
        heredocs.push({ ...h, content: h.chomp ? chompContent(content) : content });
      }
    }
    lines.push({ ...parts, line: startLine, endLine: i, source, heredocs });
  }

  const directives: { syntax?: string; escape: EscapeChar; check?: string } = { escape };
  if (syntax !== undefined) directives.syntax = syntax;
  if (check !== undefined) directives.check = check;
  return { directives, lines, warnings };
}
