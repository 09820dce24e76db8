// argv (as commander parsed it) + environment -> a validated BuildRequest. Commander hands back an
// untyped record, so it enters through zod like any other foreign data.
import { chmod, mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { layerCodec } from '../blob/compression.js';
import type { BaseImageCacheSettings, BuildRequest, LayerCacheSettings, RunMode } from '../builder/build-request.js';
import { parseContextSpec, parseGitOptions } from '../context/context-spec.js';
import type { GitAuth } from '../context/fetch-context.js';
import { parseGoDuration } from '../dockerfile/duration.js';
import { UsageError } from '../errors.js';
import { parseSecretFlag } from '../instructions/run/secret-source.js';
import { parseSshFlags } from '../instructions/run/ssh-source.js';
import { flagsFrom } from './run-command.js';
import { parsePlatform } from '../oci/platform.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import type { GitLabCiCredentials } from '../registry/keychain.js';
import { parseRegistryMap } from '../registry/registry-map.js';
import type { ClientCertificatePaths } from '../registry/tls-files.js';

/** Flags the executor and the warmer share: how registries are reached. */
export const registryFlagsShape = {
  insecure: z.boolean(),
  insecurePull: z.boolean(),
  insecureRegistry: z.array(z.string()),
  skipTlsVerify: z.boolean(),
  skipTlsVerifyPull: z.boolean(),
  skipTlsVerifyRegistry: z.array(z.string()),
  registryMirror: z.array(z.string()),
  registryMap: z.array(z.string()),
  skipDefaultRegistryFallback: z.boolean(),
  registryCertificate: z.array(z.string()),
  registryClientCert: z.array(z.string()),
};

type RegistryFlags = z.infer<z.ZodObject<typeof registryFlagsShape>>;

/** What both commands derive from the registry flags and the environment: routes, trust, GitLab CI credentials. */
export function registryRoutesFrom(
  flags: RegistryFlags,
  env: Environment['env'],
): Pick<BuildRequest['registry'], 'registryMap' | 'skipDefaultRegistryFallback' | 'registryCertificates' | 'registryClientCertificates' | 'gitLabCi' | 'cloudEnv'> {
  return {
    // kaniko's order: --registry-map, then KANIKO_REGISTRY_MAP, then the mirrors as index.docker.io maps.
    registryMap: parseRegistryMap(
      [...flags.registryMap, ...(env['KANIKO_REGISTRY_MAP'] !== undefined ? [env['KANIKO_REGISTRY_MAP']] : [])],
      [...flags.registryMirror, ...(env['KANIKO_REGISTRY_MIRROR'] !== undefined ? [env['KANIKO_REGISTRY_MIRROR']] : [])],
    ),
    skipDefaultRegistryFallback: flags.skipDefaultRegistryFallback,
    registryCertificates: new Map(flags.registryCertificate.map((c) => keyValue('--registry-certificate', c))),
    registryClientCertificates: clientCertificates(flags.registryClientCert),
    gitLabCi: gitLabCi(env),
    cloudEnv: env,
  };
}

/** Flags the executor and the warmer share: logging. */
export const logFlagsShape = {
  verbosity: z.enum(['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']),
  logFormat: z.enum(['text', 'color', 'json']),
  logTimestamp: z.boolean(),
};

const flagsSchema = z.object({
  ...registryFlagsShape,
  ...logFlagsShape,
  dockerfile: z.string().min(1),
  context: z.string().min(1),
  contextSubPath: z.string().optional(),
  git: z.array(z.string()),
  destination: z.array(z.string()),
  push: z.boolean(),
  tarPath: z.string().optional(),
  ociLayoutPath: z.string().optional(),
  digestFile: z.string().optional(),
  imageNameWithDigestFile: z.string().optional(),
  imageNameTagWithDigestFile: z.string().optional(),
  buildArg: z.array(z.string()),
  target: z.string().optional(),
  label: z.array(z.string()),
  customPlatform: z.string().optional(),
  platform: z.string().optional(),
  cleanup: z.boolean(),
  kanikoDir: z.string().optional(),
  cache: z.boolean(),
  cacheRepo: z.string().optional(),
  cacheTtl: z.string(),
  cacheRunLayers: z.boolean(),
  cacheCopyLayers: z.boolean(),
  pushCache: z.boolean(),
  compressedCaching: z.boolean(),
  cacheDir: z.string().optional(),
  reproducible: z.boolean(),
  singleSnapshot: z.boolean(),
  forceBuildMetadata: z.boolean(),
  imageFsExtractRetry: z.string().regex(/^\d+$/, 'must be a whole number'),
  bucket: z.string().optional(),
  useNewRun: z.boolean(),
  snapshotMode: z.enum(['full', 'redo', 'time']),
  skipUnusedStages: z.boolean(),
  ignorePath: z.array(z.string()),
  ignoreVarRun: z.boolean(),
  force: z.boolean(),
  pushRetry: z.string().regex(/^\d+$/, 'must be a whole number'),
  imageDownloadRetry: z.string().regex(/^\d+$/, 'must be a whole number'),
  connectTimeout: z.string(),
  archiveMaxMib: z.string().regex(/^[1-9][0-9]*$/, 'must be a whole number of MiB'),
  archiveMaxEntries: z.string().regex(/^[1-9][0-9]*$/, 'must be a whole number'),
  idleTimeout: z.string(),
  compression: z.enum(['gzip', 'zstd']),
  compressionLevel: z.string().regex(/^-?[0-9]+$/, 'must be a whole number').optional(),
  runMode: z.enum(['auto', 'sandbox', 'container']),
  runIsolation: z.enum(['auto', 'required', 'off']),
  snapshotStrategy: z.enum(['auto', 'overlay', 'walk']),
  workDir: z.string().optional(),
  rootfsTmpfs: z.enum(['auto', 'always', 'never']),
  rootfsTmpfsSize: z.string().regex(/^[1-9][0-9]*$/, 'must be a whole number of MiB').optional(),
  jobs: z.string().regex(/^[1-9][0-9]*$/, 'must be a whole number of stages, at least 1').optional(),
  secret: z.array(z.string()),
  ssh: z.array(z.string()),
  mountCacheDir: z.string().optional(),
  skipPushPermissionCheck: z.boolean(),
  pushIgnoreImmutableTagErrors: z.boolean(),
  progress: z.enum(['auto', 'tty', 'plain', 'none']),
  summaryFile: z.string().min(1).optional(),
  dryRun: z.boolean(),
});
export type ExecutorFlags = z.infer<typeof flagsSchema>;

export function validateFlags(raw: Record<string, unknown>): ExecutorFlags {
  return flagsFrom(flagsSchema.safeParse(raw));
}

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly homeDir: string;
  readonly tmpDir: string;
  readonly hostPlatform: Platform;
  readonly readStdin: () => Promise<string>;
  /** Standard input as a stream (`--context tar://stdin`). */
  readonly openStdin?: () => Readable;
  readonly exists: (path: string) => boolean;
  /** Whether `path` is a directory (the default --cache-dir is read only then). */
  readonly isDirectory: (path: string) => boolean;
  /** The executor's uid (picks the default --mount-cache-dir); unknown is taken as non-root. */
  readonly uid?: number;
  readonly gid?: number;
  /** The machine's cores: `--jobs`'s default (one when unknown). */
  readonly cores?: number;
}

