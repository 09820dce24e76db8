// kaniko's digest outputs (pkg/executor/push.go DoPush + writeDigestFile):
//   --digest-file                     the manifest digest, `sha256:...`, no trailing newline
//   --image-name-with-digest-file     `registry/repository@sha256:...\n` per destination
//   --image-name-tag-with-digest-file `registry/repository:tag@sha256:...\n` per destination
// kaniko's "tag" file is plain text like the other, not JSON; the tag is the destination's tag
// (`latest` when none). Each path may be an `https://` URL (kaniko PUTs the bytes there, e.g. to a
// pre-signed object-store URL); a missing parent directory is created with mode 0700, as kaniko does.
// Local files are written to a temp name and renamed, so a reader never sees half a file.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { OutputError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { Digest } from '../oci/digest.js';
import { parseReference, repositoryName } from '../oci/reference.js';

/** `registry/repository@digest` for each destination, one per line (each line ends in `\n`). */
export function imageNameWithDigest(destinations: readonly string[], digest: Digest): string {
  return destinations.map((d) => `${repositoryName(parseReference(d))}@${digest}\n`).join('');
}

/** `registry/repository:tag@digest` for each destination, one per line; the tag defaults to `latest`. */
export function imageNameTagWithDigest(destinations: readonly string[], digest: Digest): string {
  return destinations
    .map((d) => {
      const ref = parseReference(d, { defaultTag: true });
      return `${repositoryName(ref)}:${ref.tag ?? 'latest'}@${digest}\n`;
    })
    .join('');
}

export interface DigestFileRequest {
  readonly digestFile?: string | undefined;
  readonly imageNameWithDigestFile?: string | undefined;
  readonly imageNameTagWithDigestFile?: string | undefined;
  readonly destinations: readonly string[];
}

/** Writes whichever of the three digest outputs are requested. */
export async function writeDigestFiles(ctx: RunContext, digest: Digest, req: DigestFileRequest): Promise<void> {
  if (req.digestFile !== undefined) await writeDigestOutput(ctx, req.digestFile, digest, '--digest-file');
  if (req.imageNameWithDigestFile !== undefined) {
    await writeDigestOutput(ctx, req.imageNameWithDigestFile, imageNameWithDigest(req.destinations, digest), '--image-name-with-digest-file');
  }
  if (req.imageNameTagWithDigestFile !== undefined) {
    await writeDigestOutput(
      ctx,
      req.imageNameTagWithDigestFile,
      imageNameTagWithDigest(req.destinations, digest),
      '--image-name-tag-with-digest-file',
    );
  }
}

/** Writes `text` to a local path or PUTs it to an `https://` URL. `flag` names the option in errors. */
export async function writeDigestOutput(ctx: RunContext, target: string, text: string, flag: string): Promise<void> {
  const bytes = Buffer.from(text, 'utf8');
  if (target.startsWith('https://')) {
    let res: Response;
    try {
      res = await fetch(target, { method: 'PUT', body: bytes, headers: { 'Content-Type': 'text/plain' }, signal: ctx.signal });
    } catch (err) {
      throw new OutputError(`${flag}: PUT to ${redactUrl(target)} failed: ${messageOf(err)}`, { cause: err });
    }
    // kaniko ignores the status; a failed upload should not look like success.
    if (!res.ok) throw new OutputError(`${flag}: PUT to ${redactUrl(target)} answered ${res.status}`);
    return;
  }
  const tmp = join(dirname(target), `.${basename(target)}.kiln-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(tmp, bytes, { mode: 0o644 });
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new OutputError(`${flag}: writing ${target}: ${messageOf(err)}`, { cause: err });
  }
}

/** Drops the query string: pre-signed URLs carry their credential there. */
function redactUrl(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : `${url.slice(0, q)}?...`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
