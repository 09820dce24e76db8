// Typed instructions: one parse function per keyword, after BuildKit's instructions/parse.go, on top
// of the syntax layer in logical-lines.ts. Arguments stay RAW; the builder expands them per stage.
// Every error is a DockerfileError carrying the file, the 1-based line and the instruction's text.

import { DockerfileError } from '../errors.js';
import { formatDuration, parseGoDuration } from './duration.js';
import { parseFlags, type FlagSpec, type ParsedFlags } from './instruction-flags.js';
import { parseHeredocWord } from './heredoc.js';
import type {
  AddInstruction,
  ArgDeclaration,
  ArgInstruction,
  CommandLine,
  CopyInstruction,
  CopySource,
  Dockerfile,
  EscapeChar,
  FromInstruction,
  HealthConfig,
  Instruction,
  KeyValue,
  Located,
  Mount,
  RunNetwork,
  RunSecurity,
  Stage,
  Warning,
} from './instructions.js';
import { scanDockerfile, splitCommand, type LogicalLine } from './logical-lines.js';
import { parseMount } from './mounts.js';
import { parseJsonArray, parseWords, splitFirstWord, splitWhitespace } from './shell-words.js';

/** Parses a Dockerfile. Throws only `DockerfileError`. */
export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  const tree = scanDockerfile(text, file);
  const escape = tree.directives.escape;
  const warnings: Warning[] = [...tree.warnings];
  if (tree.lines.length === 0) throw new DockerfileError('file with no instructions', { file });

  const globalArgs: ArgInstruction[] = [];
  const stages: { index: number; name?: string; from: FromInstruction; instructions: Instruction[] }[] = [];
  const names = new Map<string, number>();
  for (const ll of tree.lines) {
    const ctx: LineContext = { file, escape, warnings, ll };
    if (ll.keyword.toLowerCase() === 'from') {
      const from = parseFrom(ctx);
      const index = stages.length;
      if (from.stageName !== undefined) {
        if (names.has(from.stageName)) fail(ctx, `duplicate stage name "${from.stageName}"`);
        names.set(from.stageName, index);
        stages.push({ index, name: from.stageName, from, instructions: [] });
      } else {
        stages.push({ index, from, instructions: [] });
      }
      continue;
    }
    const ins = parseInstruction(ctx);
    const current = stages[stages.length - 1];
    if (current === undefined) {
      if (ins.kind === 'arg') {
        globalArgs.push(ins);
        continue;
      }
      fail(ctx, 'no build stage in current context: only ARG may come before the first FROM');
    }
    current.instructions.push(ins);
  }
  if (stages.length === 0) throw new DockerfileError('dockerfile contains no stages to build: missing FROM', { file });

  const directives: { syntax?: string; escape: EscapeChar } = { escape };
  if (tree.directives.syntax !== undefined) directives.syntax = tree.directives.syntax;
  return { file, directives, globalArgs, stages: stages as Stage[], warnings };
}

interface LineContext {
  readonly file: string;
  readonly escape: EscapeChar;
  readonly warnings: Warning[];
  readonly ll: LogicalLine;
}

function fail(ctx: LineContext, detail: string): never {
  throw new DockerfileError(detail, { file: ctx.file, line: ctx.ll.line, source: ctx.ll.source });
}

function located(ctx: LineContext): Located {
  return { line: ctx.ll.line, endLine: ctx.ll.endLine, source: ctx.ll.source };
}

function flagsOf(ctx: LineContext, spec: FlagSpec, flags: readonly string[] = ctx.ll.flags): ParsedFlags {
  return parseFlags(flags, spec, (d) => fail(ctx, d));
}

const NO_FLAGS: FlagSpec = {};
/** A valid stage name (BuildKit's validStageName). */
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

function parseFrom(ctx: LineContext): FromInstruction {
  const f = flagsOf(ctx, { platform: 'string' });
  const args = splitWhitespace(ctx.ll.rest);
  let stageName: string | undefined;
  if (args.length === 3 && (args[1] as string).toLowerCase() === 'as') {
    const written = args[2] as string;
    stageName = written.toLowerCase();
    if (!STAGE_NAME.test(stageName)) {
      fail(ctx, `invalid name for build stage: "${written}", name can't start with a number or contain symbols`);
    }
    if (written !== stageName) {
      ctx.warnings.push({ code: 'stage-name-casing', message: `Stage name '${written}' should be lowercase`, line: ctx.ll.line });
    }
  } else if (args.length !== 1) {
    fail(ctx, 'FROM requires either one or three arguments');
  }
  const platform = f.strings.get('platform');
  return {
    kind: 'from',
    ...located(ctx),
    image: args[0] as string,
    ...(platform === undefined ? {} : { platform }),
    ...(stageName === undefined ? {} : { stageName }),
  };
}

