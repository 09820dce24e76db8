// COPY/ADD sources inside the build context. Sources are Go-cleaned; an absolute source resolves
// inside the context (as docker: `/a` is `<context>/a`); a source that climbs out (`../x`) is refused.
// Wildcards are Go filepath.Match per path segment (`*` and `?` never cross `/`), matched entries
// come back in lexical order, and .dockerignore'd entries are dropped (a literal source that is
// ignored is "not found", as docker says).
//
// What a source may name is what docker sends of the context: BuildKit transfers the context with
// the .dockerignore patterns applied (fsutil's walker) and COPY matches its sources against what
// arrived. A directory the patterns exclude still arrives when a `!` exception re-includes something
// below it (`*` then `!dir/file` sends `dir` holding only `dir/file`), so such a directory is a source,
// named literally or matched by a wildcard (`present`).
//
// Symlinks (docker behaviour, and where we are stricter):
//   - symlinked *parent* directories of a source are followed within the context, like docker's
//     FollowSymlinkInScope / BuildKit's RootPath: an absolute target restarts at the context root
//     and `..` stops there, so nothing outside the context is ever read;
//   - a source that is itself a symlink is followed by BuildKit (scoped the same way). We follow it
//     only when its target stays inside the context (`followTo`); for a link whose target is
//     absolute or climbs above the context root there is no `followTo`, and the COPY fails as a
//     missing source (src/instructions/copy/copy-files.ts), where BuildKit would silently reinterpret
//     `/etc/x` as `<context>/etc/x`;
//   - symlinks below a copied directory are copied as symlinks (`walkContext` never follows them).
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ContextError } from '../errors.js';
import type { BuildContext } from './build-context.js';
import { cleanPath, goMatch, hasMeta } from './go-path.js';
import { resolveInContext } from './scoped-path.js';

export type ContextEntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface ContextEntry {
  /** Context-relative slash path (`.` for the context root), symlinked parents resolved. */
  readonly path: string;
  /** Absolute host path; always inside the context root. */
  readonly hostPath: string;
  readonly type: ContextEntryType;
  /** A symlink's target as stored. */
  readonly linkTarget?: string;
}

export interface ContextSource extends ContextEntry {
  /** The source as written in the Dockerfile. */
  readonly source: string;
  /** For a symlink source whose target stays inside the context: what it resolves to (copy that). */
  readonly followTo?: ContextEntry;
}

/** Cleans a source to a context-relative path, refusing one that leaves the context. */
export function contextRelativeSource(source: string): string {
  if (source === '') throw new ContextError('empty COPY/ADD source');
  const cleaned = cleanPath(source);
  if (cleaned.startsWith('/')) return cleanPath(cleaned.slice(1));
  if (cleaned === '..' || cleaned.startsWith('..')) {
    throw new ContextError(`forbidden path outside the build context: ${source}`);
  }
  return cleaned;
}

/** Expands COPY/ADD sources to the context entries they name, in Dockerfile then lexical order. */
export async function expandSources(ctx: BuildContext, sources: readonly string[]): Promise<ContextSource[]> {
  const out: ContextSource[] = [];
  for (const source of sources) {
    const rel = contextRelativeSource(source);
    if (!hasMeta(rel)) {
      const entry = await literalSource(ctx, source, rel);
      out.push(entry);
      continue;
    }
    const matches = await wildcardSources(ctx, source, rel);
    if (matches.length === 0) {
      throw new ContextError(`no source files were specified: ${source} matches nothing in the build context (or only files excluded by .dockerignore)`);
    }
    out.push(...matches);
  }
  return out;
}

async function literalSource(ctx: BuildContext, source: string, rel: string): Promise<ContextSource> {
  const notFound = (): ContextError =>
    new ContextError(`file not found in build context or excluded by .dockerignore: ${source}`);
  const scoped = await resolveInContext(ctx.root, rel, { followLast: false });
  if (!scoped.exists) throw notFound();
  if (rel !== '.' && (!(await present(ctx, rel, scoped.path)) || !(await present(ctx, scoped.path)))) throw notFound();
  return withFollow(ctx, source, await entryAt(ctx, scoped.path));
}

