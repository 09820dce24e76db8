// Turns COPY/ADD operands into CopyRequests: variable expansion, destination relative to WORKDIR,
// sources from the context, from another stage or image (`--from`, wildcards included), or inline
// heredoc files; ownership and mode flags.
import { chmod, lstat, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { AddInstruction, CopyInstruction } from '../../dockerfile/instructions.js';
import { DockerfileError } from '../../errors.js';
import { parseChmod, type CopyRequest } from './copy-files.js';
import { excludeMatcher, selectSources, type SelectedSources } from './copy-select.js';
import { expand } from '../expand-in-stage.js';
import type { InstructionEnv, NamedSource } from '../handler.js';
import { expandHeredocBody } from './heredoc-expand.js';
import { resolveChown } from '../identity.js';
import { expansionLookup, type StageState } from '../stage-state.js';

export interface CopyPlan {
  /** Path sources (one request), then heredoc files (another), in that order. */
  readonly requests: readonly CopyRequest[];
  /** The history entry's created_by. */
  readonly createdBy: string;
  /**
   * The paths the layer takes from: the destination, or, for one file copied into a deferred stage's
   * delta root, its parent directory (a delta snapshot holds only what lies strictly inside them).
   */
  readonly changed: readonly string[];
  /** Removes the temporary heredoc files. */
  cleanup(): Promise<void>;
}

/** Where the heredoc files of one instruction are written before they are copied. */
async function writeHeredocFiles(instr: CopyInstruction | AddInstruction, state: StageState, e: InstructionEnv): Promise<{ dir: string; names: string[] } | undefined> {
  const docs = instr.sources.flatMap((s) => (s.kind === 'heredoc' ? [s.heredoc] : []));
  if (docs.length === 0) return undefined;
  // The build's work dir, never the rootfs: in container mode that is /kaniko, ignored by snapshots.
  await mkdir(e.runMounts.scratchDir, { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(e.runMounts.scratchDir, 'heredoc-'));
  const names: string[] = [];
  for (const h of docs) {
    // BuildKit: llb.Mkfile(name, 0644, content); the name is the delimiter, a file name of its own.
    const name = posix.basename(h.name);
    if (name === '' || name === '.' || name === '..') throw new DockerfileError(`invalid heredoc name ${JSON.stringify(h.name)}`, e.site);
    const content = h.expand ? expandHeredocBody(h.content, expansionLookup(state), state.escape, e.site) : h.content;
    await writeFile(join(dir, name), content);
    await chmod(join(dir, name), 0o644);
    names.push(name);
  }
  return { dir, names };
}

/**
 * `preselected`: context sources ADD has already resolved (its plain files, archives set aside), copied
 * as they are: never matched again as patterns (a file named `arr[0].txt` is no wildcard).
 */
export async function planCopy(instr: CopyInstruction | AddInstruction, state: StageState, e: InstructionEnv, preselected?: readonly NamedSource[]): Promise<CopyPlan> {
  const rawDest = expand(instr.dest, state, e);
  const kind = instr.kind.toUpperCase();
  if (rawDest === '') throw new DockerfileError(`${kind} requires a destination`, e.site);
  const trailing = rawDest.endsWith('/') || rawDest.endsWith('/.') || rawDest === '.';
  let dest = posix.resolve(state.config.WorkingDir || '/', rawDest);
  if (trailing && !dest.endsWith('/')) dest += '/';
  const from = instr.kind === 'copy' ? instr.from : undefined;
  const parents = instr.kind === 'copy' && instr.parents;
  // With --parents the destination is always a directory (BuildKit copies the pivot's contents into it).
  if (parents && !dest.endsWith('/')) dest += '/';
  const patterns = preselected?.map((s) => s.named) ?? instr.sources.flatMap((s) => (s.kind === 'path' ? [expand(s.path, state, e)] : []));
  const heredocCount = instr.sources.filter((s) => s.kind === 'heredoc').length;
  const exclude = excludeMatcher(instr, state, e);

  const selected: SelectedSources = preselected !== undefined
    ? { sourceRoot: e.context.dir, sources: preselected.map((s) => s.path), named: preselected.map((s) => s.named), ...(exclude === undefined ? {} : { exclude }) }
    : await selectSources(instr, patterns, exclude, e);
  const { sourceRoot, sources } = selected;
  const how = await deferral(instr, trailing || parents, sourceRoot, sources, heredocCount);
  const fileDelta = how === 'file' ? await e.deltaRootForFile(dest) : undefined;
  const destRoot = (how === 'dirs' ? await e.deltaRootfs() : fileDelta) ?? (await e.rootfs());
  const owner = instr.chown !== undefined ? await resolveChown(destRoot, expand(instr.chown, state, e)).catch((err: unknown) => {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  }) : from === undefined ? { uid: 0, gid: 0 } : 'preserve' as const;
  const chmodValue = instr.chmod === undefined ? undefined : parseChmod(expand(instr.chmod, state, e), e.site);
  // Sources are counted as found (wildcards expanded, .dockerignore and --exclude applied), as docker
  // counts them: a wildcard with one match copies it to a file destination (`COPY fo? /foo2`).
  const multiple = sources.length + heredocCount > 1;

  const requests: CopyRequest[] = [];
  if (patterns.length > 0) {
    requests.push({
      sourceRoot,
      sources,
      ...(selected.named === undefined ? {} : { named: selected.named }),
      multiple,
      destRoot,
      dest,
      owner,
      chmod: chmodValue,
      excluded: from === undefined ? (rel, isDir) => e.context.isExcluded(rel, isDir) : () => false,
      ...(selected.exclude === undefined ? {} : { exclude: selected.exclude }),
      ...(selected.parents === undefined ? {} : { parents: selected.parents }),
      site: e.site,
    });
  }
  const heredocs = await writeHeredocFiles(instr, state, e);
  if (heredocs !== undefined) {
    requests.push({
      sourceRoot: heredocs.dir,
      sources: heredocs.names,
      multiple,
      destRoot,
      dest,
      owner: owner === 'preserve' ? { uid: 0, gid: 0 } : owner,
      chmod: chmodValue,
      excluded: () => false,
      site: e.site,
    });
  }
  const shown = [...sources.map((s) => s || '.'), ...(heredocs?.names.map((n) => `<<${n}`) ?? [])];
  const flags = [from !== undefined ? `--from=${from}` : '', parents ? '--parents' : '', instr.chown ? `--chown=${instr.chown}` : '', instr.chmod ? `--chmod=${instr.chmod}` : '']
    .filter(Boolean)
    .join(' ');
  return {
    requests,
    changed: fileDelta !== undefined ? [posix.dirname(dest)] : [...new Set(requests.map((r) => r.dest))],
    createdBy: `${kind} ${flags ? `${flags} ` : ''}${shown.join(' ')} ${dest}`,
    cleanup: async () => {
      if (heredocs !== undefined) await rm(heredocs.dir, { recursive: true, force: true });
    },
  };
}

/**
 * How a COPY may go into a deferred stage's delta root. No --chown either way (names need the base's
 * /etc/passwd; created directories would get the owner).
 * - `dirs`: it writes the same layer whatever the base holds, its destination being a directory
 *   whatever the base holds: written as one (`/app/`, `.`), or a single directory source (its contents
 *   go into the destination, made if missing).
 * - `file`: one regular file to a file destination (`COPY --from=build /out/app /usr/local/bin/app`,
 *   the usual last stage). docker puts it at `/opt/app/<name>` when the base has a directory `/opt/app`,
 *   so the stage asks the base's layer headers first (InstructionEnv.deltaRootForFile).
 */
async function deferral(instr: CopyInstruction | AddInstruction, trailing: boolean, sourceRoot: string, sources: readonly string[], heredocs: number): Promise<'dirs' | 'file' | undefined> {
  if (instr.kind !== 'copy' || instr.chown !== undefined) return undefined;
  if (trailing) return 'dirs';
  if (heredocs > 0 || sources.length !== 1) return undefined;
  const st = await lstat(join(sourceRoot, sources[0] ?? '')).catch(() => undefined);
  return st?.isDirectory() === true ? 'dirs' : st?.isFile() === true ? 'file' : undefined;
}
