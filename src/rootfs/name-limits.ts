// What Linux will not take as a path, checked from a tar header before anything is made: a name longer
// than NAME_MAX (255 bytes) in any component, a path of PATH_MAX (4096 bytes, the terminating NUL
// included) or more, a symlink target as long. The kernel would refuse these too (ENAMETOOLONG), but
// its message repeats the whole path, thousands of bytes, and only after the parents were made; this
// refuses the entry in one readable line, with nothing written for it.

/** Bytes in a path the kernel accepts, its NUL included (linux/limits.h). */
export const PATH_MAX = 4096;
/** Bytes in one path component on the filesystems a rootfs lives on (ext4, xfs, tmpfs, overlay). */
export const NAME_MAX = 255;

/**
 * Why `hostPath` (the entry's place on the host; `rel` its root-relative form) cannot be made, or
 * undefined. `subject` names the path in the reason: `its path`, `its link target`.
 */
export function pathLimitProblem(rel: string, hostPath: string, subject = 'its path'): string | undefined {
  for (const part of rel.split('/')) {
    const n = Buffer.byteLength(part);
    if (n > NAME_MAX) return `a name in ${subject} is ${n} bytes, longer than the ${NAME_MAX} a filesystem allows (NAME_MAX)`;
  }
  const n = Buffer.byteLength(hostPath);
  if (n >= PATH_MAX) return `${subject} would be ${n} bytes on the host, longer than the ${PATH_MAX - 1} Linux allows (PATH_MAX)`;
  return undefined;
}

/** Why a symlink target cannot be stored, or undefined. */
export function linkTargetProblem(target: string): string | undefined {
  const n = Buffer.byteLength(target);
  return n >= PATH_MAX ? `its symlink target is ${n} bytes, longer than the ${PATH_MAX - 1} Linux allows (PATH_MAX)` : undefined;
}

const SHOWN = 120;

/** A name as JSON, cut in the middle when long, so that an error about it stays one readable line. */
export function shortName(name: string): string {
  if (name.length <= SHOWN) return JSON.stringify(name);
  return `${JSON.stringify(name.slice(0, 60))}...${JSON.stringify(name.slice(-40))} (${Buffer.byteLength(name)} bytes)`;
}

/** `text` with every run of more than 200 non-blank characters (a path the kernel echoed) cut in the middle. */
export function shortenLongRuns(text: string): string {
  return text.replace(/\S{201,}/g, (run) => `${run.slice(0, 80)}...${run.slice(-60)}`);
}
