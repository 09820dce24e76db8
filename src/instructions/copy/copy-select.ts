// Which files a COPY/ADD reads, after BuildKit's dockerfile2llb dispatchCopy and fsutil's copier:
//
// `--exclude=<pattern>` (repeatable, .dockerignore syntax: Go filepath.Match per segment, `**`, `!`
// exceptions) is matched against paths relative to each source, the way fsutil matches a copy's
// ExcludePatterns against the path below the source it copies (`COPY --exclude=*.1 dir1 .` leaves out
// `dir1/a.1`, not `dir1/sub/a.1`). A source named literally is never excluded itself (fsutil never
// matches the source root); a wildcard match is left out when its path below the wildcard's literal
// prefix matches, as the Dockerfile reference documents (`COPY --exclude=*.txt hom* /mydir/`).
//
// `COPY --parents` (BuildKit copies from the pivot with an include pattern): each source is split at its
// first `/./` into a pivot directory (the context or `--from` root without one) and a pattern below it;
// every entry below the pivot that the pattern matches (`*`/`?` stay within a segment, `**` spans any
// number) is copied to `<dest>/<its path below the pivot>`, a matched directory with all it holds. A
// literal pattern must exist; a wildcard that matches nothing copies nothing, as BuildKit's
// AllowEmptyWildcard. `--exclude` paths are then relative to the pivot.
import { readdirSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IgnoreMatcher } from '../../context/dockerignore.js';
import { cleanPath, goMatch, hasMeta } from '../../context/go-path.js';
import type { AddInstruction, CopyInstruction } from '../../dockerfile/instructions.js';
import { DockerfileError, KilnError } from '../../errors.js';
import { cleanEntryName, resolveInRoot, resolveParentInRoot } from '../../rootfs/root-path.js';
import { expand } from '../expand-in-stage.js';
import type { InstructionEnv, InstructionSite, NamedSource } from '../handler.js';
import type { StageState } from '../stage-state.js';

export interface SelectedSources {
  /** Host directory the sources are relative to: the context, or the `--from` stage's or image's rootfs. */
  readonly sourceRoot: string;
  /** Root-relative sources (`''` is the root itself), in Dockerfile then lexical order. */
  readonly sources: readonly string[];
  /**
   * Per source, the root-relative path it was named by (a symlink source's own path, where `sources`
   * holds its target): a file source is copied under that path's last component. Absent: `sources`.
   */
  readonly named?: readonly string[];
  /** With `--parents`: each source's path below its pivot, which is where it goes below the destination. */
  readonly parents?: readonly string[];
  /** The `--exclude` patterns, or undefined without any. */
  readonly exclude?: IgnoreMatcher;
}

/** The instruction's `--exclude` patterns, variables expanded, compiled; undefined when there are none. */
export function excludeMatcher(instr: CopyInstruction | AddInstruction, state: StageState, e: InstructionEnv): IgnoreMatcher | undefined {
  if (instr.exclude.length === 0) return undefined;
  const patterns = instr.exclude.map((p) => expand(p, state, e));
  try {
    return new IgnoreMatcher(patterns, '--exclude');
  } catch (err) {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  }
}

/**
 * Drops the matches of a wildcard source that `exclude` leaves out, each matched by the path it was
 * found at below the pattern's literal prefix (`src/*.txt` matching `src/a.txt` is matched as `a.txt`;
 * a matched symlink by its own name, not its target's). A literal source comes back as it is.
 */
export function dropExcludedMatches(pattern: string, matches: readonly NamedSource[], exclude: IgnoreMatcher | undefined): NamedSource[] {
  const cleaned = cleanPath(pattern).replace(/^\/+/, '');
  if (exclude === undefined || !hasMeta(cleaned)) return [...matches];
  const segments = cleaned.split('/');
  const prefix = segments.slice(0, segments.findIndex(hasMeta)).join('/');
  return matches.filter((m) => {
    const at = m.named;
    const rel = prefix === '' ? at : at.startsWith(`${prefix}/`) ? at.slice(prefix.length + 1) : at;
    return !exclude.matches(rel);
  });
}

/** `--parents` source text split at its first `/./`: the pivot (`''` for the root) and the pattern below it. */
export function splitPivot(source: string): { pivot: string; pattern: string } {
  const at = source.indexOf('/./');
  const pivot = at < 0 ? '' : source.slice(0, at);
  const rest = at < 0 ? source : source.slice(at + 3);
  // As BuildKit normalizes the pattern against `/`: it never climbs out of the pivot.
  const pattern = cleanPath(`/${rest}`).slice(1);
  return { pivot, pattern };
}

/** Where a `--parents` walk reads: the source root, what to skip there, and how to report. */
export interface ParentsRoot {
  readonly root: string;
  /** Root-relative path of the pivot, already resolved (symlinks followed inside the root). */
  readonly pivot: string;
  /** Whether a root-relative entry is left out before --exclude (.dockerignore; nothing for --from). */
  readonly ignored: (rel: string, isDir: boolean) => boolean;
  readonly exclude: IgnoreMatcher | undefined;
  readonly site: InstructionSite;
  /** The source as written, for messages. */
  readonly shown: string;
}

