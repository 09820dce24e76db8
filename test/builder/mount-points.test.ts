// Container mode leaves alone whatever the runtime mounted: the mount points come from mountinfo text.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMountPoints, readMountPoints } from '../../src/builder/mount-points.js';
import { SandboxError } from '../../src/errors.js';

// A docker container's mountinfo, shortened: overlay root, kernel filesystems, a volume, runtime files.
const DOCKER_MOUNTINFO = `\
1195 1006 0:158 / / rw,relatime master:403 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B
1196 1195 0:161 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1197 1195 0:162 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1198 1197 0:163 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620,ptmxmode=666
1201 1195 254:1 /home/me/src /workspace rw,relatime - ext4 /dev/vda1 rw
1202 1195 254:1 /var/lib/docker/containers/abc/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
1203 1195 254:1 /home/me/.docker /kaniko/.docker ro,relatime - ext4 /dev/vda1 rw
1007 1196 0:161 /bus /proc/bus ro,nosuid,nodev,noexec,relatime - proc proc rw
`;

describe('parseMountPoints', () => {
  it('returns every mount point but the root, in order', () => {
    expect(parseMountPoints(DOCKER_MOUNTINFO)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/workspace',
      '/etc/resolv.conf',
      '/kaniko/.docker',
      '/proc/bus',
    ]);
  });

  it('unescapes the octal escapes the kernel writes for space, tab, newline and backslash', () => {
    const line = '40 22 0:50 / /mnt/my\\040vol\\011x\\012y\\134z rw - tmpfs tmpfs rw\n';
    expect(parseMountPoints(line)).toEqual(['/mnt/my vol\tx\ny\\z']);
  });

  it('skips blank and malformed lines and repeated mount points', () => {
    const text = '\ngarbage\n1 0 0:1 / relative rw - x x rw\n2 0 0:2 / /a rw - x x rw\n3 0 0:3 / /a rw - x x rw\n';
    expect(parseMountPoints(text)).toEqual(['/a']);
  });
});

describe('readMountPoints', () => {
  it('reads a mountinfo file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-mountinfo-'));
    try {
      await writeFile(join(dir, 'mountinfo'), DOCKER_MOUNTINFO);
      expect(await readMountPoints(join(dir, 'mountinfo'))).toContain('/workspace');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails with a SandboxError when the file cannot be read, rather than ignoring nothing', async () => {
    await expect(readMountPoints('/nonexistent/kiln/mountinfo')).rejects.toBeInstanceOf(SandboxError);
  });
});
