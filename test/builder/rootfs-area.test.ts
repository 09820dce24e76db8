// The pure parts of the tmpfs decision: policy, /proc/meminfo, and finding kiln's own mounts.
import { describe, expect, it } from 'vitest';
import { cgroupLevelAvailable, cgroupMemoryDirs } from '../../src/builder/cgroup-memory.js';
import { chooseTmpfs, kilnTmpfsMounts, kilnTmpfsSizes, parseMemAvailable } from '../../src/builder/rootfs-area.js';

const GiB = 1024 ** 3;
const base = { policy: 'auto' as const, sandbox: true, root: true, memAvailableBytes: 16 * GiB, baseCompressedBytes: 100 * 1024 ** 2, sizeMiB: undefined };

describe('chooseTmpfs', () => {
  it('auto: uses a tmpfs of half the available memory when memory is plentiful and the base small', () => {
    expect(chooseTmpfs(base)).toMatchObject({ use: true, sizeBytes: 8 * GiB });
  });
  it('auto: stays on disk below 8 GiB available', () => {
    expect(chooseTmpfs({ ...base, memAvailableBytes: 7 * GiB }).use).toBe(false);
  });
  it('auto: stays on disk when the base, unpacked at 3x, is over an eighth of available memory', () => {
    expect(chooseTmpfs({ ...base, baseCompressedBytes: Math.ceil((2 * GiB) / 3) + 1 }).use).toBe(false);
    expect(chooseTmpfs({ ...base, baseCompressedBytes: Math.floor((2 * GiB) / 3) }).use).toBe(true);
  });
  it('auto: stays on disk when available memory is unknown', () => {
    expect(chooseTmpfs({ ...base, memAvailableBytes: undefined }).use).toBe(false);
  });
  it('never mounts without root, in container mode, or when told never', () => {
    expect(chooseTmpfs({ ...base, root: false }).use).toBe(false);
    expect(chooseTmpfs({ ...base, sandbox: false }).use).toBe(false);
    expect(chooseTmpfs({ ...base, policy: 'never' }).use).toBe(false);
    expect(chooseTmpfs({ ...base, policy: 'always', root: false }).use).toBe(false);
  });
  it('always: ignores the estimate and takes --rootfs-tmpfs-size', () => {
    expect(chooseTmpfs({ ...base, policy: 'always', memAvailableBytes: 1 * GiB, baseCompressedBytes: 10 * GiB, sizeMiB: 64 })).toMatchObject({ use: true, sizeBytes: 64 * 1024 ** 2 });
  });
});

