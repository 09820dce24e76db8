import type { CopyInstruction } from '../dockerfile/instructions.js';
import { copyIntoRootfs } from './copy-files.js';
import { describeCopy, planCopy } from './copy-sources.js';
import { FS_CHANGED, type Handler } from './handler.js';

export const copy: Handler<CopyInstruction> = async (instr, state, e) => {
  const req = await planCopy(instr, state, e);
  await copyIntoRootfs(req);
  return { state, createdBy: describeCopy(instr, req), fs: FS_CHANGED };
};
