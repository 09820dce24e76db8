import { describe, expect, it } from 'vitest';
import { renameDeprecatedFlags } from '../../src/cli/deprecated-flags.js';

describe('renameDeprecatedFlags (kaniko checkNoDeprecatedFlags)', () => {
  it('renames --snapshotMode, --customPlatform and --tarPath in both forms, warning once each', () => {
    const r = renameDeprecatedFlags(['--snapshotMode=time', '--customPlatform', 'linux/arm64', '--tarPath', '/o/i.tar', '--snapshotMode', 'full']);
    expect(r.args).toEqual(['--snapshot-mode=time', '--custom-platform', 'linux/arm64', '--tar-path', '/o/i.tar', '--snapshot-mode', 'full']);
    expect(r.warnings).toEqual([
      'Flag --snapshotMode is deprecated. Use: --snapshot-mode',
      'Flag --customPlatform is deprecated. Use: --custom-platform',
      'Flag --tarPath is deprecated. Use: --tar-path',
    ]);
  });

  it('leaves other flags, values and everything after -- alone', () => {
    const args = ['--destination', '--tarPath', '--tar-path=x', '--', '--snapshotMode'];
    // A value that looks like a deprecated flag is still renamed, as pflag would read it as a flag too.
    expect(renameDeprecatedFlags(args).args).toEqual(['--destination', '--tar-path', '--tar-path=x', '--', '--snapshotMode']);
    expect(renameDeprecatedFlags(['--cache=true', '-v', 'debug']).args).toEqual(['--cache=true', '-v', 'debug']);
  });
});
