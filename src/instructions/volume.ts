import type { VolumeInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { expand, expandList } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

export const volume: Handler<VolumeInstruction> = async (instr, state, e) => {
  const volumes: Record<string, Record<string, unknown>> = { ...(state.config.Volumes ?? {}) };
  const paths = instr.form === 'json' ? instr.paths.map((p) => expand(p, state, e)) : instr.paths.flatMap((p) => expandList(p, state, e));
  for (const p of paths) {
    if (p.trim() === '') throw new DockerfileError('VOLUME specified can not be an empty string', e.site);
    volumes[p] = {};
  }
  return { state: { ...state, config: { ...state.config, Volumes: volumes } }, createdBy: `VOLUME [${paths.join(' ')}]`, fs: NO_FS };
};
