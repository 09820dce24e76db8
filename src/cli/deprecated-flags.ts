// kaniko's deprecated camelCase flags, still in pipelines written for old releases: renamed to their
// current names before parsing, each with kaniko's warning (checkNoDeprecatedFlags).
const RENAMED: ReadonlyMap<string, string> = new Map([
  ['snapshotMode', 'snapshot-mode'],
  ['customPlatform', 'custom-platform'],
  ['tarPath', 'tar-path'],
]);

export function renameDeprecatedFlags(args: readonly string[]): { args: string[]; warnings: string[] } {
  const out: string[] = [];
  const warnings: string[] = [];
  for (const a of args) {
    if (a === '--') {
      out.push(...args.slice(out.length));
      break;
    }
    const m = /^--([A-Za-z]+)(=.*)?$/.exec(a);
    const current = m?.[1] === undefined ? undefined : RENAMED.get(m[1]);
    if (current === undefined) {
      out.push(a);
      continue;
    }
    const warning = `Flag --${m?.[1] ?? ''} is deprecated. Use: --${current}`;
    if (!warnings.includes(warning)) warnings.push(warning);
    out.push(`--${current}${m?.[2] ?? ''}`);
  }
  return { args: out, warnings };
}