/**
 * The entries one `--parents` pattern selects below the pivot: `{ rel, keep }` pairs, `rel` root-relative,
 * `keep` relative to the pivot. Entries are not followed when they are symlinks; a matched directory is
 * not searched further (it is copied whole).
 */
export async function parentsMatches(pattern: string, at: ParentsRoot): Promise<Array<{ rel: string; keep: string }>> {
  const join2 = (a: string, b: string): string => (a === '' ? b : b === '' ? a : `${a}/${b}`);
  const excluded = (keep: string, isDir: boolean): boolean =>
    at.exclude !== undefined && at.exclude.matches(keep) && !(isDir && at.exclude.hasExceptions);
  if (pattern === '' || pattern === '.') {
    // `x/./` alone: the pivot's contents, as a directory source.
    return [{ rel: at.pivot, keep: '' }];
  }
  if (!hasMeta(pattern)) {
    const rel = join2(at.pivot, pattern);
    const st = await lstat(join(at.root, rel)).catch(() => undefined);
    const above = leftOutAbove(at, pattern);
    if (st === undefined || notSent(at, rel, st.isDirectory()) || above === 'ignored') {
      throw new DockerfileError(`failed to compute cache key: "/${rel}": not found`, at.site);
    }
    return above === 'excluded' || excluded(pattern, st.isDirectory()) ? [] : [{ rel, keep: pattern }];
  }
  let matcher: IgnoreMatcher;
  try {
    matcher = new IgnoreMatcher([pattern], 'COPY --parents');
  } catch (err) {
    throw new DockerfileError(`bad source pattern ${JSON.stringify(at.shown)}: ${(err as Error).message}`, at.site, { cause: err });
  }
  const segments = pattern.split('/');
  const firstMeta = segments.findIndex(hasMeta);
  const prefix = segments.slice(0, firstMeta).join('/');
  const maxDepth = segments.includes('**') || segments.some((s) => s.includes('**')) ? Number.POSITIVE_INFINITY : segments.length;
  const start = await lstat(join(at.root, join2(at.pivot, prefix))).catch(() => undefined);
  if (start?.isDirectory() !== true || leftOutAbove(at, `${prefix}/-`) !== undefined) return [];
  const out: Array<{ rel: string; keep: string }> = [];
  const walk = async (keepDir: string, depth: number): Promise<void> => {
    const names = (await readdir(join(at.root, join2(at.pivot, keepDir)), { withFileTypes: true })).map((d) => ({ name: d.name, isDir: d.isDirectory() }));
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const { name, isDir } of names) {
      const keep = join2(keepDir, name);
      const rel = join2(at.pivot, keep);
      if (at.ignored(rel, isDir) || excluded(keep, isDir)) continue;
      if (matcher.matches(keep)) {
        if (!notSent(at, rel, isDir)) out.push({ rel, keep });
      }
      else if (isDir && depth + 1 < maxDepth) await walk(keep, depth + 1);
    }
  };
  await walk(prefix, prefix === '' ? 0 : prefix.split('/').length);
  return out;
}

/**
 * Whether a root-relative entry is not in the context docker sends: .dockerignore'd, and for a directory
 * that `!` exceptions let through, nothing below it re-included (BuildKit's walker sends an excluded
 * directory only with something re-included in it).
 */
function notSent(at: ParentsRoot, rel: string, isDir: boolean): boolean {
  if (at.ignored(rel, isDir)) return true;
  if (!isDir || !at.ignored(rel, false)) return false;
  const below = (dir: string): boolean => {
    for (const d of readdirSync(join(at.root, dir), { withFileTypes: true })) {
      const child = `${dir}/${d.name}`;
      if (!at.ignored(child, false)) return true;
      if (d.isDirectory() && below(child)) return true;
    }
    return false;
  };
  return !below(rel);
}

/** Whether a directory between the pivot and `keep` (`keep` itself not included) is .dockerignore'd or --exclude'd. */
function leftOutAbove(at: ParentsRoot, keep: string): 'ignored' | 'excluded' | undefined {
  const parts = keep.split('/');
  for (let i = 1; i < parts.length; i++) {
    const dir = parts.slice(0, i).join('/');
    if (dir === '') continue;
    const rel = at.pivot === '' ? dir : `${at.pivot}/${dir}`;
    if (at.ignored(rel, true)) return 'ignored';
    if (at.exclude !== undefined && at.exclude.matches(dir) && !at.exclude.hasExceptions) return 'excluded';
  }
  return undefined;
}

/**
 * The sources of a COPY/ADD's path operands (already expanded), `--from`, `--parents` and `--exclude`
 * applied: what the copy reads and what the layer cache hashes.
 */
