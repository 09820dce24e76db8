// What one executor invocation asks for, after the CLI has validated argv and env. A plain value.
import type { Readable } from 'node:stream';
import type { LayerCodec } from '../blob/compression.js';
import type { GitOptions } from '../context/context-spec.js';
import type { GitAuth } from '../context/fetch-context.js';
import type { SecretSource } from '../instructions/run/secret-source.js';
import type { SshSource } from '../instructions/run/ssh-source.js';
import type { Reference } from '../oci/reference.js';
import type { GitLabCiCredentials } from '../registry/keychain.js';
import type { RegistryMap } from '../registry/registry-map.js';
import type { ClientCertificatePaths } from '../registry/tls-files.js';
import type { Platform } from '../oci/schemas.js';
import type { TmpfsPolicy } from './rootfs-area.js';

export type RunMode = 'sandbox' | 'container';

export interface RegistryAccess {
  /** Plain HTTP allowed for pushes to every registry (`--insecure`). */
  readonly insecurePush: boolean;
  /** Plain HTTP allowed for pulls from every registry (`--insecure-pull`). */
  readonly insecurePull: boolean;
  /** Registries where plain HTTP is allowed for both (`--insecure-registry`). */
  readonly insecureRegistries: readonly string[];
  readonly skipTlsVerifyPush: boolean;
  readonly skipTlsVerifyPull: boolean;
  readonly skipTlsVerifyRegistries: readonly string[];
  /** Directory holding config.json (`$DOCKER_CONFIG`, else /kaniko/.docker, else ~/.docker). */
  readonly dockerConfigDir: string | undefined;
  readonly pushRetry: number;
  readonly imageDownloadRetry: number;
  /** `--skip-push-permission-check`: do not probe the destinations before building. */
  readonly skipPushPermissionCheck: boolean;
  /** `--push-ignore-immutable-tag-errors`. */
  readonly pushIgnoreImmutableTagErrors: boolean;
  /** `--registry-map` with `--registry-mirror` folded in as `index.docker.io=mirror`, as kaniko does. */
  readonly registryMap: RegistryMap;
  readonly skipDefaultRegistryFallback: boolean;
  /** `--registry-certificate registry=ca.pem`. */
  readonly registryCertificates: ReadonlyMap<string, string>;
  /** `--registry-client-cert registry=cert.pem,key.pem`. */
  readonly registryClientCertificates: ReadonlyMap<string, ClientCertificatePaths>;
  /** kaniko's GitLab helper: CI_REGISTRY, CI_REGISTRY_USER, CI_REGISTRY_PASSWORD from the environment. */
  readonly gitLabCi: GitLabCiCredentials | undefined;
  /** The environment the clouds' built-in registry logins read (AWS_*, GOOGLE_*, AZURE_*): src/registry/cloud-keychain.ts. */
  readonly cloudEnv: Readonly<Record<string, string | undefined>>;
}

export interface Outputs {
  readonly destinations: readonly Reference[];
  readonly noPush: boolean;
  readonly tarPath: string | undefined;
  readonly ociLayoutPath: string | undefined;
  readonly digestFile: string | undefined;
  readonly imageNameWithDigestFile: string | undefined;
  readonly imageNameTagWithDigestFile: string | undefined;
}

/** kaniko's layer cache (`--cache` and the flags around it); absent without `--cache`. */
export interface LayerCacheSettings {
  /** Where cache images live: `<repo>:<key>` (`--cache-repo`, else `<first destination>/cache`). */
  readonly repo: { readonly registry: string; readonly repository: string };
  /** `--cache-ttl`: a cache image whose config `created` is older is a miss. */
  readonly ttlMs: number;
  /** `--cache-run-layers`: RUN layers are looked up and stored. */
  readonly runLayers: boolean;
  /** `--cache-copy-layers`: COPY and ADD layers are looked up and stored. */
  readonly copyLayers: boolean;
  /** false with `--no-push-cache`: look up only. */
  readonly push: boolean;
}

/** kaniko's local base-image cache: `<dir>/<manifest digest>` tarballs written by the warmer. */
export interface BaseImageCacheSettings {
  readonly dir: string;
  /** `--cache-ttl`: an entry whose file is older is not used. */
  readonly ttlMs: number;
}

export interface ContextFetchSettings {
  readonly subPath: string | undefined;
  /** `--git` options for a git:// context. */
  readonly git: GitOptions;
  /** kaniko's GIT_USERNAME / GIT_PASSWORD, or GIT_TOKEN as the username. */
  readonly gitAuth: GitAuth | undefined;
  /** kaniko's GIT_PULL_METHOD (https unless it says http). */
  readonly gitPullMethod: 'https' | 'http';
  /** Standard input, for `tar://stdin`. */
  readonly stdin: (() => Readable) | undefined;
  /** The environment git runs with. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** Owner of unpacked context files when kiln is not root (it cannot give them the archive's). */
  readonly owner: { readonly uid: number; readonly gid: number } | undefined;
}