/** Parses one non-FROM instruction (also used for ONBUILD triggers). */
function parseInstruction(ctx: LineContext): Instruction {
  const { ll } = ctx;
  const keyword = ll.keyword.toLowerCase();
  switch (keyword) {
    case 'run':
      return parseRun(ctx);
    case 'cmd':
    case 'entrypoint': {
      flagsOf(ctx, NO_FLAGS);
      return { kind: keyword, ...located(ctx), command: commandLine(ctx, ll.rest) };
    }
    case 'label': {
      flagsOf(ctx, NO_FLAGS);
      return { kind: 'label', ...located(ctx), labels: nameValues(ctx, 'LABEL') };
    }
    case 'env': {
      flagsOf(ctx, NO_FLAGS);
      return { kind: 'env', ...located(ctx), pairs: nameValues(ctx, 'ENV') };
    }
    case 'expose': {
      flagsOf(ctx, NO_FLAGS);
      const ports = splitWhitespace(ll.rest);
      if (ports.length === 0) fail(ctx, 'EXPOSE requires at least one argument');
      return { kind: 'expose', ...located(ctx), ports };
    }
    case 'copy':
    case 'add':
      return parseCopyOrAdd(ctx, keyword);
    case 'volume': {
      flagsOf(ctx, NO_FLAGS);
      const { words, form } = maybeJsonList(ctx, ll.rest);
      if (words.length === 0) fail(ctx, 'VOLUME requires at least one argument');
      const paths = words.map((w) => w.trim());
      if (paths.some((p) => p === '')) fail(ctx, 'VOLUME specified can not be an empty string');
      return { kind: 'volume', ...located(ctx), paths, form };
    }
    case 'user':
      return { kind: 'user', ...located(ctx), user: exactlyOne(ctx, 'USER') };
    case 'workdir':
      return { kind: 'workdir', ...located(ctx), path: exactlyOne(ctx, 'WORKDIR') };
    case 'stopsignal':
      return { kind: 'stopsignal', ...located(ctx), signal: exactlyOne(ctx, 'STOPSIGNAL') };
    case 'maintainer': {
      const maintainer = exactlyOne(ctx, 'MAINTAINER');
      ctx.warnings.push({
        code: 'maintainer-deprecated',
        message: 'Maintainer instruction is deprecated in favor of using label',
        line: ll.line,
      });
      return { kind: 'maintainer', ...located(ctx), maintainer };
    }
    case 'arg':
      return parseArg(ctx);
    case 'onbuild':
      return parseOnbuild(ctx);
    case 'healthcheck':
      return { kind: 'healthcheck', ...located(ctx), health: parseHealthcheck(ctx) };
    case 'shell': {
      flagsOf(ctx, NO_FLAGS);
      const json = parseJsonArray(ll.rest);
      if (json === 'not-strings') fail(ctx, 'when using JSON array syntax, arrays must be comprised of strings only');
      if (json === undefined) fail(ctx, 'SHELL requires the arguments to be in JSON form');
      if (json.length === 0) fail(ctx, 'SHELL requires at least one argument');
      return { kind: 'shell', ...located(ctx), shell: json };
    }
    case 'from':
      // Only reachable for ONBUILD triggers, which reject FROM before getting here.
      return fail(ctx, 'FROM is not allowed here');
    default:
      return fail(ctx, `unknown instruction: ${ll.keyword}`);
  }
}

function commandLine(ctx: LineContext, rest: string): CommandLine {
  const json = parseJsonArray(rest);
  if (json === 'not-strings') fail(ctx, 'when using JSON array syntax, arrays must be comprised of strings only');
  if (json !== undefined) return { form: 'exec', args: json };
  return { form: 'shell', command: rest };
}

function maybeJsonList(ctx: LineContext, rest: string): { words: readonly string[]; form: 'shell' | 'json' } {
  const json = parseJsonArray(rest);
  if (json === 'not-strings') fail(ctx, 'when using JSON array syntax, arrays must be comprised of strings only');
  if (json !== undefined) return { words: json, form: 'json' };
  return { words: splitWhitespace(rest), form: 'shell' };
}

