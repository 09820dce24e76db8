// kaniko parses flags with Go's pflag, so pipelines write `--no-push=true`, `--cache=false` and
// `-v=debug`. Commander has no `=value` for booleans: rewrite those forms before parsing.

/** `booleanFlags` maps each boolean flag to its default: `--x=false` of a default-true flag is `--no-x`. */
export function normalizeGoStyleArgv(args: readonly string[], booleanFlags: ReadonlyMap<string, boolean>): string[] {
  const out: string[] = [];
  for (const a of args) {
    const m = /^--([a-z0-9-]+)=(.*)$/i.exec(a);
    const name = m?.[1];
    const defaultValue = name === undefined ? undefined : booleanFlags.get(name);
    if (name !== undefined && defaultValue !== undefined) {
      const v = (m?.[2] ?? '').toLowerCase();
      if (v === 'true' || v === '1' || v === 't') out.push(`--${name}`);
      else if (v === 'false' || v === '0' || v === 'f') {
        if (defaultValue) out.push(`--no-${name}`);
      } else out.push(a);
      continue;
    }
    out.push(a);
  }
  return out;
}
