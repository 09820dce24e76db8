// Container mode: what each RUN must not see, and whether it can be isolated at all (`--run-isolation`).
// The paths are planned here (pure); the probe and the RUN itself are src/sandbox/isolated-run.ts's.
//
// What is hidden: kiln's dir (`/kaniko` or --kaniko-dir: kiln itself, its state, the push credentials
// under .docker), and, where they live outside the image being built (on a mount point the runtime
// made, or under an --ignore-path), the docker config dir, the `--secret` and `--ssh` sources, the
// registry client keys, the files the clouds' credential variables name, and the mount points under
// the places runtimes and users put credentials (Kubernetes' service-account token under
// /var/run/secrets, ~/.aws, ~/.config/gcloud, ~/.azure, ~/.docker, Tekton's /tekton/creds). Paths of
// the image itself are never hidden: kiln has already replaced `/` with the base image, so anything
// else there is the build's own. The build context stays visible, as it is in kaniko.
import { posix } from 'node:path';
import { SandboxError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import type { ContainerIsolation } from '../sandbox/container-sandbox.js';
import { isolateHelperPath, probeIsolation } from '../sandbox/isolated-run.js';
import type { BuildRequest } from './build-request.js';
import { readMountPoints } from './mount-points.js';

/** Environment variables that name a credential file (AWS, Google, Azure SDKs; docker/podman auth). */
const CREDENTIAL_FILE_VARIABLES = [
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CONFIG_FILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
  'GOOGLE_APPLICATION_CREDENTIALS',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'REGISTRY_AUTH_FILE',
] as const;

/** Where credentials are mounted, relative to $HOME (and to /root), or absolute. */
const HOME_CREDENTIAL_DIRS = ['.aws', '.config/gcloud', '.azure', '.docker', '.kube'] as const;
const CREDENTIAL_DIRS = ['/var/run/secrets', '/run/secrets', '/tekton/creds', '/tekton/creds-secrets'] as const;

export interface HiddenPathInputs {
  readonly request: Pick<BuildRequest, 'workDir' | 'ignorePaths' | 'secrets' | 'ssh' | 'mountCacheDir' | 'baseImageCache'> & {
    readonly registry: Pick<BuildRequest['registry'], 'dockerConfigDir' | 'registryClientCertificates'>;
  };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The container's mount points (mountinfo), `/` left out. */
  readonly mountPoints: readonly string[];
}

/** The paths each isolated RUN has covered, shallowest first, none below another. PURE. */
export function hiddenPaths(i: HiddenPathInputs): string[] {
  const { request, env } = i;
  // `/` is the image being built, whatever mountinfo says of it.
  const outside = [...i.mountPoints, ...request.ignorePaths].map(clean).filter((p) => p !== '/');
  const notOfTheImage = (p: string): boolean => outside.some((root) => within(p, root));
  const candidates: string[] = [];
  const add = (p: string | undefined): void => {
    if (p !== undefined && p !== '' && posix.isAbsolute(p)) candidates.push(clean(p));
  };
  add(request.registry.dockerConfigDir);
  add(env['DOCKER_CONFIG']);
  for (const s of request.secrets.values()) if (s.kind === 'file') add(s.path);
  for (const s of request.ssh) for (const p of s.paths) add(p);
  for (const c of request.registry.registryClientCertificates.values()) add(c.key);
  for (const v of CREDENTIAL_FILE_VARIABLES) add(env[v]);
  add(request.mountCacheDir);
  add(request.baseImageCache?.dir);
  const homes = [...new Set([env['HOME'], '/root'].filter((h): h is string => h !== undefined && posix.isAbsolute(h)).map(clean))];
  const credentialDirs = [...CREDENTIAL_DIRS, ...homes.flatMap((h) => HOME_CREDENTIAL_DIRS.map((d) => posix.join(h, d)))];
  for (const m of i.mountPoints.map(clean)) if (credentialDirs.some((d) => within(m, d))) add(m);
  const chosen = [clean(request.workDir), ...candidates.filter((p) => p !== '/' && notOfTheImage(p))];
  // A path under another hidden one is hidden with it; `/` itself never is.
  const unique = [...new Set(chosen)].filter((p) => p !== '/').sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  return unique.filter((p, idx) => !unique.slice(0, idx).some((q) => within(p, q)));
}

/**
 * Decides how this build's RUNs run in container mode: isolated where `--run-isolation` allows and the
 * probe succeeds; else plain, with one warning in `auto` (what a RUN can then reach), an error in
 * `required`, nothing in `off`.
 */
export async function chooseIsolation(request: BuildRequest, env: Readonly<Record<string, string | undefined>>, ctx: RunContext): Promise<ContainerIsolation> {
  const helper = isolateHelperPath();
  // Not isolated, the helper still gives a RUN its groups (--plain): node's spawn cannot.
  const plainHelper = helper === undefined ? {} : { helper };
  if (request.runIsolation === 'off') return { kind: 'none', reason: 'RUN isolation is off (--run-isolation=off)', ...plainHelper };
  const hidden = hiddenPaths({ request, env, mountPoints: await readMountPoints() });
  const probe = helper === undefined ? { ok: false as const, reason: 'kiln-isolate is not installed beside kiln (build/Release/kiln-isolate)' } : await probeIsolation(helper, hidden);
  if (probe.ok && helper !== undefined) {
    ctx.log.debug({ hidden }, 'RUN isolation: each RUN runs in namespaces of its own');
    return { kind: 'isolated', helper, hidden };
  }
  const reason = probe.ok ? 'kiln-isolate is missing' : probe.reason;
  if (request.runIsolation === 'required') {
    throw new SandboxError(`--run-isolation=required, but this container does not allow RUN isolation: ${reason}`);
  }
  ctx.log.warn(
    `RUN isolation is not available in this container (${reason}): each RUN runs as root on kiln's own /, where it can read ${request.workDir} (with the registry credentials) and whatever the runtime mounted, and change kiln itself; RUN --mount is refused. Allow user namespaces (a seccomp profile that permits unshare and clone with CLONE_NEWUSER, as podman's default does) or pass --run-isolation=off to accept this without a warning`,
  );
  return { kind: 'none', reason, ...plainHelper };
}

/** `fn`'s promise, made on the first call and shared by every later one. */
export function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

function clean(p: string): string {
  return posix.normalize(p).replace(/(.)\/+$/, '$1');
}

function within(p: string, root: string): boolean {
  return root === '/' || p === root || p.startsWith(`${root}/`);
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}
