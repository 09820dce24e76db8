import type { UserInstruction } from '../dockerfile/instructions.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

// The name is resolved against the stage's /etc/passwd when a RUN needs it, as docker does: a USER
// that names a missing account only fails once something runs as it.
export const user: Handler<UserInstruction> = async (instr, state, e) => {
  const u = expand(instr.user, state, e);
  return { state: { ...state, config: { ...state.config, User: u } }, createdBy: `USER ${u}`, fs: NO_FS };
};
