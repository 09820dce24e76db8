// Which instructions the layer cache looks up and stores, and what goes into their keys beyond their
// text and state: the files a COPY/ADD reads. An instruction whose result depends on something the key
// cannot see (a RUN with a bind, cache, secret or ssh mount; an ADD of a URL or git repository without --checksum) is
// neither looked up nor stored, but the chain goes on through it, as kaniko's does; the stage's final
// key then no longer stands for its content, so a `COPY --from` that stage hashes the files instead.
import { createHash } from 'node:crypto';
import type { Instruction } from '../dockerfile/instructions.js';
import { isGitSource } from '../instructions/add/add-git.js';
import { excludeMatcher, selectSources } from '../instructions/copy/copy-select.js';
import { expand } from '../instructions/expand-in-stage.js';
import type { InstructionEnv } from '../instructions/handler.js';
import type { StageState } from '../instructions/stage-state.js';
import type { CacheKeyChain } from './cache-key.js';
import type { LayerCacheSettings } from './build-request.js';
import { digestSources } from './source-digest.js';

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** An ADD source that is not a context file: a URL, or a git repository (`user@host:path` too). */
const isUrlSource = (p: string): boolean => URL_SCHEME.test(p) || isGitSource(p);

export interface KeyedInstruction {
  /** The chain after this instruction: `chain.key` is its cache key. */
  readonly chain: CacheKeyChain;
  /** Whether its layer is looked up and stored. */
  readonly cacheable: boolean;
  /** false when its result depends on something outside the key. */
  readonly keyed: boolean;
}

export interface KeyInputs {
  readonly settings: LayerCacheSettings;
  /**
   * What a `--from` source stands for when a string says it all (an image's manifest digest, a stage
   * whose key determines its content), else undefined: its files are hashed.
   */
  readonly fromIdentity: (from: string) => Promise<string | undefined>;
}

export async function keyInstruction(instr: Instruction, state: StageState, env: InstructionEnv, chain: CacheKeyChain, inputs: KeyInputs): Promise<KeyedInstruction> {
  const { settings } = inputs;
  switch (instr.kind) {
    case 'run': {
      const keyed = instr.mounts.every((m) => m.type === 'tmpfs');
      return { chain: chain.next(instr, state, { runOnlyArgs: env.runOnlyArgs }), cacheable: keyed && settings.runLayers, keyed };
    }
    case 'copy':
    case 'add': {
      const patterns = instr.sources.flatMap((s) => (s.kind === 'path' ? [expand(s.path, state, env)] : []));
      const urls = instr.kind === 'add' ? patterns.filter(isUrlSource) : patterns.filter((p) => URL_SCHEME.test(p));
      const keyed = urls.length === 0 || (instr.kind === 'add' && instr.checksum !== undefined);
      const sources = await sourcesDigest(instr, patterns.filter((p) => !urls.includes(p)), state, env, inputs);
      return { chain: chain.next(instr, state, { sources }), cacheable: keyed && settings.copyLayers, keyed };
    }
    case 'workdir':
      // Cached with RUN layers: a WORKDIR that creates its directory would otherwise unpack the base
      // of a stage whose every RUN hits.
      return { chain: chain.next(instr, state), cacheable: settings.runLayers, keyed: true };
    default:
      return { chain: chain.next(instr, state), cacheable: false, keyed: true };
  }
}

async function sourcesDigest(instr: Instruction & { kind: 'copy' | 'add' }, patterns: readonly string[], state: StageState, env: InstructionEnv, inputs: KeyInputs): Promise<string> {
  const from = instr.kind === 'copy' ? instr.from : undefined;
  if (from !== undefined) {
    const identity = await inputs.fromIdentity(from);
    // --exclude and --parents are in the instruction's text, which the chain hashes with the state.
    if (identity !== undefined) return createHash('sha256').update(JSON.stringify([identity, patterns])).digest('hex');
  }
  // What the copy reads, selected as it selects (--parents, --exclude, .dockerignore).
  const selected = await selectSources(instr, patterns, excludeMatcher(instr, state, env), env);
  return digestSources({
    root: selected.sourceRoot,
    sources: selected.sources,
    excluded: from === undefined ? (rel, isDir) => env.context.isExcluded(rel, isDir) : () => false,
    ...(selected.exclude === undefined ? {} : { exclude: selected.exclude }),
    ...(selected.parents === undefined ? {} : { bases: selected.parents }),
    ...(selected.named === undefined ? {} : { named: selected.named }),
    withOwners: from !== undefined,
  });
}
