import type { ArgInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

// A value comes from a build arg (--build-arg or an automatic platform ARG), else the ARG's own
// default, else (for `ARG NAME` with no default) the global ARG of that name (Dockerfile reference,
// "Scope"; BuildKit's precedence, as plan.ts's stageArgValue states it). The name is expanded too
// (BuildKit's ArgCommand.Expand expands each key and value): `ENV n=v` then `ARG ${n}=x` declares `v`.
export const arg: Handler<ArgInstruction> = async (instr, state, e) => {
  const args = new Map(state.args);
  const parts: string[] = [];
  for (const decl of instr.args) {
    const name = expand(decl.name, { ...state, args }, e);
    if (name === '') throw new DockerfileError('ARG names can not be blank', e.site);
    let value: string | undefined;
    if (e.buildArgs.has(name)) value = e.buildArgs.get(name);
    else if (decl.defaultValue !== undefined) value = expand(decl.defaultValue, { ...state, args }, e);
    else value = e.globalArgs.get(name);
    args.set(name, value);
    parts.push(value === undefined ? name : `${name}=${value}`);
  }
  return { state: { ...state, args }, createdBy: `ARG ${parts.join(' ')}`, fs: NO_FS };
};