function exactlyOne(ctx: LineContext, name: string): string {
  flagsOf(ctx, NO_FLAGS);
  if (ctx.ll.rest === '') fail(ctx, `${name} requires exactly one argument`);
  return ctx.ll.rest;
}

/** ENV and LABEL: `k=v k2="v 2"` or the legacy `k v with spaces` (BuildKit's parseNameVal). */
function nameValues(ctx: LineContext, name: 'ENV' | 'LABEL'): KeyValue[] {
  const rest = ctx.ll.rest;
  const words = parseWords(rest, ctx.escape);
  if (words.length === 0) fail(ctx, `${name} requires at least one argument`);
  if (!(words[0] as string).includes('=')) {
    const [key, value] = splitFirstWord(rest);
    if (value === '') fail(ctx, `${name} must have two arguments`);
    ctx.warnings.push({
      code: 'legacy-key-value-format',
      message: `"${name} key=value" should be used instead of legacy "${name} key value" format`,
      line: ctx.ll.line,
    });
    return [{ key, value }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) fail(ctx, `Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`);
    const key = w.slice(0, eq);
    if (key === '') fail(ctx, `${name} names can not be blank`);
    return { key, value: w.slice(eq + 1) };
  });
}

function parseArg(ctx: LineContext): ArgInstruction {
  flagsOf(ctx, NO_FLAGS);
  const words = parseWords(ctx.ll.rest, ctx.escape);
  if (words.length === 0) fail(ctx, 'ARG requires at least one argument');
  const args = words.map((w): ArgDeclaration => {
    const eq = w.indexOf('=');
    if (eq < 0) return { name: w };
    if (eq === 0) fail(ctx, 'ARG names can not be blank');
    return { name: w.slice(0, eq), defaultValue: w.slice(eq + 1) };
  });
  return { kind: 'arg', ...located(ctx), args };
}

function parseRun(ctx: LineContext): Instruction {
  const f = flagsOf(ctx, { mount: 'strings', network: 'string', security: 'string' });
  if (ctx.ll.rest === '') fail(ctx, 'RUN requires at least one argument');
  const mounts: Mount[] = (f.lists.get('mount') ?? []).map((m) => parseMount(m, (d) => fail(ctx, d)));
  const network = f.strings.get('network');
  if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
    fail(ctx, `unsupported network mode "${network}"`);
  }
  const security = f.strings.get('security');
  if (security !== undefined && !['sandbox', 'insecure'].includes(security)) {
    fail(ctx, `unsupported security mode "${security}"`);
  }
  return {
    kind: 'run',
    ...located(ctx),
    command: commandLine(ctx, ctx.ll.rest),
    heredocs: ctx.ll.heredocs,
    mounts,
    ...(network === undefined ? {} : { network: network as RunNetwork }),
    ...(security === undefined ? {} : { security: security as RunSecurity }),
  };
}

