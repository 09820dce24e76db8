import type { CopyInstruction } from '../../dockerfile/instructions.js';
import { copyIntoRootfs } from './copy-files.js';
import { planCopy } from './copy-plan.js';
import { fsPaths, type Handler } from '../handler.js';

export const copy: Handler<CopyInstruction> = async (instr, state, e) => {
  const plan = await planCopy(instr, state, e);
  try {
    for (const req of plan.requests) await copyIntoRootfs(req);
  } finally {
    await plan.cleanup();
  }
  return { state, createdBy: plan.createdBy, fs: fsPaths(plan.changed) };
};
