import type { ShellInstruction } from '../dockerfile/instructions.js';
import { NO_FS, type Handler } from './handler.js';

export const shell: Handler<ShellInstruction> = async (instr, state) => ({
  state: { ...state, config: { ...state.config, Shell: [...instr.shell] } },
  createdBy: `SHELL ${JSON.stringify(instr.shell)}`,
  fs: NO_FS,
});
