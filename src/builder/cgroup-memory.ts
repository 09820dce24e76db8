// How much memory the cgroup kiln runs in still allows, for `--rootfs-tmpfs auto`: tmpfs pages are
// charged to the cgroup that writes them, so a pod's limit is what a stage tmpfs must fit in. Both
// hierarchies: cgroup v2 (memory.max, memory.current) and v1 (memory.limit_in_bytes,
// memory.usage_in_bytes; still what many Kubernetes nodes and this project's own CI VMs have), found
// through mountinfo rather than assumed at /sys/fs/cgroup, since hybrid machines mount v2 at
// /sys/fs/cgroup/unified and v1 controllers beside it. A limit on an ancestor binds too (a pod's limit
// sits above its containers'), so every level from kiln's cgroup up to the mount's root is read.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** v1 reports "no limit" as the largest page-aligned int64 (9223372036854771712); anything this large is none. */
const V1_UNLIMITED = 2 ** 62;

export interface CgroupMemoryDir {
  readonly version: 1 | 2;
  readonly dir: string;
}

/**
 * Pure: the memory cgroup directories of a process, each hierarchy's own level first, then each
 * ancestor up to the hierarchy's mount point, from `/proc/self/cgroup` and `/proc/self/mountinfo`
 * text. On a hybrid machine both come back: v2's levels there have no memory files and read as no limit.
 */
export function cgroupMemoryDirs(procCgroup: string, mountinfo: string): CgroupMemoryDir[] {
  const mounts = parseCgroupMounts(mountinfo);
  const out: CgroupMemoryDir[] = [];
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
    if (m === null) continue;
    const [, id, controllers, path] = m as unknown as [string, string, string, string];
    const mount = id === '0' && controllers === '' ? mounts.find((x) => x.version === 2) : controllers.split(',').includes('memory') ? mounts.find((x) => x.version === 1 && x.memory) : undefined;
    if (mount === undefined) continue;
    const parts = relativeTo(path, mount.root).split('/').filter((p) => p !== '');
    for (let n = parts.length; n >= 0; n--) out.push({ version: mount.version, dir: join(mount.point, ...parts.slice(0, n)) });
  }
  return out;
}

/** A cgroup path as seen inside a mount whose root is `root` (a container sees its own cgroup as `/`). */
function relativeTo(path: string, root: string): string {
  if (root === '/' || root === '') return path;
  if (path === root) return '/';
  if (path.startsWith(`${root}/`)) return path.slice(root.length);
  // A cgroup namespace already made the path relative to the mount.
  return path;
}

interface CgroupMount {
  readonly version: 1 | 2;
  readonly memory: boolean;
  readonly root: string;
  readonly point: string;
}

function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions] = right.split(' ');
    const root = unescape(fields[3] ?? '');
    const point = unescape(fields[4] ?? '');
    if (fstype === 'cgroup2') out.push({ version: 2, memory: true, root, point });
    else if (fstype === 'cgroup') out.push({ version: 1, memory: (superOptions ?? '').split(',').includes('memory'), root, point });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Pure: limit minus usage from one cgroup level's files' text; undefined when unlimited or unreadable. */
export function cgroupLevelAvailable(version: 1 | 2, limitText: string | undefined, usageText: string | undefined): number | undefined {
  const limit = (limitText ?? '').trim();
  const usage = Number((usageText ?? '').trim());
  if (limit === '' || limit === 'max' || !Number.isFinite(usage)) return undefined;
  const n = Number(limit);
  if (!Number.isFinite(n) || (version === 1 && n >= V1_UNLIMITED)) return undefined;
  return Math.max(0, n - usage);
}

/** The tightest limit-minus-usage over kiln's memory cgroup and its ancestors, or undefined when none limits. */
export async function readCgroupAvailable(): Promise<number | undefined> {
  const [self, mountinfo] = await Promise.all([readFile('/proc/self/cgroup', 'utf8').catch(() => ''), readFile('/proc/self/mountinfo', 'utf8').catch(() => '')]);
  let tightest: number | undefined;
  for (const { version, dir } of cgroupMemoryDirs(self, mountinfo)) {
    const [limitFile, usageFile] = version === 2 ? ['memory.max', 'memory.current'] : ['memory.limit_in_bytes', 'memory.usage_in_bytes'];
    const [limit, usage] = await Promise.all([readFile(join(dir, limitFile), 'utf8').catch(() => undefined), readFile(join(dir, usageFile), 'utf8').catch(() => undefined)]);
    const avail = cgroupLevelAvailable(version, limit, usage);
    if (avail !== undefined) tightest = tightest === undefined ? avail : Math.min(tightest, avail);
  }
  return tightest;
}