async function wildcardSources(ctx: BuildContext, source: string, rel: string): Promise<ContextSource[]> {
  const segments = rel.split('/');
  const firstMeta = segments.findIndex(hasMeta);
  const prefix = segments.slice(0, firstMeta).join('/');
  // Validate the whole pattern once so a malformed one fails even when nothing is there to match.
  for (const seg of segments.slice(firstMeta)) goMatch(seg, '');
  const base = await resolveInContext(ctx.root, prefix === '' ? '.' : prefix, { followLast: true });
  if (!base.exists) return [];
  const found: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const seg = segments[firstMeta + depth];
    if (seg === undefined) return;
    const last = firstMeta + depth === segments.length - 1;
    for (const d of await readDirSorted(join(ctx.root, dir))) {
      const matched = hasMeta(seg) ? goMatch(seg, d.name) : seg === d.name;
      if (!matched) continue;
      const child = dir === '.' ? d.name : `${dir}/${d.name}`;
      if (last) found.push(child);
      else if (d.isDirectory()) await walk(child, depth + 1);
    }
  };
  await walk(base.path, 0);
  const out: ContextSource[] = [];
  for (const path of found) {
    if (!(await present(ctx, path))) continue;
    out.push(await withFollow(ctx, source, await entryAt(ctx, path)));
  }
  return out;
}

/**
 * Whether context-relative `path` is part of the context docker sends (see the head comment): not
 * .dockerignore'd, or a directory holding something an exception re-includes. `hostRel` is where
 * the path lies on disk when symlinked parents make it differ (the directory walked for exceptions).
 */
async function present(ctx: BuildContext, path: string, hostRel = path): Promise<boolean> {
  if (!ctx.ignore.matches(path)) return true;
  if (!ctx.ignore.hasExceptions) return false;
  const st = await lstat(hostRel === '.' ? ctx.root : join(ctx.root, hostRel)).catch(() => undefined);
  return st?.isDirectory() === true && (await reincludes(ctx, hostRel, path));
}

/** Whether an exception re-includes anything below the directory at `hostRel`, matched as `path/...`. */
async function reincludes(ctx: BuildContext, hostRel: string, path: string): Promise<boolean> {
  for (const d of await readDirSorted(join(ctx.root, hostRel))) {
    const child = `${path}/${d.name}`;
    if (!ctx.ignore.matches(child)) return true;
    if (d.isDirectory() && (await reincludes(ctx, `${hostRel}/${d.name}`, child))) return true;
  }
  return false;
}

async function withFollow(ctx: BuildContext, source: string, entry: ContextEntry): Promise<ContextSource> {
  if (entry.type !== 'symlink') return { ...entry, source };
  const target = await resolveInContext(ctx.root, entry.path, { followLast: true });
  if (target.escaped || !target.exists || !(await present(ctx, target.path))) return { ...entry, source };
  return { ...entry, source, followTo: await entryAt(ctx, target.path) };
}

/**
 * Every entry below a context directory (not the directory itself), parents before children, in
 * lexical order, without following symlinks and without .dockerignore'd entries. An excluded
 * directory is still entered when the ignore file has `!` exceptions that may re-include files in it.
 */
export async function* walkContext(ctx: BuildContext, relDir: string): AsyncGenerator<ContextEntry> {
  const start = cleanPath(relDir);
  const visit = async function* (dir: string): AsyncGenerator<ContextEntry> {
    for (const d of await readDirSorted(join(ctx.root, dir))) {
      const path = dir === '.' ? d.name : `${dir}/${d.name}`;
      const ignored = ctx.ignore.matches(path);
      if (!ignored) yield await entryAt(ctx, path);
      if (d.isDirectory() && (!ignored || ctx.ignore.hasExceptions)) yield* visit(path);
    }
  };
  yield* visit(start);
}

async function readDirSorted(dir: string): Promise<Dirent[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    // Go's filepath.Walk order: byte-wise by name.
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } catch (err) {
    throw new ContextError(`reading ${dir}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function entryAt(ctx: BuildContext, path: string): Promise<ContextEntry> {
  const hostPath = path === '.' ? ctx.root : join(ctx.root, path);
  let st: Stats;
  try {
    st = await lstat(hostPath);
  } catch (err) {
    throw new ContextError(`stat ${path} in the build context: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (st.isSymbolicLink()) return { path, hostPath, type: 'symlink', linkTarget: await readlink(hostPath) };
  return { path, hostPath, type: st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other' };
}
