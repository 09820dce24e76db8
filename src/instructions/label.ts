import type { LabelInstruction } from '../dockerfile/instructions.js';
import { expand } from './expand-in-stage.js';
import { NO_FS, type Handler } from './handler.js';

export const label: Handler<LabelInstruction> = async (instr, state, e) => {
  const labels: Record<string, string> = { ...(state.config.Labels ?? {}) };
  const parts: string[] = [];
  for (const { key, value } of instr.labels) {
    const k = expand(key, state, e);
    const v = expand(value, state, e);
    labels[k] = v;
    parts.push(`${k}=${JSON.stringify(v)}`);
  }
  return { state: { ...state, config: { ...state.config, Labels: labels } }, createdBy: `LABEL ${parts.join(' ')}`, fs: NO_FS };
};
