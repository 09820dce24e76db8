import type { EntrypointInstruction } from '../dockerfile/instructions.js';
import { commandArgv, describeCommand } from './command-line.js';
import { NO_FS, type Handler } from './handler.js';

// Setting ENTRYPOINT drops a CMD inherited from the base image, but not one this stage set
// (Dockerfile reference, "Understand how CMD and ENTRYPOINT interact"; BuildKit's cmdSet).
export const entrypoint: Handler<EntrypointInstruction> = async (instr, state) => {
  const config = { ...state.config, Entrypoint: commandArgv(instr.command, state) };
  if (!state.cmdSet) config.Cmd = null;
  return { state: { ...state, config }, createdBy: `ENTRYPOINT ${describeCommand(instr.command)}`, fs: NO_FS };
};
