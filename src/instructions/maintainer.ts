import type { MaintainerInstruction } from '../dockerfile/instructions.js';
import { NO_FS, type Handler } from './handler.js';

// Deprecated but honoured: docker records it as the image's author.
export const maintainer: Handler<MaintainerInstruction> = async (instr, state) => ({
  state: { ...state, author: instr.maintainer },
  createdBy: `MAINTAINER ${instr.maintainer}`,
  fs: NO_FS,
});
