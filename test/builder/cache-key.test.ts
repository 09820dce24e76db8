// The layer-cache key chain (kaniko's CompositeCache): what changes a key and what does not.
import { describe, expect, it } from 'vitest';
import { CacheKeyChain } from '../../src/builder/cache-key.js';
import { parseDockerfile } from '../../src/dockerfile/parse.js';
import type { Instruction } from '../../src/dockerfile/instructions.js';
import type { StageState } from '../../src/instructions/stage-state.js';

const state: StageState = { config: { Env: ['PATH=/bin'] }, args: new Map(), author: undefined, escape: '\\', cmdSet: false };
const start = { base: 'image:sha256:aa', platform: 'linux/amd64/', settings: { reproducible: false } };

function instructions(text: string): readonly Instruction[] {
  return parseDockerfile(`FROM scratch\n${text}`, 'Dockerfile').stages[0]?.instructions ?? [];
}

function keyOf(text: string, s: StageState = state, from = start): string {
  let chain = CacheKeyChain.start(from);
  for (const i of instructions(text)) chain = chain.next(i, s);
  return chain.key;
}

describe('layer cache keys', () => {
  it('are sha256 hex and depend only on base, platform, instructions and the state they see', () => {
    const k = keyOf('RUN make');
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(keyOf('RUN make')).toBe(k);
    expect(keyOf('RUN make test')).not.toBe(k);
    expect(keyOf('RUN make', state, { ...start, base: 'image:sha256:bb' })).not.toBe(k);
    expect(keyOf('RUN make', state, { ...start, platform: 'linux/arm64/' })).not.toBe(k);
    expect(keyOf('RUN make', state, { ...start, settings: { reproducible: true } })).not.toBe(k);
    expect(keyOf('RUN make', { ...state, config: { Env: ['PATH=/usr/bin'] } })).not.toBe(k);
    expect(keyOf('RUN make', { ...state, config: { ...state.config, WorkingDir: '/src' } })).not.toBe(k);
    expect(keyOf('RUN make', { ...state, config: { ...state.config, User: 'app' } })).not.toBe(k);
    expect(keyOf('RUN make', { ...state, args: new Map([['V', '1']]) })).not.toBe(k);
  });

  it('are a chain: an earlier instruction changes every later key; moving an instruction to another line does not', () => {
    expect(keyOf('ENV A=1\nRUN make')).not.toBe(keyOf('ENV A=2\nRUN make'));
    expect(keyOf('RUN make')).toBe(keyOf('\n\n# comment\nRUN make'));
  });

  it('take heredoc bodies and the digest of copied files', () => {
    expect(keyOf('RUN <<EOF\necho a\nEOF')).not.toBe(keyOf('RUN <<EOF\necho b\nEOF'));
    const [copy] = instructions('COPY a /a');
    if (copy === undefined) throw new Error('no instruction');
    const base = CacheKeyChain.start(start);
    expect(base.next(copy, state, { sources: 'x' }).key).not.toBe(base.next(copy, state, { sources: 'y' }).key);
  });
});
