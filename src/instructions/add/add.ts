// ADD: COPY plus local tar archives extracted into the destination (add-archive.ts), http(s) URLs
// downloaded (add-remote.ts) and git repositories cloned (add-git.ts), after the Dockerfile reference's
// "ADD" and BuildKit's dispatchCopy with AttemptUnpack. Heredoc sources are written as files, as with
// COPY.
import { lstat, mkdir, mkdtemp, rename, rm, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { AddInstruction } from '../../dockerfile/instructions.js';
import { DockerfileError } from '../../errors.js';
import { hostPathInRoot, mkdirAllInRoot, type Owner } from '../../rootfs/in-root.js';
import { detectArchive, extractArchive } from './add-archive.js';
import { fetchGitSource, parseGitChecksum, parseGitSource, type GitSource } from './add-git.js';
import { download, parseChecksum } from './add-remote.js';
import { copyIntoRootfs, parseChmod } from '../copy/copy-files.js';
import { dropExcludedMatches, excludeMatcher } from '../copy/copy-select.js';
import { planCopy } from '../copy/copy-plan.js';
import { expand } from '../expand-in-stage.js';
import { FS_CHANGED, fsPaths, type Handler, type NamedSource } from '../handler.js';
import { resolveChown } from '../identity.js';

const HTTP = /^https?:\/\//i;

export const add: Handler<AddInstruction> = async (instr, state, e) => {
  const paths = instr.sources.flatMap((s) => (s.kind === 'path' ? [expand(s.path, state, e)] : []));
  const heredocCount = instr.sources.length - paths.length;
  const gits: Array<{ raw: string; source: GitSource }> = [];
  const others: string[] = [];
  for (const p of paths) {
    const g = parseGitSource(p, e.site);
    if (g !== undefined) gits.push({ raw: p, source: g });
    else others.push(p);
  }
  const urls = others.filter((p) => HTTP.test(p));
  const locals = others.filter((p) => !HTTP.test(p));
  const rawChecksum = instr.checksum === undefined ? undefined : expand(instr.checksum, state, e);
  // BuildKit: "checksum can't be specified for non-HTTP(S) sources"; one for a git source is a commit.
  if (rawChecksum !== undefined && (locals.length > 0 || heredocCount > 0)) {
    throw new DockerfileError("checksum can't be specified for non-HTTP(S) sources", e.site);
  }
  if (rawChecksum !== undefined && gits.length > 0 && paths.length > 1) {
    throw new DockerfileError("checksum can't be specified for multiple sources", e.site);
  }
  const checksum = rawChecksum === undefined || gits.length > 0 ? undefined : parseChecksum(rawChecksum, e.site);
  const gitChecksum = rawChecksum === undefined || gits.length === 0 ? undefined : parseGitChecksum(rawChecksum, e.site);

  const rawDest = expand(instr.dest, state, e);
  if (rawDest === '') throw new DockerfileError('ADD requires a destination', e.site);
  const trailing = rawDest.endsWith('/') || rawDest.endsWith('/.') || rawDest === '.';
  const dest = posix.resolve(state.config.WorkingDir || '/', rawDest);
  const root = await e.rootfs();
  const owner: Owner | undefined = instr.chown === undefined ? undefined : await resolveChown(root, expand(instr.chown, state, e)).catch((err: unknown) => {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  });
  const chmodValue = instr.chmod === undefined ? undefined : parseChmod(expand(instr.chmod, state, e), e.site);
  // --exclude: below local directories and git trees, and on wildcard matches; never inside an archive
  // (BuildKit unpacks before its copier filters) nor on a URL's single file.
  const exclude = excludeMatcher(instr, state, e);

  // Which local sources are archives: by content, whatever their names.
  const archives: Array<{ rel: string; compression: Awaited<ReturnType<typeof detectArchive>> }> = [];
  const plainLocals: NamedSource[] = [];
  let localCount = 0;
  for (const p of locals) {
    for (const found of dropExcludedMatches(p, await e.context.resolveNamedSources(p, e.site), exclude)) {
      localCount++;
      const rel = found.path;
      const host = rel === '' ? e.context.dir : join(e.context.dir, rel);
      const st = await lstat(host);
      const compression = await detectArchive(host, st, e.site);
      if (compression !== undefined) archives.push({ rel, compression });
      else plainLocals.push(found);
    }
  }
  // Counted as found (wildcards expanded, .dockerignore and --exclude applied), as docker counts them:
  // one match of a wildcard copies to a file destination.
  const total = localCount + urls.length + gits.length + heredocCount;
  const destIsDir = trailing || (await lstat(hostPathInRoot(root, dest)).catch(() => undefined))?.isDirectory() === true;
  if (total > 1 && !destIsDir && archives.length !== total) {
    throw new DockerfileError('When using ADD with more than one source file, the destination must be a directory and end with a /', e.site);
  }
  const destForCopy = trailing || total > 1 ? `${dest.replace(/\/+$/, '')}/` : dest;
  const shown: string[] = [];

  // Plain files and heredocs copy as COPY does.
  if (plainLocals.length > 0 || heredocCount > 0) {
    // Already matched: handed over as sources, never matched again as patterns.
    const plan = await planCopy({ ...instr, dest: destForCopy === dest ? instr.dest : destForCopy }, state, e, plainLocals);
    try {
      for (const req of plan.requests) await copyIntoRootfs(req);
    } finally {
      await plan.cleanup();
    }
    shown.push(...plainLocals.map((s) => s.path), ...instr.sources.flatMap((s) => (s.kind === 'heredoc' ? [`<<${s.heredoc.name}`] : [])));
  }

  // Archives: extracted into the destination, always taken as a directory.
  for (const a of archives) {
    const created = await mkdirAllInRoot(root, dest, owner);
    if (created) e.ctx.log.debug({ dest }, 'created ADD destination directory');
    await extractArchive({
      file: join(e.context.dir, a.rel),
      compression: a.compression ?? 'none',
      destRoot: root,
      destDir: dest,
      owner,
      ignore: e.ignore,
      ctx: e.ctx,
      site: e.site,
    });
    shown.push(a.rel);
  }

  // URLs: downloaded, never extracted.
  for (const url of urls) {
    await mkdir(e.runMounts.scratchDir, { recursive: true, mode: 0o755 });
    const dir = await mkdtemp(join(e.runMounts.scratchDir, 'add-'));
    try {
      const got = await download(url, dir, checksum, e.ctx, e.site);
      const named = join(dir, got.name);
      await rename(got.file, named);
      if (got.mtime !== undefined) await utimes(named, got.mtime, got.mtime);
      await copyIntoRootfs({
        sourceRoot: dir,
        sources: [got.name],
        multiple: total > 1,
        destRoot: root,
        dest: destForCopy,
        owner: owner ?? { uid: 0, gid: 0 },
        chmod: chmodValue,
        excluded: () => false,
        site: e.site,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    shown.push(url);
  }

  // Git repositories: the tree at the ref (or its subdir) copied as a directory's contents.
  for (const { raw, source } of gits) {
    if (source.keepGitDir !== undefined && instr.keepGitDir && !source.keepGitDir) {
      throw new DockerfileError('inconsistent keep-git-dir configuration', e.site);
    }
    const wanted = source.checksum === undefined ? gitChecksum : parseGitChecksum(source.checksum, e.site);
    if (gitChecksum !== undefined && wanted !== gitChecksum) {
      throw new DockerfileError(`checksum mismatch ${JSON.stringify(gitChecksum)} != ${JSON.stringify(wanted)}`, e.site);
    }
    await mkdir(e.runMounts.scratchDir, { recursive: true, mode: 0o755 });
    const dir = await mkdtemp(join(e.runMounts.scratchDir, 'add-git-'));
    try {
      const tree = await fetchGitSource(source, {
        into: dir,
        checksum: wanted,
        keepGitDir: instr.keepGitDir || source.keepGitDir === true,
        secrets: e.runMounts.secrets,
        mask: e.runMounts.mask,
        hostEnv: e.hostEnv,
        ctx: e.ctx,
        site: e.site,
      });
      await copyIntoRootfs({
        sourceRoot: tree,
        sources: [''],
        multiple: total > 1,
        destRoot: root,
        dest: destForCopy,
        owner: owner ?? { uid: 0, gid: 0 },
        chmod: chmodValue,
        excluded: () => false,
        ...(exclude === undefined ? {} : { exclude }),
        site: e.site,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // As written, but never with credentials from the URL's user info.
    shown.push(raw.replace(/^([a-zA-Z0-9]+:\/\/)[^/@]*@/, '$1'));
  }

  const flags = [instr.chown ? `--chown=${instr.chown}` : '', instr.chmod ? `--chmod=${instr.chmod}` : '', instr.checksum ? `--checksum=${instr.checksum}` : '']
    .filter(Boolean)
    .join(' ');
  return { state, createdBy: `ADD ${flags ? `${flags} ` : ''}${shown.join(' ')} ${destForCopy}`,
    // An archive may hold symlinks that later entries are written through: only a walk sees where.
    fs: archives.length > 0 ? FS_CHANGED : fsPaths([destForCopy]),
  };
};
