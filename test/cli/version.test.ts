// `executor version` and `--version`, as kaniko's (`Kaniko version : ...` first), and the warmer's.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { EXECUTOR } from '../support/executor.js';

const run = promisify(execFile);
const WARMER = EXECUTOR.replace(/executor\.js$/, 'warmer.js');

describe('version', () => {
  for (const [program, args] of [
    [EXECUTOR, ['version']],
    [EXECUTOR, ['--version']],
    [WARMER, ['version']],
    [WARMER, ['--version']],
  ] as const) {
    it(`${program.split('/').at(-1)} ${args.join(' ')} prints kaniko's version line, then kiln's commit and node`, async () => {
      const { stdout, stderr } = await run(process.execPath, [program, ...args]);
      const lines = stdout.split('\n');
      expect(lines[0]).toMatch(/^Kaniko version : v\d+\.\d+\.\d+$/);
      expect(lines[1]).toMatch(new RegExp(`^kiln v\\d+\\.\\d+\\.\\d+ \\(commit ([0-9a-f]{7,40}|unknown)\\) on Node\\.js ${process.version.replace(/\./g, '\\.')}$`));
      expect(stderr).toBe('');
    });
  }

  it('answers without loading the bundle (bin/load-kiln.js) with the very lines the bundle prints', async () => {
    const fast = await run(process.execPath, [EXECUTOR, 'version']);
    // The bundle's own answer: its main, asked the same, through runCommand and versionText.
    const script = `require(${JSON.stringify(EXECUTOR.replace(/executor\.js$/, 'load-kiln.js'))}).loadMain('main').then((m) => m(['node', 'executor', 'version'], process.env)).then((c) => { process.exitCode = c; })`;
    const viaBundle = await run(process.execPath, ['-e', script]);
    expect(fast.stdout).toBe(viaBundle.stdout);
    expect(fast.stdout).not.toContain('commit unknown');
  });

  it('is not taken for a version request when other flags come with it (commander refuses the stray word)', async () => {
    const r = await run(process.execPath, [EXECUTOR, 'version', '--no-push']).catch((e: { code: number; stderr: string }) => e);
    expect('code' in r ? r.code : 0).toBe(1);
  });
});