/**
 * The default --jobs on `cores` cores: twice the cores at once, and up to four times while a core sits
 * idle (stages whose RUNs sleep or wait on the network). Not the cores alone: three stages of CPU on
 * two cores would then take two rounds, the third alone on one core while the other idles (1.5x over
 * one at a time at best); started together, the kernel shares both cores among them and they end after
 * 1.5 rounds. For equal stages, twice the cores is never slower than the cores: each full round of
 * 2N takes what two rounds of N take, and a last round of at most N takes one (BuildKit sets no limit
 * at all). --jobs N is a hard limit, for a machine whose memory cannot hold 2N RUNs at once.
 */
export function defaultJobs(cores: number): { jobs: number; jobsWhenIdle: number } {
  const n = Math.max(1, Math.floor(cores));
  return { jobs: 2 * n, jobsWhenIdle: 4 * n };
}

/** kaniko's git credentials: GIT_TOKEN as the username alone, else GIT_USERNAME and GIT_PASSWORD. */
function gitAuth(env: Readonly<Record<string, string | undefined>>): GitAuth | undefined {
  const token = env['GIT_TOKEN'] ?? '';
  if (token !== '') return { username: token, password: '' };
  const username = env['GIT_USERNAME'] ?? '';
  const password = env['GIT_PASSWORD'] ?? '';
  return username !== '' || password !== '' ? { username, password } : undefined;
}

function keyValue(flag: string, s: string): [string, string] {
  const i = s.indexOf('=');
  if (i <= 0) throw new UsageError(`invalid ${flag} ${JSON.stringify(s)}: want KEY=VALUE`);
  return [s.slice(0, i), s.slice(i + 1)];
}