describe('chooseTmpfs with other builds and a cgroup limit (issue 14)', () => {
  it('six builds started one after another on a 24 GiB machine promise no more than it has', () => {
    const claims: number[] = [];
    for (let i = 0; i < 6; i++) {
      const c = chooseTmpfs({ ...base, memAvailableBytes: 24 * GiB, claimedBytes: claims.reduce((a, b) => a + b, 0) });
      if (c.use) claims.push(c.sizeBytes);
    }
    expect(claims.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(24 * GiB);
    // The first ones get a tmpfs; once what is left is under 8 GiB, the rest build on disk.
    expect(claims).toEqual([12 * GiB, 6 * GiB]);
  });
  it('a cgroup limit tighter than the machine decides', () => {
    expect(chooseTmpfs({ ...base, memAvailableBytes: 64 * GiB, cgroupAvailableBytes: 4 * GiB }).use).toBe(false);
    expect(chooseTmpfs({ ...base, memAvailableBytes: 64 * GiB, cgroupAvailableBytes: 16 * GiB })).toMatchObject({ use: true, sizeBytes: 8 * GiB });
  });
  it('reads tmpfs size limits of kiln mounts from mountinfo', () => {
    const info = [
      '120 29 0:50 / /w/rootfs-tmpfs-a rw,relatime shared:60 - tmpfs kiln-rootfs-4242 rw,size=11890688k,mode=755',
      '121 29 0:51 / /tmp rw - tmpfs tmpfs rw,size=1024k',
    ].join('\n');
    expect(kilnTmpfsSizes(info)).toEqual([{ pid: 4242, bytes: 11890688 * 1024 }]);
  });
  it('reads a cgroup limit, unlimited as undefined (v2 "max", v1 its page-aligned int64 maximum)', () => {
    expect(cgroupLevelAvailable(2, '8589934592\n', '1073741824\n')).toBe(7 * GiB);
    expect(cgroupLevelAvailable(2, 'max\n', '1073741824\n')).toBeUndefined();
    expect(cgroupLevelAvailable(2, undefined, undefined)).toBeUndefined();
    expect(cgroupLevelAvailable(1, '12884901888\n', '4294967296\n')).toBe(8 * GiB);
    expect(cgroupLevelAvailable(1, '9223372036854771712\n', '4294967296\n')).toBeUndefined();
  });
  it('a KILN_ROOTFS_TMPFS_BUDGET_MIB tighter than the machine and the cgroup decides', () => {
    expect(chooseTmpfs({ ...base, memAvailableBytes: 64 * GiB, cgroupAvailableBytes: 32 * GiB, budgetBytes: 12 * GiB })).toMatchObject({ use: true, sizeBytes: 6 * GiB });
    // What other builds hold comes off the budget too.
    expect(chooseTmpfs({ ...base, memAvailableBytes: 64 * GiB, budgetBytes: 12 * GiB, claimedBytes: 6 * GiB }).use).toBe(false);
  });
});

describe('cgroupMemoryDirs', () => {
  it('pure v2: kiln\'s cgroup and each ancestor under the cgroup2 mount', () => {
    const cgroup = '0::/kubepods/pod1/ctr\n';
    const info = '30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n';
    expect(cgroupMemoryDirs(cgroup, info)).toEqual(['/sys/fs/cgroup/kubepods/pod1/ctr', '/sys/fs/cgroup/kubepods/pod1', '/sys/fs/cgroup/kubepods', '/sys/fs/cgroup'].map((dir) => ({ version: 2, dir })));
  });
  it('hybrid (this project\'s CI VMs): v1\'s memory controller, not /sys/fs/cgroup/memory.max', () => {
    const cgroup = ['4:memory:/process_api/abc', '1:cpu:/', '0::/'].join('\n');
    const info = [
      '25 22 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755',
      '28 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu',
      '29 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
      '33 25 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    ].join('\n');
    expect(cgroupMemoryDirs(cgroup, info)).toEqual([
      { version: 1, dir: '/sys/fs/cgroup/memory/process_api/abc' },
      { version: 1, dir: '/sys/fs/cgroup/memory/process_api' },
      { version: 1, dir: '/sys/fs/cgroup/memory' },
      { version: 2, dir: '/sys/fs/cgroup/unified' },
    ]);
  });
  it('in a container, the path is taken relative to the mount\'s root', () => {
    const cgroup = '9:memory,hugetlb:/docker/c0ffee\n';
    const info = '40 30 0:40 /docker/c0ffee /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory,hugetlb\n';
    expect(cgroupMemoryDirs(cgroup, info)).toEqual([{ version: 1, dir: '/sys/fs/cgroup/memory' }]);
  });
});

describe('parseMemAvailable', () => {
  it('reads MemAvailable in bytes', () => {
    expect(parseMemAvailable('MemTotal:       24684556 kB\nMemFree:        23060216 kB\nMemAvailable:   24223860 kB\n')).toBe(24223860 * 1024);
  });
  it('is undefined on kernels without the field', () => {
    expect(parseMemAvailable('MemTotal:       24684556 kB\n')).toBeUndefined();
  });
});

describe('kilnTmpfsMounts', () => {
  it('finds tmpfs mounts named kiln-rootfs-<pid>, unescaping the mount point', () => {
    const info = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '90 22 0:50 / /tmp/kiln-abc/fs rw,relatime shared:40 - tmpfs kiln-rootfs-4242 rw,size=1024k,mode=755',
      '91 22 0:51 / /tmp/with\\040space/fs rw,relatime - tmpfs kiln-rootfs-7 rw',
      '92 22 0:52 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw',
      '93 22 0:53 / /tmp/x rw - ext4 kiln-rootfs-9 rw',
    ].join('\n');
    expect(kilnTmpfsMounts(info)).toEqual([
      { pid: 4242, point: '/tmp/kiln-abc/fs' },
      { pid: 7, point: '/tmp/with space/fs' },
    ]);
  });
});
