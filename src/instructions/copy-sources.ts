// Turns COPY/ADD operands into a CopyRequest: variable expansion, destination relative to WORKDIR,
// sources from the context or from another stage, ownership and mode flags.
import { posix } from 'node:path';
import type { AddInstruction, CopyInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { resolveInRoot } from '../rootfs/root-path.js';
import { parseChmod, type CopyRequest } from './copy-files.js';
import { expand } from './expand-in-stage.js';
import type { InstructionEnv } from './handler.js';
import { resolveChown } from './identity.js';
import type { StageState } from './stage-state.js';

const GLOB = /[*?[]/;

export async function planCopy(instr: CopyInstruction | AddInstruction, state: StageState, e: InstructionEnv): Promise<CopyRequest> {
  const rawDest = expand(instr.dest, state, e);
  if (rawDest === '') throw new DockerfileError(`${instr.kind.toUpperCase()} requires a destination`, e.site);
  const trailing = rawDest.endsWith('/') || rawDest.endsWith('/.') || rawDest === '.';
  let dest = posix.resolve(state.config.WorkingDir || '/', rawDest);
  if (trailing && !dest.endsWith('/')) dest += '/';
  const destRoot = await e.rootfs();
  const from = instr.kind === 'copy' ? instr.from : undefined;
  const patterns: string[] = [];
  for (const src of instr.sources) {
    if (src.kind === 'heredoc') throw new DockerfileError('COPY/ADD of heredocs is not supported yet', e.site);
    patterns.push(expand(src.path, state, e));
  }
  let sourceRoot: string;
  const sources: string[] = [];
  if (from === undefined) {
    sourceRoot = e.context.dir;
    for (const p of patterns) sources.push(...(await e.context.resolveSource(p, e.site)));
  } else {
    sourceRoot = await e.fromRootfs(from);
    for (const p of patterns) {
      if (GLOB.test(p)) throw new DockerfileError('wildcards in COPY --from sources are not supported yet', e.site);
      sources.push(resolveInRoot(sourceRoot, p.replace(/^\/+/, '')));
    }
  }
  const owner = instr.chown !== undefined ? await resolveChown(destRoot, expand(instr.chown, state, e)).catch((err: unknown) => {
    throw new DockerfileError((err as Error).message, e.site, { cause: err });
  }) : from === undefined ? { uid: 0, gid: 0 } : 'preserve' as const;
  return {
    sourceRoot,
    sources,
    multiple: patterns.length > 1 || sources.length > 1 || patterns.some((p) => GLOB.test(p)),
    destRoot,
    dest,
    owner,
    chmod: instr.chmod === undefined ? undefined : parseChmod(expand(instr.chmod, state, e), e.site),
    excluded: from === undefined ? (rel, isDir) => e.context.isExcluded(rel, isDir) : () => false,
    site: e.site,
  };
}

export function describeCopy(instr: CopyInstruction | AddInstruction, req: CopyRequest): string {
  const flags = [instr.kind === 'copy' && instr.from !== undefined ? `--from=${instr.from}` : '', instr.chown ? `--chown=${instr.chown}` : '', instr.chmod ? `--chmod=${instr.chmod}` : '']
    .filter(Boolean)
    .join(' ');
  return `${instr.kind.toUpperCase()} ${flags ? `${flags} ` : ''}${req.sources.map((s) => s || '.').join(' ')} ${req.dest}`;
}
