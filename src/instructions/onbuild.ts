import type { OnbuildInstruction } from '../dockerfile/instructions.js';
import { NO_FS, type Handler } from './handler.js';

// Stored in the config; the triggers run when an image built on this one is built.
export const onbuild: Handler<OnbuildInstruction> = async (instr, state) => ({
  state: { ...state, config: { ...state.config, OnBuild: [...(state.config.OnBuild ?? []), instr.expression] } },
  createdBy: `ONBUILD ${instr.expression}`,
  fs: NO_FS,
});
