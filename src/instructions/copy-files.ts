// The file-copying engine behind COPY and ADD: docker's destination rules, ownership and modes, and
// every write resolved inside the rootfs. Sources are already resolved and known to be inside their
// root (the context, or another stage's rootfs).
import type { Stats } from 'node:fs';
import { copyFile, lstat, mkdir, readdir, readlink, rm, symlink, lchown, chmod, lutimes, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { DockerfileError } from '../errors.js';
import { mkdirAllInRoot, type Owner } from '../rootfs/in-root.js';
import { resolveInRoot, resolveParentInRoot } from '../rootfs/root-path.js';
import type { InstructionSite } from './handler.js';

export interface CopyRequest {
  /** Host directory the sources are relative to. */
  readonly sourceRoot: string;
  /** Source paths relative to `sourceRoot` (`''` for the root itself). */
  readonly sources: readonly string[];
  /** Whether the instruction named several sources or used a wildcard (dest must then be a directory). */
  readonly multiple: boolean;
  readonly destRoot: string;
  /** Absolute destination inside the rootfs, trailing `/` kept. */
  readonly dest: string;
  /** `preserve` keeps the source's uid/gid (copies between stages); context files become 0:0 or --chown. */
  readonly owner: Owner | 'preserve';
  readonly chmod: number | undefined;
  /**
   * Context-relative paths to leave out (.dockerignore); never asked for the sources themselves. A
   * directory answered false is entered (an excluded one may hold re-included files).
   */
  readonly excluded: (relPath: string, isDir: boolean) => boolean;
  readonly site: InstructionSite;
}

/** Parses `--chmod` (octal, as BuildKit accepts it). */
export function parseChmod(spec: string, site: InstructionSite): number {
  if (!/^[0-7]{3,4}$/.test(spec)) throw new DockerfileError(`invalid --chmod ${JSON.stringify(spec)}: want an octal mode like 755`, site);
  return Number.parseInt(spec, 8);
}

export async function copyIntoRootfs(req: CopyRequest): Promise<void> {
  const destIsDir = req.dest.endsWith('/') || (await isDirInRoot(req.destRoot, req.dest));
  if (req.multiple && !destIsDir) {
    throw new DockerfileError('When using COPY with more than one source file, the destination must be a directory and end with a /', req.site);
  }
  const createdOwner = req.owner === 'preserve' ? { uid: 0, gid: 0 } : req.owner;
  for (const rel of req.sources) {
    const srcHost = join(req.sourceRoot, rel);
    // A source naming a symlink arrives already resolved to its target when that stays inside the
    // source root (BuildKit's FollowSymlinks); one that would leave it arrives as the link itself.
    const st = await lstat(srcHost).catch((err: unknown) => {
      throw new DockerfileError(`failed to compute cache key: "/${rel}": not found`, req.site, { cause: err });
    });
    // A source still a symlink here leads out of its root or to nothing. BuildKit follows a named
    // source symlink (FollowSymlinks) and fails when the target is not there; docker never copies a
    // file from outside the context, and neither do we copy a dangling link in its place.
    if (st.isSymbolicLink()) {
      const target = await readlink(srcHost);
      throw new DockerfileError(`failed to compute cache key: "/${rel}": not found: it is a symlink to ${JSON.stringify(target)}, which leads outside the source or to nothing`, req.site);
    }
    if (st.isDirectory()) {
      // A directory source copies its contents; the destination takes the source directory's
      // metadata only when this copy creates it.
      const created = await mkdirAllInRoot(req.destRoot, req.dest, createdOwner);
      await copyTree(req, srcHost, rel, req.dest);
      if (created) await applyMeta(req, hostTarget(req.destRoot, req.dest), st, false);
      continue;
    }
    const target = destIsDir ? posix.join(req.dest, posix.basename(rel === '' ? '/' : rel)) : req.dest;
    await mkdirAllInRoot(req.destRoot, posix.dirname(target), createdOwner);
    await copyEntry(req, srcHost, st, target);
  }
}

async function isDirInRoot(root: string, abs: string): Promise<boolean> {
  const st = await lstat(join(root, resolveInRoot(root, abs.replace(/^\/+/, '')))).catch(() => undefined);
  return st?.isDirectory() ?? false;
}

/** Host path for an in-rootfs path: parents resolved inside the root, the last component not followed. */
function hostTarget(root: string, abs: string): string {
  const rel = abs.replace(/^\/+/, '').replace(/\/+$/, '');
  return rel === '' ? root : join(root, resolveParentInRoot(root, rel));
}

async function copyTree(req: CopyRequest, srcDir: string, relDir: string, destDir: string): Promise<void> {
  const entries = await readdir(srcDir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const ent of entries) {
    const rel = relDir === '' ? ent.name : `${relDir}/${ent.name}`;
    if (req.excluded(rel, ent.isDirectory())) continue;
    const src = join(srcDir, ent.name);
    // A directory .dockerignore excludes is entered only for `!` exceptions, and sent only when one
    // of them re-includes something below it (BuildKit's fsutil walker emits such parents lazily).
    if (ent.isDirectory() && req.excluded(rel, false) && !(await keepsSomething(req, src, rel))) continue;
    const st = await lstat(src);
    await copyEntry(req, src, st, posix.join(destDir, ent.name), rel);
  }
}

/** Whether anything below an excluded directory is re-included by a .dockerignore exception. */
async function keepsSomething(req: CopyRequest, srcDir: string, relDir: string): Promise<boolean> {
  for (const ent of await readdir(srcDir, { withFileTypes: true })) {
    const rel = `${relDir}/${ent.name}`;
    if (!req.excluded(rel, false)) return true;
    if (ent.isDirectory() && (await keepsSomething(req, join(srcDir, ent.name), rel))) return true;
  }
  return false;
}

async function copyEntry(req: CopyRequest, src: string, st: Stats, destAbs: string, rel?: string): Promise<void> {
  const host = hostTarget(req.destRoot, destAbs);
  const existing = await lstat(host).catch(() => undefined);
  if (st.isDirectory()) {
    if (existing !== undefined && !existing.isDirectory()) await rm(host, { force: true });
    if (existing === undefined || !existing.isDirectory()) await mkdir(host);
    await copyTree(req, src, rel ?? '', destAbs);
    await applyMeta(req, host, st, false);
    return;
  }
  if (existing?.isDirectory()) {
    throw new DockerfileError(`cannot copy a file onto the directory ${destAbs}`, req.site);
  }
  if (existing !== undefined) await rm(host, { force: true });
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), host);
    await applyMeta(req, host, st, true);
  } else if (st.isFile()) {
    await copyFile(src, host);
    await applyMeta(req, host, st, false);
  }
  // Sockets, FIFOs and devices in a context are not copied, as with docker.
}

async function applyMeta(req: CopyRequest, host: string, st: Stats, isLink: boolean): Promise<void> {
  const uid = req.owner === 'preserve' ? st.uid : req.owner.uid;
  const gid = req.owner === 'preserve' ? st.gid : req.owner.gid;
  await lchown(host, uid, gid);
  if (isLink) {
    await lutimes(host, st.atime, st.mtime);
    return;
  }
  // chown clears setuid/setgid, so the mode goes after it.
  await chmod(host, req.chmod ?? st.mode & 0o7777);
  await utimes(host, st.atime, st.mtime);
}
