import type { EnvInstruction } from '../dockerfile/instructions.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';
import { withEnv } from './stage-state.js';

// ENV K=V K2=V2: each value is expanded against the state *before* this instruction (BuildKit expands
// the whole line once), and a later pair may not see an earlier pair of the same line.
export const env: Handler<EnvInstruction> = async (instr, state, e) => {
  let config = state.config;
  const parts: string[] = [];
  for (const { key, value } of instr.pairs) {
    const k = expand(key, state, e);
    const v = expand(value, state, e);
    config = withEnv(config, k, v);
    parts.push(`${k}=${v}`);
  }
  return { state: { ...state, config }, createdBy: `ENV ${parts.join(' ')}`, fs: NO_FS };
};