export interface BuildRequest {
  /** `--context` as given (a path or `dir://path`); resolved against `cwd` by the build. */
  readonly contextSpec: string;
  /** How a `tar://`, `git://` or `https://` context is fetched, and `--context-sub-path`. */
  readonly contextFetch: ContextFetchSettings;
  /** `--dockerfile` as given: relative to cwd, else to the context; absolute; or `-` for stdin. */
  readonly dockerfileSpec: string;
  /** The Dockerfile text when it came from stdin. */
  readonly stdinDockerfile: string | undefined;
  readonly cwd: string;
  readonly buildArgs: ReadonlyMap<string, string | undefined>;
  readonly target: string | undefined;
  readonly labels: ReadonlyMap<string, string>;
  /** The platform images are built for (`--custom-platform`, else the host's). */
  readonly platform: Platform;
  readonly buildPlatform: Platform;
  readonly runMode: RunMode;
  /** Container mode: whether each RUN runs isolated by kiln-isolate (`auto`: where the runtime allows it). */
  readonly runIsolation: 'auto' | 'required' | 'off';
  /** Where kiln keeps its own state: rootfs (sandbox mode), layers, downloads. */
  readonly workDir: string;
  /** Whether `workDir` was created for this build and is removed after it. */
  readonly ownsWorkDir: boolean;
  /** `--rootfs-tmpfs` (kiln): whether stage filesystems go on a private tmpfs (sandbox mode, root). */
  readonly rootfsTmpfs: TmpfsPolicy;
  /** `--rootfs-tmpfs-size` (kiln), in MiB. */
  readonly rootfsTmpfsSizeMiB: number | undefined;
  /** KILN_ROOTFS_TMPFS_BUDGET_MIB: the memory all kiln builds on the machine may promise their tmpfs together. */
  readonly rootfsTmpfsBudgetMiB: number | undefined;
  /** The file kiln builds on this machine lock while they decide on a tmpfs (/run/lock when it exists). */
  readonly tmpfsLockFile: string;
  /** `--jobs` (kiln): stages built at once (container mode: one of them on `/` at a time); default: twice the cores (validate-flags.ts, defaultJobs). */
  readonly jobs: number;
  /**
   * Stages built at once while a core sits idle (their RUNs sleep or wait on the network): four times
   * the cores with the default --jobs, `jobs` itself when --jobs is given (stage-scheduler.ts, cpu-idle.ts).
   */
  readonly jobsWhenIdle: number;
  /** `--archive-max-mib`, `--archive-max-entries`. */
  readonly archiveLimits: { readonly maxBytes: number; readonly maxEntries: number };
  /** `--connect-timeout`, `--idle-timeout` in ms (registry/bounded-agent.ts). */
  readonly waits: { readonly connectMs: number; readonly idleMs: number };
  /** Whether kiln runs as root (it may mount). */
  readonly isRoot: boolean;
  readonly ignorePaths: readonly string[];
  readonly registry: RegistryAccess;
  readonly outputs: Outputs;
  readonly cleanup: boolean;
  readonly reproducible: boolean;
  /** `--compression` and `--compression-level`: how new layers are compressed. */
  readonly compression: LayerCodec;
  readonly singleSnapshot: boolean;
  /** kaniko's `--force-build-metadata`: an (empty) layer for every instruction, metadata ones too. */
  readonly forceBuildMetadata: boolean;
  /** kaniko's `--snapshot-mode` (see src/snapshot/snapshotter.ts for kiln's reading of it). */
  readonly snapshotMode: 'full' | 'redo' | 'time';
  /** `--snapshot-strategy` (kiln): how a RUN's changes are found; overlay needs sandbox mode and root. */
  readonly snapshotStrategy: 'auto' | 'overlay' | 'walk';
  readonly skipUnusedStages: boolean;
  /** `--secret` (BuildKit's flag): sources of RUN --mount=type=secret, by id. */
  readonly secrets: ReadonlyMap<string, SecretSource>;
  /** `--ssh` (BuildKit's flag): SSH agents for RUN --mount=type=ssh, ids unique. */
  readonly ssh: readonly SshSource[];
  /** `--mount-cache-dir` (kiln): where RUN --mount=type=cache directories are kept between builds. */
  readonly mountCacheDir: string;
  /** `--cache`: the registry layer cache, when enabled. */
  readonly layerCache: LayerCacheSettings | undefined;
  /** `--cache-dir`: kaniko's local base-image cache (the warmer's), when one is to be read. */
  readonly baseImageCache: BaseImageCacheSettings | undefined;
  /** `--log-format`: json adds the build's events (log/events.ts) and fields to every line. */
  readonly logFormat: 'text' | 'color' | 'json';
  /** `--summary-file` (kiln): where the build summary goes as JSON, on success and on failure. */
  readonly summaryFile: string | undefined;
  /** `--dry-run` (kiln): plan, resolve the bases, check push permission, print the plan; nothing else. */
  readonly dryRun: boolean;
}
