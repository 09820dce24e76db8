// The build's inputs: the context directory and the Dockerfile (kaniko's lookup: the path as given
// relative to the working directory, else relative to the context; `-` reads stdin).
import { readFile, rm, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { openContext, type BuildContext as ContextDir } from '../context/build-context.js';
import { parseContextSpec } from '../context/context-spec.js';
import { fetchContext, fetchDockerfile } from '../context/fetch-context.js';
import { expandSources } from '../context/context-sources.js';
import { ContextError, DockerfileError, KilnError, UsageError } from '../errors.js';
import type { ContextFiles, InstructionSite, NamedSource } from '../instructions/handler.js';
import type { BuildDeps } from './build-deps.js';
import type { BuildRequest } from './build-request.js';

export interface BuildInputs {
  readonly dockerfileText: string;
  /** How messages name the Dockerfile (`Dockerfile`, `build/Dockerfile.prod`, `-`). */
  readonly dockerfileName: string;
  readonly context: ContextFiles;
}

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined))?.isFile() ?? false;
}

async function locateDockerfile(request: BuildRequest, contextDir: string | undefined): Promise<string> {
  const spec = request.dockerfileSpec;
  const candidates = isAbsolute(spec) ? [spec] : [resolve(request.cwd, spec), ...(contextDir !== undefined ? [join(contextDir, spec)] : [])];
  for (const c of candidates) if (await isFile(c)) return c;
  throw new UsageError(`Dockerfile ${spec} not found: please provide a valid path to a Dockerfile within the build context with --dockerfile`);
}

/** Where a tar, git or https context is fetched to (kaniko's /kaniko/buildcontext in container mode). */
export function fetchedContextDir(request: BuildRequest): string {
  return join(request.workDir, 'buildcontext');
}

export async function resolveInputs(request: BuildRequest, deps: BuildDeps): Promise<BuildInputs> {
  const spec = parseContextSpec(request.contextSpec);
  let contextDir: string;
  if (spec.kind === 'dir' && request.contextFetch.subPath === undefined) contextDir = request.contextSpec;
  else {
    const into = fetchedContextDir(request);
    // kiln's own directory: what an earlier build with the same --work-dir left there goes.
    if (spec.kind !== 'dir') await rm(into, { recursive: true, force: true });
    const f = request.contextFetch;
    contextDir = await fetchContext(spec, {
      cwd: request.cwd,
      into,
      subPath: f.subPath,
      stdin: f.stdin,
      hostEnv: f.hostEnv,
      git: f.git,
      gitAuth: f.gitAuth,
      gitPullMethod: f.gitPullMethod,
      owner: f.owner,
      ctx: deps,
      mask: deps.mask,
    });
  }
  // The context is opened before the Dockerfile is known only to find a context-relative Dockerfile;
  // it is reopened with the Dockerfile so `<Dockerfile>.dockerignore` applies.
  const probe = await openContext(contextDir, request.cwd);
  let dockerfileText: string;
  let dockerfileName: string;
  let dir: ContextDir;
  if (request.dockerfileSpec === '-') {
    dockerfileText = request.stdinDockerfile ?? '';
    dockerfileName = 'Dockerfile';
    dir = probe;
  } else if (/^https?:\/\//i.test(request.dockerfileSpec)) {
    dockerfileText = await fetchDockerfile(request.dockerfileSpec, deps);
    dockerfileName = 'Dockerfile';
    dir = probe;
  } else {
    const path = await locateDockerfile(request, probe.root);
    dockerfileText = await readFile(path, 'utf8').catch((err: unknown) => {
      throw new UsageError(`reading Dockerfile ${path}: ${(err as Error).message}`, { cause: err });
    });
    // Messages name the file as docker does: by its name, not the path it was found at.
    dockerfileName = basename(path);
    dir = await openContext(contextDir, request.cwd, { dockerfile: path });
  }
  return { dockerfileText, dockerfileName, context: contextFiles(dir) };
}

function contextFiles(dir: ContextDir): ContextFiles {
  const resolveNamedSources = async (pattern: string, where: InstructionSite): Promise<NamedSource[]> => {
    try {
      const found = await expandSources(dir, [pattern]);
      // A symlink whose target stays inside the context is copied as its target, under its own
      // name; one leaving it stays a link here, and the copy refuses it as a missing source.
      return found.map((s) => {
        const p = s.followTo?.path ?? s.path;
        return { path: p === '.' ? '' : p, named: s.path === '.' ? '' : s.path };
      });
    } catch (err) {
      if (err instanceof ContextError) throw new DockerfileError(err.message, where, { cause: err });
      if (err instanceof KilnError) throw err;
      throw new DockerfileError((err as Error).message, where, { cause: err });
    }
  };
  return {
    dir: dir.root,
    async resolveSource(pattern: string, where: InstructionSite): Promise<string[]> {
      return (await resolveNamedSources(pattern, where)).map((s) => s.path);
    },
    resolveNamedSources,
    isExcluded(relPath: string, isDir: boolean): boolean {
      if (!dir.ignore.matches(relPath)) return false;
      return !(isDir && dir.ignore.hasExceptions);
    },
  };
}
