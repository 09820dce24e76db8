// kaniko parses flags with Go's pflag, so pipelines write `--no-push=true`, `--cache=false` and
// `-v=debug`. Commander has no `=value` for booleans nor for shorthands: rewrite those forms before
// parsing.
import { Command, type Option } from 'commander';

const GO_TRUE = new Set(['true', '1', 't']);
const GO_FALSE = new Set(['false', '0', 'f']);

/** `booleanFlags` maps each boolean flag to its default: `--x=false` of a default-true flag is `--no-x`. */
export function normalizeGoStyleArgv(args: readonly string[], booleanFlags: ReadonlyMap<string, boolean>): string[] {
  const out: string[] = [];
  for (const a of args) {
    const m = /^--([a-z0-9-]+)=(.*)$/i.exec(a);
    const name = m?.[1];
    const defaultValue = name === undefined ? undefined : booleanFlags.get(name);
    if (name !== undefined && defaultValue !== undefined) {
      const v = (m?.[2] ?? '').toLowerCase();
      if (GO_TRUE.has(v)) out.push(`--${name}`);
      else if (GO_FALSE.has(v)) {
        if (defaultValue) out.push(`--no-${name}`);
      } else out.push(a);
      continue;
    }
    out.push(a);
  }
  return out;
}

/**
 * pflag's shorthand forms that commander reads differently: `-f=X` is `--dockerfile=X` (commander
 * would take `=X` as the value), and a boolean shorthand's `-x=true|false`. `-f X` and `-fX` mean the
 * same to both. An argument that is the value of the option before it (`-d -v=x`: pflag takes the
 * next argument whatever it looks like) is left alone, and so is everything after `--`.
 */
export function expandGoShorthands(args: readonly string[], options: readonly Option[]): string[] {
  const out: string[] = [];
  const byShort = new Map(options.filter((o) => o.short !== undefined).map((o) => [o.short as string, o]));
  const byLong = new Map(options.filter((o) => o.long !== undefined).map((o) => [o.long as string, o]));
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    const exact = byLong.get(a) ?? byShort.get(a);
    if (exact !== undefined) {
      out.push(a);
      // Its value is the next argument, taken as it is.
      if (exact.required && i + 1 < args.length) out.push(args[++i] as string);
      continue;
    }
    const m = /^(-[^-=])=([\s\S]*)$/.exec(a);
    const opt = m === null ? undefined : byShort.get(m[1] as string);
    if (m === null || opt === undefined) {
      out.push(a);
      continue;
    }
    const value = m[2] as string;
    if (opt.required || opt.optional) {
      if (opt.long !== undefined) out.push(`${opt.long}=${value}`);
      else out.push(m[1] as string, value);
    } else if (GO_TRUE.has(value.toLowerCase())) out.push(m[1] as string);
    else if (GO_FALSE.has(value.toLowerCase())) {
      // A boolean shorthand set to false: its default (commander's booleans default to false here).
    } else out.push(a);
  }
  return out;
}

/** A commander Command that reads pflag's shorthand forms (`-v=trace`) as kaniko's executor does. */
export class GoStyleCommand extends Command {
  override parseOptions(args: string[]): { operands: string[]; unknown: string[] } {
    return super.parseOptions(expandGoShorthands(args, this.options));
  }
}
