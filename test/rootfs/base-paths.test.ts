// fileLandsAt: where docker's COPY of one file to a file destination needs nothing from the base.
import { describe, expect, it } from 'vitest';
import { fileLandsAt, type BasePaths } from '../../src/rootfs/base-paths.js';

const base: BasePaths = {
  dirs: new Set(['etc', 'usr', 'usr/lib', 'bin', 'opt/app']),
  symlinks: new Set(['lib', 'etc/alternatives/sh']),
  nonDirs: new Set(['lib', 'etc/alternatives/sh', 'etc/passwd', 'bin/sh', 'opt/file']),
};

describe('fileLandsAt', () => {
  it('takes a destination the base does not hold, under directories or nothing', () => {
    expect(fileLandsAt(base, '/usr/local/bin/app')).toBe(true);
    expect(fileLandsAt(base, '/etc/motd')).toBe(true);
    expect(fileLandsAt(base, '/top.txt')).toBe(true);
  });

  it('takes a destination the base holds as a file: the copy replaces it', () => {
    expect(fileLandsAt(base, '/etc/passwd')).toBe(true);
  });

  it('refuses a directory at the destination (the file would go into it) and a symlink there', () => {
    expect(fileLandsAt(base, '/etc')).toBe(false);
    expect(fileLandsAt(base, '/opt/app')).toBe(false);
    expect(fileLandsAt(base, '/lib')).toBe(false);
    expect(fileLandsAt(base, '/etc/alternatives/sh')).toBe(false);
  });

  it('refuses a symlink or a file above the destination', () => {
    expect(fileLandsAt(base, '/lib/libx.so')).toBe(false);
    expect(fileLandsAt(base, '/opt/file/x')).toBe(false);
    expect(fileLandsAt(base, '/bin/sh/x')).toBe(false);
  });

  it('refuses the root itself', () => {
    expect(fileLandsAt(base, '/')).toBe(false);
  });
});
