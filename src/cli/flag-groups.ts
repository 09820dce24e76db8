// Which topic each flag is listed under in `--help`. kaniko's users look flags up by topic; a flat
// list of 70+ is where they got lost. A new flag goes into one of these lists (kiln's own flags also
// into KILN_FLAGS); one in no list is shown under "Other:" and test/cli/help.test.ts fails on it.
import { Help, type Command, type Option } from 'commander';

export interface FlagGroup {
  readonly heading: string;
  /** Long names without `--`; a `--no-x` negation goes with `x` unless listed itself. */
  readonly flags: readonly string[];
}

/** How registries are reached for pulls: the same flags in both commands. */
const PULL_REGISTRY_FLAGS = [
  'insecure-pull',
  'insecure-registry',
  'skip-tls-verify-pull',
  'skip-tls-verify-registry',
  'registry-certificate',
  'registry-client-cert',
  'registry-mirror',
  'registry-map',
  'skip-default-registry-fallback',
];

export const EXECUTOR_GROUPS: readonly FlagGroup[] = [
  {
    heading: 'Context and Dockerfile:',
    flags: ['dockerfile', 'context', 'context-sub-path', 'git', 'bucket', 'build-arg', 'target', 'custom-platform', 'platform', 'secret', 'ssh'],
  },
  {
    heading: 'Destination and outputs:',
    flags: [
      'destination',
      'no-push',
      'tar-path',
      'oci-layout-path',
      'digest-file',
      'image-name-with-digest-file',
      'image-name-tag-with-digest-file',
      'label',
      'reproducible',
      'compression',
      'compression-level',
      'push-retry',
      'skip-push-permission-check',
      'push-ignore-immutable-tag-errors',
      'summary-file',
      'dry-run',
    ],
  },
  {
    heading: 'Registry and TLS:',
    flags: ['insecure', 'skip-tls-verify', ...PULL_REGISTRY_FLAGS, 'image-download-retry', 'image-fs-extract-retry', 'connect-timeout', 'idle-timeout'],
  },
  {
    heading: 'Cache:',
    flags: ['cache', 'cache-repo', 'cache-ttl', 'cache-run-layers', 'cache-copy-layers', 'no-push-cache', 'compressed-caching', 'cache-dir'],
  },
  {
    heading: 'Snapshot and filesystem:',
    flags: [
      'single-snapshot',
      'snapshot-mode',
      'force-build-metadata',
      'use-new-run',
      'skip-unused-stages',
      'ignore-path',
      'ignore-var-run',
      'archive-max-mib',
      'archive-max-entries',
      'cleanup',
      'kaniko-dir',
      'force',
    ],
  },
  { heading: 'Logging:', flags: ['verbosity', 'log-format', 'log-timestamp', 'progress'] },
  {
    heading: "kiln's own (not in kaniko):",
    flags: ['run-mode', 'run-isolation', 'jobs', 'snapshot-strategy', 'work-dir', 'rootfs-tmpfs', 'rootfs-tmpfs-size', 'mount-cache-dir'],
  },
];

/** Flags kaniko's executor does not have; their help lines are marked "(kiln)". */
export const EXECUTOR_KILN_FLAGS: ReadonlySet<string> = new Set([
  'platform',
  'secret',
  'ssh',
  'summary-file',
  'dry-run',
  'progress',
  'run-mode',
  'run-isolation',
  'snapshot-strategy',
  'work-dir',
  'rootfs-tmpfs',
  'rootfs-tmpfs-size',
  'connect-timeout',
  'idle-timeout',
  'archive-max-mib',
  'archive-max-entries',
  'mount-cache-dir',
  'jobs',
]);

export const WARMER_GROUPS: readonly FlagGroup[] = [
  { heading: 'Images and cache:', flags: ['image', 'cache-dir', 'force', 'cache-ttl', 'dockerfile', 'build-arg', 'custom-platform'] },
  {
    heading: 'Registry and TLS:',
    flags: [...PULL_REGISTRY_FLAGS, 'insecure', 'skip-tls-verify', 'connect-timeout', 'idle-timeout'],
  },
  { heading: 'Logging:', flags: ['verbosity', 'log-format', 'log-timestamp', 'progress'] },
];

export const WARMER_KILN_FLAGS: ReadonlySet<string> = new Set(['insecure', 'skip-tls-verify', 'progress', 'connect-timeout', 'idle-timeout']);

export const OTHER_HEADING = 'Other:';
const KILN_MARK = '(kiln)';

/** `--no-x` -> `x`; `--x` -> `x`. */
function baseName(option: Option): string {
  return (option.long ?? '').replace(/^--/, '');
}

/**
 * Puts every option of `cmd` under its group's heading, kaniko's flags before kiln's within a group
 * (the order of the lists otherwise), kiln's own marked, and a default on every line. Only the help
 * text changes: parsing is commander's as before. Cheap (a few map lookups): it runs at every start.
 */
export function groupFlags<C extends Command>(cmd: C, groups: readonly FlagGroup[], kilnFlags: ReadonlySet<string>): C {
  const where = new Map<string, { group: number; at: number }>();
  groups.forEach((g, group) => g.flags.forEach((name, at) => where.set(name, { group, at })));
  const place = (o: Option): { group: number; at: number } => {
    const name = baseName(o);
    return where.get(name) ?? where.get(name.replace(/^no-/, '')) ?? { group: groups.length, at: 0 };
  };
  const isKiln = (o: Option): boolean => kilnFlags.has(baseName(o)) || kilnFlags.has(baseName(o).replace(/^no-/, ''));
  for (const o of cmd.options) {
    const g = groups[place(o).group];
    o.helpGroup(g?.heading ?? OTHER_HEADING);
  }
  cmd.helpOption('-h, --help', 'display this help');
  cmd.configureHelp({
    // Groups in the order of the lists, not of the options' definitions.
    groupItems<T extends Command | Option>(_unsorted: T[], visible: T[], getGroup: (item: T) => string): Map<string, T[]> {
      return Help.prototype.groupItems.call(this, visible, visible, getGroup as (item: Command | Option) => string) as Map<string, T[]>;
    },
    visibleOptions(c: Command): Option[] {
      const visible = Help.prototype.visibleOptions.call(this, c);
      const help = visible.find((o) => o.long === '--help');
      help?.helpGroup(OTHER_HEADING);
      const key = (o: Option): [number, number, number] => {
        if (o === help) return [groups.length + 1, 0, 0];
        const p = place(o);
        return [p.group, isKiln(o) ? 1 : 0, p.at];
      };
      return visible
        .map((o, i) => ({ o, k: [...key(o), i] }))
        .sort((a, b) => a.k.reduce((d, v, j) => d || v - (b.k[j] ?? 0), 0))
        .map((x) => x.o);
    },
    optionDescription(o: Option): string {
      const text = Help.prototype.optionDescription.call(this, o);
      let line = isKiln(o) && !text.startsWith(KILN_MARK) ? `${KILN_MARK} ${text}` : text;
      // Repeatable flags start empty; commander prints that as `[]`.
      line = line.replace(/\(default: \[\]\)$/, '(default: none)').replace(/, default: \[\]\)$/, ', default: none)');
      if (o.long === '--help' || /\(default: |, default: /.test(line)) return line;
      // Negations (`--no-push`) and flags without a value are off unless given.
      if (o.negate || (!o.required && !o.optional)) return `${line} (default: false)`;
      return `${line} (default: none)`;
    },
  });
  return cmd;
}
