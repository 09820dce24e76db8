// The native walker and the plain-Node fallback must index a rootfs identically: either may run,
// depending on whether the addon was built.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile, chown, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeFs } from '../../src/rootfs/native-fs.js';
import { IgnoreList } from '../../src/rootfs/ignore-list.js';
import { scanScope, scanTree, type EntryMeta } from '../../src/snapshot/tree-index.js';

describe('native and JS tree readers', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'kiln-readers-'));
    for (let d = 0; d < 12; d++) {
      await mkdir(join(root, `d${d}`, 'sub'), { recursive: true });
      for (let f = 0; f < 20; f++) await writeFile(join(root, `d${d}`, 'sub', `f${f}`), 'x'.repeat(f));
    }
    await writeFile(join(root, 'ünïcødé файл'), 'utf8 name');
    await symlink('/etc/passwd', join(root, 'abs-link'));
    await symlink('d0/sub', join(root, 'rel-link'));
    execFileSync('mkfifo', [join(root, 'fifo')]);
    await writeFile(join(root, 'owned'), 'o');
    await chown(join(root, 'owned'), 1000, 1000);
    await chmod(join(root, 'owned'), 0o4750);
    await mkdir(join(root, 'proc', 'self'), { recursive: true });
    await writeFile(join(root, 'proc', 'self', 'x'), 'ignored');
    await writeFile(join(root, 'proc-not-ignored'), 'kept');
  });
  afterAll(async () => rm(root, { recursive: true, force: true }));

  const ignore = IgnoreList.of(['/proc', '/d3/sub']);

  it('the addon is built, so the native reader is what runs', () => {
    expect(nativeFs()).not.toBeNull();
  });

  it('scanTree gives the same index with either reader, ignore list applied', async () => {
    const native = await scanTree(root, ignore, { reader: 'native' });
    const js = await scanTree(root, ignore, { reader: 'js' });
    expect([...native.keys()].sort()).toEqual([...js.keys()].sort());
    for (const [path, meta] of js) expect(native.get(path), path).toEqual(meta);
    expect(native.has('proc')).toBe(false);
    expect(native.has('d3/sub')).toBe(false);
    expect(native.has('d3')).toBe(true);
    expect(native.get('ünïcødé файл')?.kind).toBe('file');
    expect(native.get('abs-link')?.linkTarget).toBe('/etc/passwd');
    expect(native.get('fifo')?.kind).toBe('fifo');
    expect(native.get('owned')).toMatchObject({ uid: 1000, gid: 1000, mode: 0o4750 });
  });

  it('scanScope gives the same entries with either reader', () => {
    const a = new Map<string, EntryMeta>();
    const b = new Map<string, EntryMeta>();
    scanScope(root, ignore, ['d1', 'd3'], ['d2'], a, { reader: 'native' });
    scanScope(root, ignore, ['d1', 'd3'], ['d2'], b, { reader: 'js' });
    expect(a).toEqual(b);
    expect(a.has('d1/sub/f3')).toBe(true);
    expect(a.has('d2/sub')).toBe(false);
  });
});
