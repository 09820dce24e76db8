// Layer-cache keys, after kaniko's CompositeCache: one chain per stage. It starts from what the stage
// is built on (the base image's manifest digest, or the final key of the stage it is built FROM) and
// the target platform; each instruction then adds its own text, the state it sees (what can change
// what it does: Env, WORKDIR, USER, SHELL, the ARG values in scope) and, for COPY/ADD, a digest of the
// files it reads. The key of an instruction is the chain's value after it: sha256 hex, the tag of its
// cache image.
import { createHash } from 'node:crypto';
import type { Instruction } from '../dockerfile/instructions.js';
import type { StageState } from '../instructions/stage-state.js';

/** What a stage's chain starts from. */
export interface ChainStart {
  /** `image:<manifest digest>` or `stage:<final key of that stage>`. */
  readonly base: string;
  readonly platform: string;
  /**
   * Build settings that change the bytes of a layer for the same instruction: `--reproducible` (mtimes),
   * the run mode, `--ignore-path`s, whether the stage defers its base (its COPY layers then leave out
   * the destination's parents).
   */
  readonly settings: Readonly<Record<string, unknown>>;
}

/**
 * Changed when the same instruction and inputs give other layer bytes than before, so older cache
 * images are not taken for this kiln's. v2: sandbox-mode ADD keeps archive entries under /sys, /proc,
 * /dev and /etc/hosts, and a RUN sees its groups by id and /sys read-only (issue 12).
 */
const VERSION = 'kiln-layer-cache-v2';

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** An immutable position in a stage's key chain. */
export class CacheKeyChain {
  private constructor(readonly key: string) {}

  static start(start: ChainStart): CacheKeyChain {
    return new CacheKeyChain(sha256Hex(JSON.stringify([VERSION, start.base, start.platform, start.settings])));
  }

  /** The chain after `instr`, seen in `state`; `sources` is the digest of the files a COPY/ADD reads. */
  next(instr: Instruction, state: StageState, extra: { readonly sources?: string; readonly runOnlyArgs?: ReadonlyMap<string, string> } = {}): CacheKeyChain {
    const contribution = JSON.stringify({
      instruction: instructionIdentity(instr),
      state: stateIdentity(state),
      ...(extra.runOnlyArgs !== undefined && extra.runOnlyArgs.size > 0 ? { runOnlyArgs: [...extra.runOnlyArgs] } : {}),
      ...(extra.sources !== undefined ? { sources: extra.sources } : {}),
    });
    return new CacheKeyChain(sha256Hex(`${this.key}\n${contribution}`));
  }
}

/** The instruction as parsed, without where it sits in the file: moving it does not change its key. */
function instructionIdentity(instr: Instruction): unknown {
  const { line: _line, endLine: _endLine, ...rest } = instr;
  return rest;
}

/** The part of the stage state an instruction's result can depend on. */
function stateIdentity(state: StageState): unknown {
  const c = state.config;
  return {
    env: c.Env ?? [],
    workdir: c.WorkingDir ?? '',
    user: c.User ?? '',
    shell: c.Shell ?? [],
    args: [...state.args],
    escape: state.escape,
  };
}
