// The build context: a directory on this machine and its .dockerignore. `--context` names it
// (context-spec.ts); a tar, git or https context is first fetched into a directory (fetch-context.ts).
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ContextError } from '../errors.js';
import { parseContextSpec } from './context-spec.js';
import { IgnoreMatcher, loadDockerignore } from './dockerignore.js';

export interface BuildContext {
  /** Absolute real path of the context directory. */
  readonly root: string;
  readonly ignore: IgnoreMatcher;
}

export interface OpenContextOptions {
  /** The Dockerfile's path (absolute or relative to cwd): `<Dockerfile>.dockerignore` beside it wins. */
  readonly dockerfile?: string;
}

/**
 * Opens a local directory context named by `--context` (`dir://PATH` or a plain path; kaniko's default
 * is `/workspace/`). Other schemes must be fetched first (fetch-context.ts); naming one here is an error.
 */
export async function openContext(spec: string, cwd: string, opts: OpenContextOptions = {}): Promise<BuildContext> {
  const parsed = parseContextSpec(spec);
  if (parsed.kind !== 'dir') {
    throw new ContextError(`build context ${JSON.stringify(spec)}: a ${parsed.kind} context must be fetched into a directory first`);
  }
  const abs = resolve(cwd, parsed.path);
  let root: string;
  try {
    root = await realpath(abs);
    if (!(await stat(root)).isDirectory()) throw new ContextError(`build context ${abs} is not a directory`);
  } catch (err) {
    if (err instanceof ContextError) throw err;
    throw new ContextError(`build context ${abs}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const dockerfile = opts.dockerfile !== undefined ? resolve(cwd, opts.dockerfile) : undefined;
  return { root, ignore: await loadDockerignore(root, dockerfile) };
}
