// `--help` as users read it: flags by topic, kaniko's first in each topic, kiln's own marked, a default
// on every line, the deprecated camelCase spellings out of sight (and still accepted).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { EXECUTOR_GROUPS, EXECUTOR_KILN_FLAGS, OTHER_HEADING, WARMER_GROUPS, WARMER_KILN_FLAGS } from '../../src/cli/flag-groups.js';
import { EXECUTOR, executor } from '../support/executor.js';

const run = promisify(execFile);
const WARMER = EXECUTOR.replace(/executor\.js$/, 'warmer.js');

interface Entry {
  readonly flag: string;
  readonly text: string;
}

/** The help text as headings, each with its options (long name, and the rest of its wrapped lines). */
function sections(help: string): Map<string, Entry[]> {
  const out = new Map<string, Entry[]>();
  let current: Entry[] | undefined;
  for (const line of help.split('\n')) {
    if (/^\S.*:$/.test(line)) {
      current = [];
      out.set(line, current);
    } else if (current !== undefined && /^ {2}-/.test(line)) {
      const flag = /--([a-z0-9-]+)/.exec(line)?.[1] ?? '';
      current.push({ flag, text: line.trim() });
    } else if (current !== undefined && /^ {3,}\S/.test(line) && current.length > 0) {
      const last = current.pop() as Entry;
      current.push({ flag: last.flag, text: `${last.text} ${line.trim()}` });
    }
  }
  return out;
}

for (const [name, program, groups, kiln] of [
  ['executor', EXECUTOR, EXECUTOR_GROUPS, EXECUTOR_KILN_FLAGS],
  ['warmer', WARMER, WARMER_GROUPS, WARMER_KILN_FLAGS],
] as const) {
  describe(`${name} --help`, () => {
    it('lists the flags under their topics, in the topics\' order, help last', async () => {
      const { stdout } = await run(process.execPath, [program, '--help']);
      const s = sections(stdout);
      const headings = [...s.keys()].filter((h) => h !== 'Usage: ' && !h.startsWith('Usage'));
      expect(headings).toEqual([...groups.map((g) => g.heading).filter((h) => (s.get(h)?.length ?? 0) > 0), OTHER_HEADING]);
      // Nothing but help falls through to "Other:": every flag has a topic.
      expect(s.get(OTHER_HEADING)?.map((e) => e.flag)).toEqual(['help']);
      for (const g of groups) {
        for (const e of s.get(g.heading) ?? []) expect(g.flags.includes(e.flag) || g.flags.includes(e.flag.replace(/^no-/, '')), `${e.flag} in ${g.heading}`).toBe(true);
      }
    });

    it("puts kaniko's flags before kiln's in each topic and marks kiln's, with a default on every line", async () => {
      const { stdout } = await run(process.execPath, [program, '--help']);
      for (const [heading, entries] of sections(stdout)) {
        if (heading === OTHER_HEADING) continue;
        const isKiln = entries.map((e) => kiln.has(e.flag) || kiln.has(e.flag.replace(/^no-/, '')));
        // Once a kiln flag appears, no kaniko flag follows it.
        expect(isKiln.slice(isKiln.indexOf(true) === -1 ? isKiln.length : isKiln.indexOf(true)).every(Boolean), heading).toBe(true);
        for (const [i, e] of entries.entries()) {
          expect(e.text.includes('(kiln)'), e.flag).toBe(isKiln[i]);
          expect(e.text, e.flag).toMatch(/\(default: |, default: /);
        }
      }
    });

    it('answers without loading the bundle (bin/load-kiln.js) with the very text the bundle prints', async () => {
      const loader = EXECUTOR.replace(/executor\.js$/, 'load-kiln.js');
      const entry = name === 'executor' ? 'main' : 'warmerMain';
      const fast = await run(process.execPath, [program, '--help']);
      const short = await run(process.execPath, [program, '-h']);
      // The bundle's own answer, through commander, as a pipe gets it (80 columns).
      const script = `require(${JSON.stringify(loader)}).loadMain(${JSON.stringify(entry)}).then((m) => m(['node', ${JSON.stringify(name)}, '--help'], process.env)).then((c) => { process.exitCode = c; })`;
      const viaBundle = await run(process.execPath, ['-e', script]);
      expect(viaBundle.stdout).toContain('--help');
      expect(fast.stdout).toBe(viaBundle.stdout);
      expect(short.stdout).toBe(viaBundle.stdout);
    });
  });
}

describe('executor --help and the deprecated spellings', () => {
  it('hides --snapshotMode, --customPlatform and --tarPath, yet accepts them with kaniko\'s warning', async () => {
    const { stdout } = await run(process.execPath, [EXECUTOR, '--help']);
    expect(stdout).not.toMatch(/snapshotMode|customPlatform|tarPath/);
    // Refused after parsing (no destination): the flags themselves were taken.
    const r = await executor(['--snapshotMode=redo', '--customPlatform', 'linux/amd64', '--tarPath', '/tmp/x.tar']);
    expect(r.stderr).toContain('Flag --snapshotMode is deprecated. Use: --snapshot-mode');
    expect(r.stderr).toContain('error building image: you must provide --destination, or use --no-push');
    expect(r.stderr).not.toContain('unknown option');
  });

  it('still refuses a flag no topic lists', async () => {
    const r = await executor(['--no-such-flag']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: unknown option '--no-such-flag'");
  });
});