export function parseBuildArgs(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  for (const a of args) {
    const i = a.indexOf('=');
    if (i === 0) throw new UsageError(`invalid --build-arg ${JSON.stringify(a)}: empty name`);
    // `--build-arg NAME` takes the value from the environment, as docker does.
    if (i < 0) out.set(a, env[a]);
    else out.set(a.slice(0, i), a.slice(i + 1));
  }
  return out;
}

function chooseRunMode(flags: ExecutorFlags, env: Environment['env']): RunMode {
  const inExecutorImage = env['KILN_EXECUTOR_IMAGE'] === '1';
  if (flags.runMode === 'auto') return inExecutorImage ? 'container' : 'sandbox';
  if (flags.runMode === 'container' && !inExecutorImage && !flags.force) {
    throw new UsageError(
      'container mode replaces the files under / and is meant for the executor image; use --run-mode=sandbox, or --force if this machine is disposable',
    );
  }
  return flags.runMode;
}

export function dockerConfigDir(e: Pick<Environment, 'env' | 'exists' | 'homeDir'>): string | undefined {
  const fromEnv = e.env['DOCKER_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (e.exists('/kaniko/.docker/config.json')) return '/kaniko/.docker';
  return join(e.homeDir, '.docker');
}

/** kaniko's GitLab helper reads these three; all must be set for it to apply. */
function gitLabCi(env: Environment['env']): GitLabCiCredentials | undefined {
  const registry = env['CI_REGISTRY'];
  const username = env['CI_REGISTRY_USER'];
  const password = env['CI_REGISTRY_PASSWORD'];
  if (registry === undefined || registry === '' || username === undefined || password === undefined) return undefined;
  return { registry, username, password };
}

function clientCertificates(values: readonly string[]): Map<string, ClientCertificatePaths> {
  return new Map(
    values.map((v) => {
      const [host, paths] = keyValue('--registry-client-cert', v);
      const [cert, key, ...rest] = paths.split(',');
      if (cert === undefined || cert === '' || key === undefined || key === '' || rest.length > 0) {
        throw new UsageError(`invalid --registry-client-cert ${JSON.stringify(v)}: want registry=cert.pem,key.pem`);
      }
      return [host, { cert, key }];
    }),
  );
}

/**
 * Cache mounts must outlive the build, so never the per-build temp work dir. Container mode keeps them
 * in kaniko's dir (ignored by snapshots, a volume users can keep). Sandbox mode uses the user's cache
 * dir; as root /var/cache/kiln/mounts instead of /root/.cache, because a non-root USER's RUN runs bwrap
 * as that uid, which must be able to reach the directory it binds and cannot enter /root (0700).
 */
/** KILN_ROOTFS_TMPFS_BUDGET_MIB: a whole number of MiB, or unset. */
function tmpfsBudget(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^[0-9]+$/.test(value)) throw new UsageError(`KILN_ROOTFS_TMPFS_BUDGET_MIB: must be a whole number of MiB, not ${JSON.stringify(value)}`);
  return Number(value);
}

function defaultMountCacheDir(runMode: RunMode, workDir: string, e: Environment): string {
  if (runMode === 'container') return join(workDir, 'cache');
  const xdg = e.env['XDG_CACHE_HOME'];
  if (xdg !== undefined && xdg !== '') return join(xdg, 'kiln', 'mounts');
  if (e.uid === 0) return '/var/cache/kiln/mounts';
  return join(e.homeDir, '.cache', 'kiln', 'mounts');
}

/** `--connect-timeout 30s` -> 30000: a positive Go duration, whole milliseconds. */
/** `--connect-timeout` / `--idle-timeout` (executor and warmer): a Go duration -> milliseconds. */
export function waitFlag(name: string, text: string): number {
  const ns = parseGoDuration(text);
  if (ns === undefined || ns < 1_000_000) throw new UsageError(`invalid --${name} ${JSON.stringify(text)}: want a Go duration of at least 1ms, such as 30s or 2m`);
  return Math.round(ns / 1_000_000);
}

/**
 * `--cache` and its flags -> the cache settings, or undefined without `--cache` (kaniko ignores
 * `--cache-repo` then). No `--cache-repo`: kaniko's `<first destination's repository>/cache`; with
 * `--no-push` there is no destination to infer it from, and kaniko refuses the flags, as kiln does.
 */
