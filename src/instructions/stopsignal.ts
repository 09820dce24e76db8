import type { StopsignalInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

export const stopsignal: Handler<StopsignalInstruction> = async (instr, state, e) => {
  const sig = expand(instr.signal, state, e);
  if (!/^(SIG)?[A-Z][A-Z0-9+-]*$|^\d+$/.test(sig)) throw new DockerfileError(`invalid signal: ${sig}`, e.site);
  return { state: { ...state, config: { ...state.config, StopSignal: sig } }, createdBy: `STOPSIGNAL ${sig}`, fs: NO_FS };
};
