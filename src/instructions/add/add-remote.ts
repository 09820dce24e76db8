// ADD <http(s) URL>: downloaded as one file, never extracted (Dockerfile reference, "ADD": "Resources
// from remote URLs are not decompressed"). As with BuildKit's http source: mode 0600 unless --chmod,
// owner 0:0 unless --chown, mtime from Last-Modified when the server sends one, the file name from the
// URL path when the destination is a directory; `--checksum=sha256:<hex>` must match the bytes.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fetch from 'node-fetch';
import { DockerfileError } from '../../errors.js';
import type { RunContext } from '../../log/run-context.js';
import { boundedAgents, DEFAULT_WAIT_LIMITS } from '../../registry/bounded-agent.js';
import type { InstructionSite } from '../handler.js';

export interface Download {
  /** Host path of the downloaded file. */
  readonly file: string;
  /** The name the file gets in a destination directory. */
  readonly name: string;
  readonly mtime: Date | undefined;
}

/** `sha256:<64 hex>`, the only algorithm BuildKit takes for ADD --checksum. */
export function parseChecksum(spec: string, site: InstructionSite): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(spec);
  if (m === null) throw new DockerfileError(`invalid checksum ${JSON.stringify(spec)}: want sha256:<64 hex digits>`, site);
  return spec;
}

/** BuildKit's http source naming: the last element of the URL path, `index` when there is none. */
export function fileNameOf(url: URL): string {
  const base = posix.basename(decodeURIComponent(url.pathname));
  return base === '' || base === '/' || base === '.' || base === '..' ? 'index' : base;
}

export async function download(url: string, dir: string, checksum: string | undefined, ctx: RunContext, site: InstructionSite): Promise<Download> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new DockerfileError(`invalid URL ${url}`, site, { cause: err });
  }
  const shown = redactUrl(parsed);
  const res = await fetch(url, { signal: ctx.signal, redirect: 'follow', agent: boundedAgents(ctx.waits ?? DEFAULT_WAIT_LIMITS) }).catch((err: unknown) => {
    throw new DockerfileError(`ADD ${shown}: ${(err as Error).message}`, site, { cause: err });
  });
  if (!res.ok || res.body === null) throw new DockerfileError(`ADD ${shown}: HTTP ${res.status} ${res.statusText}`, site);
  const file = join(dir, 'download');
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  await pipeline(res.body, tap, createWriteStream(file, { mode: 0o600 })).catch((err: unknown) => {
    throw new DockerfileError(`ADD ${shown}: ${(err as Error).message}`, site, { cause: err });
  });
  const actual = `sha256:${hash.digest('hex')}`;
  if (checksum !== undefined && checksum !== actual) {
    throw new DockerfileError(`checksum mismatch for ${shown}: expected ${checksum}, got ${actual}`, site);
  }
  const lm = res.headers.get('last-modified');
  const mtime = lm === null ? undefined : new Date(lm);
  await stat(file);
  return { file, name: fileNameOf(parsed), mtime: mtime !== undefined && !Number.isNaN(mtime.getTime()) ? mtime : undefined };
}

/** A URL as messages show it: user info never printed. */
function redactUrl(u: URL): string {
  if (u.username === '' && u.password === '') return u.toString();
  const c = new URL(u.toString());
  c.username = '';
  c.password = '';
  return c.toString();
}
