// `RUN --mount=type=cache,sharing=...` across kiln processes that share one --mount-cache-dir.
// Within one build RUNs execute one after another, so only other builds can contend:
//   shared   no lock: every writer sees the same directory (BuildKit's default);
//   locked   wait until no other build holds the directory;
//   private  if another build holds it, this RUN gets a fresh empty directory of its own (BuildKit keeps
//            that one as a further cache instance; kiln discards it after the RUN).
// The lock is a directory created with mkdir (atomic) holding the owner's pid; a lock whose owner is
// gone (a killed build) is taken over.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MountSharing } from '../../dockerfile/instructions.js';

export interface CacheHold {
  /** The directory to mount: the cache itself, or a private stand-in. */
  readonly dir: string;
  release(): Promise<void>;
}

const POLL_MS = 200;

export async function holdCacheDir(dir: string, sharing: MountSharing, privateDir: () => Promise<string>, signal: AbortSignal): Promise<CacheHold> {
  if (sharing === 'shared') return { dir, release: async () => {} };
  const lock = `${dir}.lock`;
  for (;;) {
    signal.throwIfAborted();
    if (await tryLock(lock)) return { dir, release: () => rm(lock, { recursive: true, force: true }) };
    if (sharing === 'private') {
      const own = await privateDir();
      return { dir: own, release: () => rm(own, { recursive: true, force: true }) };
    }
    await sleep(POLL_MS, undefined, { signal });
  }
}

async function tryLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    if (!(await ownerGone(lock))) return false;
    await rm(lock, { recursive: true, force: true });
    return tryLock(lock);
  }
  // process.pid identifies this build to other builds; it is read, never changed.
  await writeFile(join(lock, 'pid'), String(process.pid));
  return true;
}

async function ownerGone(lock: string): Promise<boolean> {
  const text = await readFile(join(lock, 'pid'), 'utf8').catch(() => undefined);
  // No pid yet: the owner is between mkdir and writeFile; treat it as alive.
  if (text === undefined) return false;
  const pid = Number.parseInt(text, 10);
  if (!Number.isInteger(pid) || pid <= 0) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
