// The build context: a directory on this machine (`dir://path` or a plain path) and its
// .dockerignore. Other kaniko context schemes (tar://, git://, gs://, s3://, https://) are
// recognised so the user gets a clear "not supported yet" naming the scheme.
import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ContextError } from '../errors.js';
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

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

/** Opens the context named by `--context` (kaniko's default is `/workspace/`). */
export async function openContext(spec: string, cwd: string, opts: OpenContextOptions = {}): Promise<BuildContext> {
  let path = spec;
  const scheme = SCHEME.exec(spec)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (scheme !== 'dir') {
      throw new ContextError(
        `build context ${JSON.stringify(spec)}: the ${scheme}:// context is not supported yet (use dir://PATH or a plain path)`,
      );
    }
    path = spec.slice('dir://'.length);
    if (path === '') throw new ContextError('build context "dir://": empty path');
  }
  const abs = resolve(cwd, path);
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
