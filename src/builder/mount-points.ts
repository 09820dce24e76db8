// Container mode: whatever the container runtime mounted into kiln's container (volumes such as
// /workspace, secrets under /kaniko/.docker, /etc/resolv.conf, /dev/shm, ...) belongs to the runtime,
// not to the image being built. kaniko reads them from /proc/self/mountinfo and ignores them; so do we.
import { readFile } from 'node:fs/promises';
import { SandboxError } from '../errors.js';

/**
 * The mount points in mountinfo text (proc(5): the 5th field), unescaped, without `/` itself (the
 * root is the rootfs being built). Malformed lines are skipped: the kernel writes this file, a line we
 * cannot read is not a reason to ignore more, or fewer, paths than the ones we can.
 */
export function parseMountPoints(mountinfo: string): string[] {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const point = fields[4];
    if (point === undefined || !point.startsWith('/')) continue;
    const path = unescapeMountField(point);
    if (path !== '/') out.add(path);
  }
  return [...out];
}

/** The kernel writes space, tab, newline and backslash in paths as `\040`, `\011`, `\012`, `\134`. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Reads the mount points of the calling process (`/proc/self/mountinfo` unless told otherwise). */
export async function readMountPoints(path = '/proc/self/mountinfo'): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    // Without it we could delete a volume the runtime mounted into the container: refuse to go on.
    throw new SandboxError(`reading ${path} to find mount points to leave alone: ${(err as Error).message}`, { cause: err });
  }
  return parseMountPoints(text);
}