function parseCopyOrAdd(ctx: LineContext, kind: 'copy' | 'add'): CopyInstruction | AddInstruction {
  const NAME = kind.toUpperCase();
  const spec: FlagSpec =
    kind === 'copy'
      ? { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' }
      : { chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', exclude: 'strings' };
  const f = flagsOf(ctx, spec);
  const { words, form } = maybeJsonList(ctx, ctx.ll.rest);
  if (words.length < 2) {
    fail(ctx, `${NAME} requires at least two arguments, but only one was provided. Destination could not be determined`);
  }
  const dest = words[words.length - 1] as string;
  const byName = new Map(ctx.ll.heredocs.map((h) => [h.name, h]));
  const heredocWord = (w: string): ReturnType<typeof parseHeredocWord> => {
    if (form === 'json') return undefined; // heredocs are never read in JSON form
    try {
      return parseHeredocWord(w);
    } catch (err) {
      return fail(ctx, err instanceof DockerfileError ? err.detail : String(err));
    }
  };
  if (heredocWord(dest) !== undefined) fail(ctx, `${NAME} cannot accept a heredoc as a destination`);
  const sources = words.slice(0, -1).map((w): CopySource => {
    const h = heredocWord(w);
    if (h === undefined) return { kind: 'path', path: w };
    const body = byName.get(h.name);
    return { kind: 'heredoc', heredoc: body ?? { ...h, content: '' } };
  });
  const chown = f.strings.get('chown');
  const chmod = f.strings.get('chmod');
  const common = {
    ...located(ctx),
    sources,
    dest,
    form,
    ...(chown === undefined ? {} : { chown }),
    ...(chmod === undefined ? {} : { chmod }),
    link: f.bools.get('link') ?? false,
    exclude: f.lists.get('exclude') ?? [],
  };
  if (kind === 'copy') {
    const from = f.strings.get('from');
    if (from === '') fail(ctx, 'missing a value on flag: --from');
    return { kind, ...common, ...(from === undefined ? {} : { from }), parents: f.bools.get('parents') ?? false };
  }
  const checksum = f.strings.get('checksum');
  return { kind, ...common, ...(checksum === undefined ? {} : { checksum }), keepGitDir: f.bools.get('keep-git-dir') ?? false };
}

function parseOnbuild(ctx: LineContext): Instruction {
  flagsOf(ctx, NO_FLAGS);
  const rest = ctx.ll.rest;
  if (rest === '') fail(ctx, 'ONBUILD requires at least one argument');
  const inner = splitCommand(rest);
  const trigger = inner.keyword.toUpperCase();
  if (trigger === 'ONBUILD') fail(ctx, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  if (trigger === 'FROM' || trigger === 'MAINTAINER') fail(ctx, `${trigger} isn't allowed as an ONBUILD trigger`);
  const innerCtx: LineContext = { ...ctx, ll: { ...ctx.ll, ...inner } };
  const parsed = parseInstruction(innerCtx);
  // What docker stores in the config's OnBuild list: the trigger text, heredoc bodies appended.
  let expression = ctx.ll.source.replace(/^\s*ONBUILD\s*/i, '');
  for (const h of ctx.ll.heredocs) expression += `\n${h.content}${h.name}`;
  return { kind: 'onbuild', ...located(ctx), trigger: parsed, expression };
}

/** The smallest non-zero healthcheck duration docker accepts (container.MinimumDuration). */
const MIN_DURATION_NS = 1e6;

function parseHealthcheck(ctx: LineContext): HealthConfig {
  const rest = ctx.ll.rest;
  if (rest === '') fail(ctx, 'HEALTHCHECK requires at least one argument');
  const [typWord, cmdText] = splitFirstWord(rest);
  const typ = typWord.toUpperCase();
  if (typ === 'NONE') {
    if (cmdText.trim() !== '') fail(ctx, 'HEALTHCHECK NONE takes no arguments');
    if (ctx.ll.flags.length > 0) fail(ctx, 'HEALTHCHECK NONE takes no options');
    return { type: 'none' };
  }
  const f = flagsOf(ctx, {
    interval: 'string',
    timeout: 'string',
    'start-period': 'string',
    'start-interval': 'string',
    retries: 'string',
  });
  if (typ !== 'CMD') fail(ctx, `Unknown type ${JSON.stringify(typ)} in HEALTHCHECK (try CMD)`);
  const cmd = commandLine(ctx, cmdText.trim());
  let test: string[];
  if (cmd.form === 'exec') {
    if (cmd.args.length === 0) fail(ctx, 'Missing command after HEALTHCHECK CMD');
    test = ['CMD', ...cmd.args];
  } else {
    if (cmd.command === '') fail(ctx, 'Missing command after HEALTHCHECK CMD');
    test = ['CMD-SHELL', cmd.command];
  }
  const duration = (name: string): number => {
    const text = f.strings.get(name);
    if (text === undefined || text === '') return 0;
    const ns = parseGoDuration(text);
    if (ns === undefined) fail(ctx, `invalid duration for --${name}: ${JSON.stringify(text)}`);
    if (ns === 0) return 0;
    if (ns < MIN_DURATION_NS) fail(ctx, `--${name} cannot be less than ${formatDuration(MIN_DURATION_NS)}`);
    return ns;
  };
  let retries = 0;
  const retriesText = f.strings.get('retries');
  if (retriesText !== undefined && retriesText !== '') {
    if (!/^[+-]?\d+$/.test(retriesText)) fail(ctx, `invalid value for --retries: ${JSON.stringify(retriesText)}`);
    retries = Number.parseInt(retriesText, 10);
    if (retries > 2147483647 || retries < -2147483648) fail(ctx, `invalid value for --retries: ${JSON.stringify(retriesText)}`);
    if (retries < 0) fail(ctx, `--retries cannot be negative (${retries})`);
  }
  return {
    type: 'cmd',
    test,
    intervalNs: duration('interval'),
    timeoutNs: duration('timeout'),
    startPeriodNs: duration('start-period'),
    startIntervalNs: duration('start-interval'),
    retries,
  };
}
