import { describe, expect, it } from 'vitest';
import { IgnoreList, defaultIgnoreList } from '../../src/rootfs/ignore-list.js';

describe('IgnoreList', () => {
  it('matches an entry and everything under it, not siblings sharing a prefix', () => {
    const l = IgnoreList.of(['/proc', '/etc/hosts']);
    expect(l.isIgnored('proc')).toBe(true);
    expect(l.isIgnored('/proc/self/fd/0')).toBe(true);
    expect(l.isIgnored('processes')).toBe(false);
    expect(l.isIgnored('etc/hosts')).toBe(true);
    expect(l.isIgnored('etc/hosts.allow')).toBe(false);
    expect(l.isIgnored('etc')).toBe(false);
    expect(l.isIgnored('')).toBe(false);
  });

  it('normalises entries and lookups', () => {
    const l = IgnoreList.of(['//var/./run/', 'kaniko']);
    expect(l.entries).toEqual(['/kaniko', '/var/run']);
    expect(l.isIgnored('./var/run/x')).toBe(true);
    expect(l.isIgnored('kaniko/')).toBe(true);
  });

  it('with() returns a new list and leaves the original as it was', () => {
    const a = IgnoreList.of(['/proc']);
    const b = a.with(['/workspace']);
    expect(a.isIgnored('workspace')).toBe(false);
    expect(b.isIgnored('workspace/ctx')).toBe(true);
    expect(b.isIgnored('proc')).toBe(true);
  });

  it('refuses to ignore the root', () => {
    expect(() => IgnoreList.of(['/'])).toThrow(RangeError);
  });

  it('knows whether an ignored path lies under a directory', () => {
    const l = IgnoreList.of(['/var/run']);
    expect(l.hasIgnoredUnder('var')).toBe(true);
    expect(l.hasIgnoredUnder('')).toBe(true);
    expect(l.hasIgnoredUnder('var/run')).toBe(false);
    expect(l.hasIgnoredUnder('etc')).toBe(false);
  });

  it('default lists: the kernel filesystems, runtime files, /kaniko and /busybox in container mode only; /var/run unless disabled', () => {
    // Sandbox mode: the rootfs is a tree of its own; what ADD or COPY puts under /sys, /proc, /dev or
    // /etc/hosts belongs in the layer, as in docker build.
    const sandbox = defaultIgnoreList({ mode: 'sandbox' });
    expect(sandbox.entries).toEqual(['/var/run']);
    expect(sandbox.isIgnored('sys/kernel/x')).toBe(false);
    expect(sandbox.isIgnored('etc/hosts')).toBe(false);
    expect(defaultIgnoreList({ mode: 'sandbox', ignoreVarRun: false, extra: ['/cache'] }).entries).toEqual(['/cache']);
    const container = defaultIgnoreList({ mode: 'container', ignoreVarRun: false, extra: ['/workspace'] });
    expect(container.entries).toEqual(['/busybox', '/dev', '/etc/hostname', '/etc/hosts', '/etc/mtab', '/etc/resolv.conf', '/kaniko', '/proc', '/sys', '/workspace']);
    expect(container.isIgnored('kaniko/0.tar.gz')).toBe(true);
    expect(container.isIgnored('var/run')).toBe(false);
    expect(container.isIgnored('busybox/sh')).toBe(true);
    expect(container.isIgnored('sys/kernel/x')).toBe(true);
    expect(container.isIgnored('workspace/Dockerfile')).toBe(true);
  });
});
