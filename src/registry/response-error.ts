// Turns a registry's failed response, or a failure to reach it, into a one-line RegistryError:
// `GET http://host/v2/repo/manifests/tag: 404 Not Found: MANIFEST_UNKNOWN: manifest unknown`.
import type { Response } from 'node-fetch';
import { z } from 'zod';
import { RegistryError } from '../errors.js';

/** The distribution spec's error body. */
const errorBodySchema = z.looseObject({
  errors: z.array(z.looseObject({ code: z.string(), message: z.string().optional() })),
});

const ERROR_BODY_LIMIT = 64 * 1024;

/** 5xx, throttling and request timeouts may go away on their own; everything else will not. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A URL as shown in messages: without query (upload `_state`, token scopes) or credentials. */
export function displayUrl(url: string | URL): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

export async function errorFromResponse(method: string, url: string | URL, res: Response): Promise<RegistryError> {
  const codes: string[] = [];
  const details: string[] = [];
  if (method !== 'HEAD') {
    const body = await readLimited(res);
    const parsed = parseErrorBody(body);
    for (const e of parsed) {
      codes.push(e.code);
      details.push(e.message !== undefined && e.message !== '' ? `${e.code}: ${oneLine(e.message)}` : e.code);
    }
  } else {
    res.body?.resume();
  }
  const statusText = res.statusText !== '' ? ` ${res.statusText}` : '';
  const tail = details.length > 0 ? `: ${details.join('; ')}` : '';
  const shown = displayUrl(url);
  return new RegistryError(`${method} ${shown}: ${res.status}${statusText}${tail}`, {
    status: res.status,
    registryCodes: codes,
    retryable: isRetryableStatus(res.status),
    url: shown,
  });
}

/** `unable to reach registry HOST: connect ECONNREFUSED 127.0.0.1:1` (always retryable). */
export function unreachableError(registry: string, url: string | URL, err: unknown): RegistryError {
  const reason = networkReason(err);
  // A bounded wait that ran out (bounded-agent.ts) already says which host and what for.
  const timedOut = err instanceof Error && (err as Error & { code?: unknown }).code === 'TIMEOUT';
  return new RegistryError(timedOut ? `registry ${registry}: ${reason}` : `unable to reach registry ${registry}: ${reason}`, {
    retryable: true,
    url: displayUrl(url),
  }, { cause: err });
}

/** The short reason of a node-fetch network error (it wraps Node's message in `request to URL failed, reason: ...`). */
export function networkReason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const m = /reason: (.*)$/s.exec(err.message);
  return oneLine(m?.[1] ?? err.message);
}

function parseErrorBody(body: string): { code: string; message?: string | undefined }[] {
  if (body === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return [];
  }
  const r = errorBodySchema.safeParse(value);
  return r.success ? r.data.errors : [];
}

async function readLimited(res: Response): Promise<string> {
  const body = res.body;
  if (body === null) return '';
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      chunks.push(b);
      total += b.length;
      if (total >= ERROR_BODY_LIMIT) break;
    }
  } catch {
    // An error body that breaks off is still an error; report what we have.
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, ERROR_BODY_LIMIT);
}

function oneLine(s: string): string {
  const flat = s.replace(/\s*\n\s*/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}