function layerCacheSettings(flags: ExecutorFlags, destinations: readonly Reference[], noPush: boolean): LayerCacheSettings | undefined {
  const ttlNs = parseGoDuration(flags.cacheTtl);
  if (ttlNs === undefined || ttlNs < 0) throw new UsageError(`invalid --cache-ttl ${JSON.stringify(flags.cacheTtl)}: want a Go duration such as 336h or 6h30m`);
  if (!flags.cache) return undefined;
  let repo: { registry: string; repository: string };
  if (flags.cacheRepo !== undefined && flags.cacheRepo !== '') {
    if (flags.cacheRepo.startsWith('oci:')) throw new UsageError('--cache-repo oci:<path> (a cache in an OCI layout) is not supported; give a registry repository');
    const ref = parseReference(flags.cacheRepo, { defaultTag: false });
    if (ref.tag !== undefined || ref.digest !== undefined) {
      throw new UsageError(`invalid --cache-repo ${JSON.stringify(flags.cacheRepo)}: give a repository without tag or digest (cache images are tagged with their key)`);
    }
    repo = { registry: ref.registry, repository: ref.repository };
  } else {
    const first = destinations[0];
    if (noPush || first === undefined) throw new UsageError('if using cache with --no-push, specify cache repo with --cache-repo');
    repo = { registry: first.registry, repository: `${first.repository}/cache` };
  }
  return {
    repo,
    ttlMs: ttlNs / 1e6,
    runLayers: flags.cacheRunLayers,
    copyLayers: flags.cacheCopyLayers,
    push: flags.pushCache,
  };
}

/**
 * kaniko's `--cache-dir` defaults to /cache and is always consulted. kiln reads the default only when
 * /cache is a directory, so a run without one makes no lookup and behaves as it did before the cache.
 */
export const DEFAULT_CACHE_DIR = '/cache';

function baseImageCacheSettings(flags: ExecutorFlags, e: Environment): BaseImageCacheSettings | undefined {
  const dir = flags.cacheDir ?? (e.isDirectory(DEFAULT_CACHE_DIR) ? DEFAULT_CACHE_DIR : undefined);
  if (dir === undefined || dir === '') return undefined;
  // Already validated by layerCacheSettings.
  const ttlNs = parseGoDuration(flags.cacheTtl) ?? 0;
  return { dir: resolve(e.cwd, dir), ttlMs: ttlNs / 1e6 };
}