export async function selectSources(
  instr: CopyInstruction | AddInstruction,
  patterns: readonly string[],
  exclude: IgnoreMatcher | undefined,
  e: InstructionEnv,
): Promise<SelectedSources> {
  const from = instr.kind === 'copy' ? instr.from : undefined;
  const parents = instr.kind === 'copy' && instr.parents;
  const sourceRoot = from === undefined ? e.context.dir : await e.fromRootfs(from);
  const withExclude = exclude === undefined ? {} : { exclude };
  if (!parents) {
    const found: NamedSource[] = [];
    for (const p of patterns) {
      const matches = from === undefined ? await e.context.resolveNamedSources(p, e.site) : await fromSources(sourceRoot, p, from, e);
      found.push(...dropExcludedMatches(p, matches, exclude));
    }
    return { sourceRoot, sources: found.map((f) => f.path), named: found.map((f) => f.named), ...withExclude };
  }
  const sources: string[] = [];
  const keeps: string[] = [];
  for (const p of patterns) {
    const { pivot, pattern } = splitPivot(p);
    const pivotRel = await resolvePivot(pivot, sourceRoot, from, e);
    const found = await parentsMatches(pattern, {
      root: sourceRoot,
      pivot: pivotRel,
      ignored: from === undefined ? (rel, isDir) => e.context.isExcluded(rel, isDir) : () => false,
      exclude,
      site: e.site,
      shown: p,
    });
    for (const f of found) {
      sources.push(f.rel);
      keeps.push(f.keep);
    }
  }
  return { sourceRoot, sources, parents: keeps, ...withExclude };
}

/** The pivot of a `--parents` source, resolved inside its root; it must be there. */
async function resolvePivot(pivot: string, root: string, from: string | undefined, e: InstructionEnv): Promise<string> {
  if (pivot === '' || cleanPath(pivot) === '/' || cleanPath(pivot) === '.') return '';
  if (hasMeta(pivot)) throw new DockerfileError(`COPY --parents: wildcards before the /./ pivot are not supported: ${pivot}`, e.site);
  let rel: string;
  if (from === undefined) {
    try {
      const found = await e.context.resolveSource(pivot, e.site);
      rel = found[0] ?? '';
    } catch (err) {
      if (err instanceof KilnError) throw err;
      throw new DockerfileError((err as Error).message, e.site, { cause: err });
    }
  } else {
    const cleaned = cleanEntryName(pivot);
    if (cleaned === null) throw new DockerfileError(`COPY --from=${from} source ${JSON.stringify(pivot)} is outside the stage's root`, e.site);
    rel = resolveInRoot(root, cleaned);
  }
  const st = await lstat(rel === '' ? root : join(root, rel)).catch(() => undefined);
  if (st?.isDirectory() !== true) throw new DockerfileError(`failed to compute cache key: "/${rel}": not found or not a directory (the /./ pivot of COPY --parents)`, e.site);
  return rel;
}

/**
 * A `--from` source inside another stage's or image's rootfs: symlinks resolved inside that root, a
 * path climbing out of it refused, wildcards matched per path segment with Go's filepath.Match as
 * BuildKit does (matches in lexical order; none is an error). Each comes back with the path it was
 * named by (its last component not followed), the name a file source is copied as.
 */
export async function fromSources(root: string, pattern: string, from: string, e: InstructionEnv): Promise<NamedSource[]> {
  const cleaned = cleanEntryName(pattern);
  if (cleaned === null) throw new DockerfileError(`COPY --from=${from} source ${JSON.stringify(pattern)} is outside the stage's root`, e.site);
  if (!/[*?[]/.test(cleaned)) return [{ path: resolveInRoot(root, cleaned), named: resolveParentInRoot(root, cleaned) }];
  const segments = cleaned.split('/');
  let found = [''];
  for (const seg of segments) {
    const next: string[] = [];
    for (const dir of found) {
      if (!hasMeta(seg)) {
        next.push(dir === '' ? seg : `${dir}/${seg}`);
        continue;
      }
      const hostDir = join(root, resolveInRoot(root, dir));
      const names = await readdir(hostDir).catch(() => [] as string[]);
      names.sort();
      for (const n of names) {
        let ok: boolean;
        try {
          ok = goMatch(seg, n);
        } catch (err) {
          throw new DockerfileError(`bad pattern ${JSON.stringify(pattern)}: ${(err as Error).message}`, e.site, { cause: err });
        }
        if (ok) next.push(dir === '' ? n : `${dir}/${n}`);
      }
    }
    found = next;
  }
  const resolved: NamedSource[] = [];
  for (const p of found) {
    const r = resolveInRoot(root, p);
    if ((await lstat(join(root, r)).catch(() => undefined)) !== undefined) resolved.push({ path: r, named: resolveParentInRoot(root, p) });
  }
  if (resolved.length === 0) throw new DockerfileError(`no source files were specified: ${pattern} matches nothing in --from=${from}`, e.site);
  return resolved;
}
