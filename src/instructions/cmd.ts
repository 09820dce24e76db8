import type { CmdInstruction } from '../dockerfile/instructions.js';
import { commandArgv, describeCommand } from './command-line.js';
import { NO_FS, type Handler } from './handler.js';

export const cmd: Handler<CmdInstruction> = async (instr, state) => {
  const config = { ...state.config, Cmd: commandArgv(instr.command, state) };
  return { state: { ...state, config, cmdSet: true }, createdBy: `CMD ${describeCommand(instr.command)}`, fs: NO_FS };
};