export async function buildRequestFrom(flags: ExecutorFlags, e: Environment): Promise<BuildRequest> {
  const destinations: Reference[] = flags.destination.map((d) => parseReference(d));
  const noPush = !flags.push;
  if (destinations.length === 0 && !noPush) {
    throw new UsageError('you must provide --destination, or use --no-push');
  }
  const layerCache = layerCacheSettings(flags, destinations, noPush);
  const runMode = chooseRunMode(flags, e.env);
  const labels = new Map(flags.label.map((l) => keyValue('--label', l)));
  if (flags.customPlatform !== undefined && flags.platform !== undefined && flags.customPlatform !== flags.platform) {
    throw new UsageError('--platform and --custom-platform name different platforms');
  }
  const platformFlag = flags.customPlatform ?? flags.platform;
  const platform = platformFlag !== undefined ? parsePlatform(platformFlag) : e.hostPlatform;
  // kaniko's hidden --bucket (resolveSourceContext): the context is that bucket's context.tar.gz, on
  // Cloud Storage unless it names a scheme (`s3://bucket`), and it wins over --context.
  const contextSpec = flags.bucket !== undefined && flags.bucket !== '' ? (flags.bucket.includes('://') ? flags.bucket : `gs://${flags.bucket}`) : flags.context;
  parseContextSpec(contextSpec);
  if (flags.dockerfile === '-' && /^tar:\/\/stdin$/i.test(flags.context)) {
    throw new UsageError('--dockerfile - and --context tar://stdin both read standard input: give one of them a file');
  }
  const stdinDockerfile = flags.dockerfile === '-' ? await e.readStdin() : undefined;
  let workDir: string;
  let ownsWorkDir = false;
  // kaniko: --kaniko-dir takes precedence over the KANIKO_DIR environment variable.
  if (runMode === 'container') workDir = flags.kanikoDir ?? (e.env['KANIKO_DIR'] !== undefined && e.env['KANIKO_DIR'] !== '' ? e.env['KANIKO_DIR'] : '/kaniko');
  else if (flags.workDir !== undefined) workDir = flags.workDir;
  else {
    workDir = await mkdtemp(join(e.tmpDir, 'kiln-'));
    // A RUN under a non-root USER runs bwrap as that user, who must be able to reach the rootfs.
    await chmod(workDir, 0o755);
    ownsWorkDir = true;
  }
  return {
    contextSpec,
    contextFetch: {
      subPath: flags.contextSubPath,
      git: parseGitOptions(flags.git),
      gitAuth: gitAuth(e.env),
      gitPullMethod: e.env['GIT_PULL_METHOD'] === 'http' ? 'http' : 'https',
      stdin: e.openStdin,
      hostEnv: e.env,
      owner: e.uid === undefined || e.uid === 0 ? undefined : { uid: e.uid, gid: e.gid ?? e.uid },
    },
    dockerfileSpec: flags.dockerfile,
    stdinDockerfile,
    cwd: e.cwd,
    buildArgs: parseBuildArgs(flags.buildArg, e.env),
    target: flags.target,
    labels,
    platform,
    buildPlatform: e.hostPlatform,
    runMode,
    runIsolation: flags.runIsolation,
    workDir,
    ownsWorkDir,
    rootfsTmpfs: flags.rootfsTmpfs,
    rootfsTmpfsSizeMiB: flags.rootfsTmpfsSize === undefined ? undefined : Number(flags.rootfsTmpfsSize),
    rootfsTmpfsBudgetMiB: tmpfsBudget(e.env['KILN_ROOTFS_TMPFS_BUDGET_MIB']),
    // One path for every kiln on the machine, whatever its TMPDIR: /run/lock (FHS) where there is one.
    tmpfsLockFile: join(e.isDirectory('/run/lock') ? '/run/lock' : e.tmpDir, 'kiln-rootfs-tmpfs.lock'),
    archiveLimits: { maxBytes: Number(flags.archiveMaxMib) * 1024 ** 2, maxEntries: Number(flags.archiveMaxEntries) },
    waits: { connectMs: waitFlag('connect-timeout', flags.connectTimeout), idleMs: waitFlag('idle-timeout', flags.idleTimeout) },
    isRoot: e.uid === 0,
    ...(flags.jobs === undefined ? defaultJobs(e.cores ?? 1) : { jobs: Number(flags.jobs), jobsWhenIdle: Number(flags.jobs) }),
    ignorePaths: [...flags.ignorePath, ...(flags.ignoreVarRun ? ['/var/run'] : [])],
    registry: {
      insecurePush: flags.insecure,
      insecurePull: flags.insecurePull,
      insecureRegistries: flags.insecureRegistry,
      skipTlsVerifyPush: flags.skipTlsVerify,
      skipTlsVerifyPull: flags.skipTlsVerifyPull,
      skipTlsVerifyRegistries: flags.skipTlsVerifyRegistry,
      dockerConfigDir: dockerConfigDir(e),
      pushRetry: Number(flags.pushRetry),
      // kaniko's --image-fs-extract-retry retried extracting layers read from the network; kiln
      // verifies and spools base layers as it extracts them, so a retry there is a download retry.
      imageDownloadRetry: Math.max(Number(flags.imageDownloadRetry), Number(flags.imageFsExtractRetry)),
      skipPushPermissionCheck: flags.skipPushPermissionCheck,
      pushIgnoreImmutableTagErrors: flags.pushIgnoreImmutableTagErrors,
      ...registryRoutesFrom(flags, e.env),
    },
    outputs: {
      destinations,
      noPush,
      tarPath: flags.tarPath,
      ociLayoutPath: flags.ociLayoutPath,
      digestFile: flags.digestFile,
      imageNameWithDigestFile: flags.imageNameWithDigestFile,
      imageNameTagWithDigestFile: flags.imageNameTagWithDigestFile,
    },
    cleanup: flags.cleanup,
    reproducible: flags.reproducible,
    compression: layerCodec(flags.compression, flags.compressionLevel === undefined ? undefined : Number(flags.compressionLevel)),
    singleSnapshot: flags.singleSnapshot,
    forceBuildMetadata: flags.forceBuildMetadata,
    snapshotMode: flags.snapshotMode,
    snapshotStrategy: flags.snapshotStrategy,
    skipUnusedStages: flags.skipUnusedStages,
    secrets: new Map(flags.secret.map((s) => parseSecretFlag(s, e.env)).map((s) => [s.id, s.source])),
    ssh: parseSshFlags(flags.ssh, e.env, e.cwd),
    mountCacheDir: resolve(e.cwd, flags.mountCacheDir ?? defaultMountCacheDir(runMode, workDir, e)),
    layerCache,
    baseImageCache: baseImageCacheSettings(flags, e),
    logFormat: flags.logFormat,
    summaryFile: flags.summaryFile === undefined ? undefined : resolve(e.cwd, flags.summaryFile),
    dryRun: flags.dryRun,
  };
}
