import { posix } from 'node:path';
import type { WorkdirInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { mkdirAllInRoot } from '../rootfs/in-root.js';
import { expandWord } from '../dockerfile/expand.js';
import { fsPaths, NO_FS, type Handler, type InstructionEnv } from './handler.js';
import { resolveChown } from './identity.js';
import { expansionLookup, type StageState } from './stage-state.js';

// Relative to the previous WORKDIR; created if missing, owned by the current USER (BuildKit's
// dispatchWorkdir makes it with llb.WithUser), which adds a layer only when something was created.
export const workdir: Handler<WorkdirInstruction> = async (instr, state, e) => {
  const next = workdirState(instr, state, e);
  const dir = next.config.WorkingDir ?? '/';
  if (dir === '/') return { state: next, createdBy: `WORKDIR ${dir}`, fs: NO_FS };
  // As root, what WORKDIR creates is 0755 root:root whatever the base holds: a deferred stage creates it
  // in its delta root, where no layer records it (a runtime makes a missing working directory itself).
  const delta = isRootUser(state.config.User) ? await e.deltaRootfs() : undefined;
  if (delta !== undefined) {
    await mkdirAllInRoot(delta, dir);
    return { state: next, createdBy: `WORKDIR ${dir}`, fs: NO_FS };
  }
  const root = await e.rootfs();
  const owner = await resolveChown(root, state.config.User ?? '');
  const created = await mkdirAllInRoot(root, dir, owner).catch((err: unknown) => {
    throw new DockerfileError(`cannot create WORKDIR ${dir}: ${(err as Error).message}`, e.site, { cause: err });
  });
  return { state: next, createdBy: `WORKDIR ${dir}`, fs: created ? fsPaths([dir]) : NO_FS };
};

/** The state after a WORKDIR, touching no filesystem (the layer cache brings the directory in its layer). */
export function workdirState(instr: WorkdirInstruction, state: StageState, e: Pick<InstructionEnv, 'site'>): StageState {
  const raw = expandWord(instr.path, expansionLookup(state), state.escape, e.site);
  if (raw === '') throw new DockerfileError('WORKDIR requires a path', e.site);
  const dir = posix.resolve(state.config.WorkingDir || '/', raw);
  return { ...state, config: { ...state.config, WorkingDir: dir } };
}

function isRootUser(user: string | undefined): boolean {
  return user === undefined || user === '' || user === '0' || user === '0:0';
}
