import type { AddInstruction } from '../dockerfile/instructions.js';
import { DockerfileError } from '../errors.js';
import { copyIntoRootfs } from './copy-files.js';
import { describeCopy, planCopy } from './copy-sources.js';
import { FS_CHANGED, type Handler } from './handler.js';

const REMOTE = /^(https?|git):\/\/|^git@/;
const ARCHIVE = /\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst|tzst)$/i;

// ADD of plain local files behaves as COPY. Remote URLs and archive extraction are not built yet:
// they fail loudly rather than silently copying an archive unextracted.
export const add: Handler<AddInstruction> = async (instr, state, e) => {
  for (const s of instr.sources) {
    if (s.kind === 'path' && REMOTE.test(s.path)) throw new DockerfileError('ADD from a URL is not supported yet', e.site);
    if (s.kind === 'path' && ARCHIVE.test(s.path)) throw new DockerfileError('ADD of a local archive (auto-extraction) is not supported yet', e.site);
  }
  const req = await planCopy(instr, state, e);
  await copyIntoRootfs(req);
  return { state, createdBy: describeCopy(instr, req), fs: FS_CHANGED };
};
