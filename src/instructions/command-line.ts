import type { CommandLine } from '../dockerfile/instructions.js';
import { shellOf, type StageState } from './stage-state.js';

/** The argv a CMD, ENTRYPOINT or RUN stands for: exec form as written, shell form through SHELL. */
export function commandArgv(cmd: CommandLine, state: StageState): string[] {
  return cmd.form === 'exec' ? [...cmd.args] : [...shellOf(state), cmd.command];
}

export function describeCommand(cmd: CommandLine): string {
  return cmd.form === 'exec' ? JSON.stringify(cmd.args) : cmd.command;
}
