import type { ArgInstruction } from '../dockerfile/instructions.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

// A value comes from a build arg (--build-arg or an automatic platform ARG), else the ARG's own
// default, else (for `ARG NAME` with no default) the global ARG of that name (Dockerfile reference,
// "Scope"; BuildKit's precedence, as plan.ts's stageArgValue states it).
export const arg: Handler<ArgInstruction> = async (instr, state, e) => {
  const args = new Map(state.args);
  const parts: string[] = [];
  for (const decl of instr.args) {
    let value: string | undefined;
    if (e.buildArgs.has(decl.name)) value = e.buildArgs.get(decl.name);
    else if (decl.defaultValue !== undefined) value = expand(decl.defaultValue, { ...state, args }, e);
    else value = e.globalArgs.get(decl.name);
    args.set(decl.name, value);
    parts.push(value === undefined ? decl.name : `${decl.name}=${value}`);
  }
  return { state: { ...state, args }, createdBy: `ARG ${parts.join(' ')}`, fs: NO_FS };
};
