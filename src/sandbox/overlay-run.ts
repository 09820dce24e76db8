// The overlay snapshot strategy's half in the sandbox: a RUN sees the stage rootfs through an overlay
// mount (lower = the rootfs, upper = a fresh dir), so everything it changes lands in the upper dir and
// the snapshot costs what the RUN changed, not the size of the rootfs.
//
// The mount is made in a private mount namespace of its own (`unshare --mount --propagation private`)
// and bwrap is exec'ed inside it: when the RUN ends, the namespace and the mount go with it, whatever
// happens to kiln, so no mount ever leaks onto the host. Making it needs root (CAP_SYS_ADMIN on the
// host): a non-root USER's bwrap is started afterwards with `setpriv`, holding no privilege, as before.
//
// Options: metacopy=off keeps file data in the upper dir (no pointer back into the lower one).
// redirect_dir=on lets rename(2) move a lower directory (off, the kernel answers EXDEV, which only
// programs that fall back to copying survive); overlay-merge.ts follows the redirect. index=on gives the RUN POSIX
// hardlinks: without it, writing one name of a multiply-linked lower file copies up that name alone
// and the others keep the old data (Documentation/filesystems/overlayfs.rst, "Index"); with it the
// names stay one inode, and overlay-merge.ts writes that inode back into the lower one. xino=off keeps
// the mount simple. Any failure to mount is found by `probeOverlay` before the first RUN, and the
// build falls back to the walk strategy.
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunUser } from './sandbox.js';

/** Absolute paths of the host programs the overlay run needs (util-linux and /bin/sh). */
export interface OverlayTools {
  readonly unshare: string;
  readonly mount: string;
  readonly setpriv: string;
  readonly sh: string;
}

export interface OverlayDirs {
  readonly lower: string;
  readonly upper: string;
  readonly work: string;
  readonly merged: string;
}

/** What the sandbox needs to run RUN on an overlay and hand its upper dir over afterwards. */
export interface RunOverlay {
  readonly tools: OverlayTools;
  /** A directory on the rootfs's filesystem for upper, work and mount point dirs. */
  readonly scratch: string;
  /**
   * Takes a finished RUN's upper dir (and owns it from then on). `touched` are absolute in-rootfs
   * paths kiln itself created or changed in the rootfs for that RUN (its work dir, mount stubs).
   */
  collect(upper: string, touched: readonly string[]): Promise<void>;
}

/** Characters the kernel's mount option parser gives a meaning to. */
const UNSAFE_IN_OPTIONS = /[,:\\\n]/;

export function overlayOptions(d: OverlayDirs): string {
  for (const p of [d.lower, d.upper, d.work]) {
    if (UNSAFE_IN_OPTIONS.test(p)) throw new RangeError(`path cannot be used in overlay mount options: ${p}`);
  }
  return `lowerdir=${d.lower},upperdir=${d.upper},workdir=${d.work},redirect_dir=on,metacopy=off,index=on,xino=off`;
}

/** `mount` the overlay, then exec the rest of argv. Paths travel as arguments, never inside the script. */
const SCRIPT = 'set -e; "$1" -t overlay overlay -o "$2" "$3"; shift 3; exec "$@"';

/**
 * The argv that runs `inner` (bwrap and its arguments, `--bind <merged> /` among them) inside a fresh
 * mount namespace holding the overlay at `dirs.merged`; as `user` when that is not root.
 */
export function overlayArgv(tools: OverlayTools, dirs: OverlayDirs, user: RunUser, inner: readonly string[]): string[] {
  // Always through setpriv, root too: the RUN's groups are the user's (never kiln's own).
  const drop = setprivArgv(tools.setpriv, user);
  return [tools.unshare, '--mount', '--propagation', 'private', '--', tools.sh, '-c', SCRIPT, 'sh', tools.mount, overlayOptions(dirs), dirs.merged, ...drop, ...inner];
}

/** `setpriv` to the RUN's uid, gid and group list (kiln's own supplementary groups never pass). */
export function setprivArgv(setpriv: string, user: RunUser): string[] {
  const groups = user.groups ?? [user.gid];
  return [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, groups.length === 0 ? '--clear-groups' : `--groups=${groups.join(',')}`, '--'];
}

/** Fresh upper and work dirs (and the mount point) for one RUN, under `scratch`. */
export async function overlayDirsFor(scratch: string, lower: string): Promise<OverlayDirs> {
  await mkdir(scratch, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(scratch, 'run-'));
  // mkdtemp makes it 0700: a non-root USER's bwrap must reach the mount point through it.
  await chmod(dir, 0o755);
  const dirs = { lower, upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'merged') };
  // The upper dir becomes `/` of the merged view: 0755 like a rootfs, reachable by a non-root USER.
  await Promise.all([mkdir(dirs.upper, { mode: 0o755 }), mkdir(dirs.work, { mode: 0o700 }), mkdir(dirs.merged, { mode: 0o755 })]);
  return dirs;
}

/**
 * Whether an overlay can be mounted here: tries one in a throwaway namespace on `scratch`'s
 * filesystem. Returns why not, or undefined when it works.
 */
export async function probeOverlay(tools: OverlayTools, scratch: string): Promise<string | undefined> {
  await mkdir(scratch, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(scratch, 'probe-'));
  try {
    const lower = join(dir, 'lower');
    await mkdir(lower);
    await writeFile(join(lower, 'f'), '');
    const dirs = await overlayDirsFor(dir, lower);
    const argv = overlayArgv(tools, dirs, { uid: 0, gid: 0 }, [tools.sh, '-c', 'rm "$1"/f', 'sh', dirs.merged]);
    return await new Promise<string | undefined>((resolve) => {
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.once('error', (e) => resolve(e.message));
      child.once('close', (code) => resolve(code === 0 ? undefined : err.trim() || `exit status ${code}`));
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
