import { createHash } from 'node:crypto';
import { InvalidReferenceError } from '../errors.js';

/** `sha256:<64 hex>` (or another registered algorithm). Never confuse a layer's digest with its diffID. */
export type Digest = string & { readonly __brand: 'Digest' };

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new InvalidReferenceError(`invalid digest ${JSON.stringify(s)}`);
  return s;
}

export function sha256Digest(hex: string): Digest {
  return parseDigest(`sha256:${hex}`);
}

/** Digest of bytes held in memory: manifests and configs only, never layers. */
export function digestOfBytes(bytes: Uint8Array): Digest {
  return sha256Digest(createHash('sha256').update(bytes).digest('hex'));
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}
