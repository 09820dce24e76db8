import { expandWord, expandWords } from '../dockerfile/expand.js';
import type { InstructionEnv } from './handler.js';
import { expansionLookup, type StageState } from './stage-state.js';

/** Expands one RAW word against the stage's ENV and ARGs, errors pointing at the instruction. */
export function expand(word: string, state: StageState, env: InstructionEnv): string {
  return expandWord(word, expansionLookup(state), state.escape, env.site);
}

/** Expands a RAW word that may split into several (EXPOSE, VOLUME in shell form). */
export function expandList(word: string, state: StageState, env: InstructionEnv): string[] {
  return expandWords(word, expansionLookup(state), state.escape, env.site);
}
