// The maps kiln writes for a non-root RUN's user namespace (src/sandbox/user-namespace-maps.ts): the
// RUN's own ids to themselves, the namespace's 0 to (uid_t)-2 (bwrap's devpts needs 0 mapped; that id
// owns no file), and nothing when bwrap's own maps already show every id or an id would be mapped twice.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SandboxError } from '../../src/errors.js';
import { userNamespaceMaps, writeMapsWhenAsked } from '../../src/sandbox/user-namespace-maps.js';

describe('userNamespaceMaps', () => {
  it('maps the uid and every group to themselves, and 0 to (uid_t)-2', () => {
    expect(userNamespaceMaps({ uid: 1000, gid: 1000, groups: [1000, 2000, 2001] })).toEqual({
      uidMap: '1000 1000 1\n0 4294967294 1\n',
      gidMap: '1000 1000 1\n2000 2000 1\n2001 2001 1\n0 4294967294 1\n',
    });
    // nobody (65534) with a group of its own: 65534 is mapped as itself.
    expect(userNamespaceMaps({ uid: 65534, gid: 65534, groups: [65534, 2000] })?.uidMap).toBe('65534 65534 1\n0 4294967294 1\n');
  });

  it('maps gid 0 to itself when the RUN holds it (a member of group root)', () => {
    expect(userNamespaceMaps({ uid: 1000, gid: 1000, groups: [1000, 0] })?.gidMap).toBe('1000 1000 1\n0 0 1\n');
  });

  it("leaves bwrap's maps alone: root, no supplementary group, or (uid_t)-2 among the RUN's own", () => {
    expect(userNamespaceMaps({ uid: 0, gid: 0, groups: [0, 10] })).toBeUndefined();
    expect(userNamespaceMaps({ uid: 1000, gid: 1000, groups: [1000] })).toBeUndefined();
    expect(userNamespaceMaps({ uid: 1000, gid: 1000 })).toBeUndefined();
    expect(userNamespaceMaps({ uid: 4294967294, gid: 1000, groups: [1000, 2000] })).toBeUndefined();
    expect(userNamespaceMaps({ uid: 1000, gid: 1000, groups: [1000, 4294967294] })).toBeUndefined();
  });

  it('the primary gid counts even when the group list omits it', () => {
    expect(userNamespaceMaps({ uid: 1000, gid: 1000, groups: [2000] })?.gidMap).toBe('1000 1000 1\n2000 2000 1\n0 4294967294 1\n');
  });
});

describe('writeMapsWhenAsked', () => {
  const maps = { uidMap: '1000 1000 1\n', gidMap: '1000 1000 1\n' };

  it('ends the block fd without a byte when bwrap said nothing (it failed before its namespace)', async () => {
    const info = new PassThrough();
    const block = new PassThrough();
    info.end();
    await writeMapsWhenAsked(info, block, maps);
    expect(block.read()).toBeNull();
    expect(block.writableEnded).toBe(true);
  });

  it('refuses info it cannot read, and never lets bwrap go on', async () => {
    const info = new PassThrough();
    const block = new PassThrough();
    info.end('{"child-pid": "x"}');
    await expect(writeMapsWhenAsked(info, block, maps)).rejects.toThrow(SandboxError);
    expect(block.read()).toBeNull();
  });

  it('a process that is gone: one line naming /proc/PID, no byte', async () => {
    const info = new PassThrough();
    const block = new PassThrough();
    info.end('{\n    "child-pid": 999999999\n}\n');
    await expect(writeMapsWhenAsked(info, block, maps)).rejects.toThrow(/^cannot write the RUN's user namespace maps \(\/proc\/999999999\): /);
    expect(block.read()).toBeNull();
  });
});
