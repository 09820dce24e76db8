import type { z } from 'zod';
import { KilnError } from '../errors.js';

/** Parses foreign JSON bytes against a schema; `what` names the document and its origin for the error. */
export function parseJsonBytes<S extends z.ZodType>(schema: S, bytes: Uint8Array, what: string): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new KilnError('INVALID_DOCUMENT', `${what}: invalid JSON`, { cause: err });
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new KilnError('INVALID_DOCUMENT', `${what}: invalid document${at}: ${issue?.message ?? 'schema mismatch'}`);
  }
  return result.data;
}

/** Canonical bytes we emit for JSON documents we author (manifests, configs, index.json). */
export function jsonBytes(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value), 'utf8');
}
