// The executor's flags, with kaniko's names and meanings. Flags kiln adds are marked "(kiln)".
import { InvalidArgumentError, Option } from 'commander';
import { EXECUTOR_GROUPS, EXECUTOR_KILN_FLAGS, groupFlags } from './flag-groups.js';
import { GoStyleCommand } from './go-style-argv.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Boolean flags and their defaults; kaniko users also write them as `--flag=true|false`. */
export const BOOLEAN_FLAGS: ReadonlyMap<string, boolean> = new Map([
  ['no-push', false],
  ['insecure', false],
  ['insecure-pull', false],
  ['skip-tls-verify', false],
  ['skip-tls-verify-pull', false],
  ['cache', false],
  ['cache-run-layers', true],
  ['cache-copy-layers', false],
  ['no-push-cache', false],
  ['compressed-caching', true],
  ['cleanup', false],
  ['reproducible', false],
  ['single-snapshot', false],
  ['force-build-metadata', false],
  ['use-new-run', false],
  ['skip-unused-stages', true],
  ['force', false],
  ['log-timestamp', false],
  ['ignore-var-run', true],
  ['skip-push-permission-check', false],
  ['skip-default-registry-fallback', false],
  ['push-ignore-immutable-tag-errors', false],
  ['dry-run', false],
]);

export interface ParsedFlags {
  dockerfile: string;
  context: string;
  forceBuildMetadata: boolean;
  imageFsExtractRetry: string;
  bucket?: string;
  contextSubPath?: string;
  git: string[];
  destination: string[];
  /** false with --no-push */
  push: boolean;
  tarPath?: string;
  ociLayoutPath?: string;
  digestFile?: string;
  imageNameWithDigestFile?: string;
  imageNameTagWithDigestFile?: string;
  insecure: boolean;
  insecurePull: boolean;
  insecureRegistry: string[];
  skipTlsVerify: boolean;
  skipTlsVerifyPull: boolean;
  skipTlsVerifyRegistry: string[];
  buildArg: string[];
  target?: string;
  label: string[];
  customPlatform?: string;
  platform?: string;
  verbosity: string;
  logFormat: string;
  logTimestamp: boolean;
  cleanup: boolean;
  kanikoDir?: string;
  cache: boolean;
  cacheRepo?: string;
  cacheTtl: string;
  cacheRunLayers: boolean;
  cacheCopyLayers: boolean;
  /** false with --no-push-cache */
  pushCache: boolean;
  compressedCaching: boolean;
  cacheDir?: string;
  reproducible: boolean;
  singleSnapshot: boolean;
  useNewRun: boolean;
  snapshotMode: string;
  skipUnusedStages: boolean;
  ignorePath: string[];
  ignoreVarRun: boolean;
  force: boolean;
  pushRetry: string;
  imageDownloadRetry: string;
  connectTimeout: string;
  archiveMaxMib: string;
  archiveMaxEntries: string;
  idleTimeout: string;
  compression: string;
  compressionLevel?: string;
  runMode: string;
  runIsolation: string;
  snapshotStrategy: string;
  workDir?: string;
  rootfsTmpfs: string;
  rootfsTmpfsSize?: string;
  jobs?: string;
  secret: string[];
  ssh: string[];
  mountCacheDir?: string;
  skipPushPermissionCheck: boolean;
  pushIgnoreImmutableTagErrors: boolean;
  registryMirror: string[];
  registryMap: string[];
  skipDefaultRegistryFallback: boolean;
  registryCertificate: string[];
  registryClientCert: string[];
  progress: string;
  summaryFile?: string;
  dryRun: boolean;
}

const LEVELS = ['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

/**
 * `-v`/`--verbosity` as kaniko reads it (logrus.ParseLevel): any case, and `warning` for `warn`.
 */
export function verbosityOption(): Option {
  return new Option('-v, --verbosity <level>', `log level (${LEVELS.join(', ')})`).default('info').argParser((value: string) => {
    const v = value.toLowerCase();
    const level = v === 'warning' ? 'warn' : v;
    if (!(LEVELS as readonly string[]).includes(level)) throw new InvalidArgumentError(`Allowed choices are ${LEVELS.join(', ')}.`);
    return level;
  });
}

export function executorCommand(): GoStyleCommand {
  const cmd = new GoStyleCommand('executor')
    .description('Build a container image from a Dockerfile and push it, without a daemon (kaniko-compatible).\n`executor version` prints the version.')
    .option('-f, --dockerfile <path>', 'path to the Dockerfile (relative to the context, absolute, - for stdin, or an http(s):// URL)', 'Dockerfile')
    .option('--context-sub-path <path>', 'sub directory of the context to use as the build context (after a tar, git or https context is fetched)')
    .option('--git <options>', 'git context options: branch=NAME,single-branch=BOOL,recurse-submodules=BOOL,insecure-skip-tls=BOOL (repeatable)', collect, [])
    .option('-c, --context <spec>', 'build context: a directory (PATH or dir://PATH), tar://PATH or tar://stdin (a tar archive, gzip or plain), git://HOST/REPO[#REF[#COMMIT]], an https:// URL of a tar archive, s3://BUCKET/KEY, gs://BUCKET/PATH, or https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH', '/workspace/')
    .option('-d, --destination <ref>', 'registry/repo:tag to push to (repeatable)', collect, [])
    .option('--no-push', 'do not push the image to the registry')
    .option('--tar-path <path>', 'write the image as a docker-save tarball to this path')
    .option('--oci-layout-path <path>', 'write the image to an OCI image layout at this path')
    .option('--digest-file <path>', 'write the manifest digest of the built image to this file')
    .option('--image-name-with-digest-file <path>', 'write registry/repo@digest for each destination to this file')
    .option('--image-name-tag-with-digest-file <path>', 'write the destinations with tags and the digest as JSON to this file')
    .option('--insecure', 'push to registries over plain HTTP', false)
    .option('--insecure-pull', 'pull from registries over plain HTTP', false)
    .option('--insecure-registry <host>', 'registry to reach over plain HTTP (repeatable)', collect, [])
    .option('--skip-tls-verify', 'do not verify TLS certificates when pushing', false)
    .option('--skip-tls-verify-pull', 'do not verify TLS certificates when pulling', false)
    .option('--skip-tls-verify-registry <host>', 'registry whose TLS certificate is not verified (repeatable)', collect, [])
    .option('--build-arg <arg>', 'KEY=VALUE, or KEY to take the value from the environment (repeatable)', collect, [])
    .option('--target <stage>', 'build this stage instead of the last one')
    .option('--label <label>', 'KEY=VALUE label to add to the image (repeatable)', collect, [])
    .option('--custom-platform <platform>', 'os/arch[/variant] to build for (default: this machine)')
    .option('--platform <platform>', '(kiln) docker build\'s name for --custom-platform')
    .addOption(verbosityOption())
    .addOption(new Option('--log-format <format>', 'log format').choices(['text', 'color', 'json']).default('text'))
    .option('--log-timestamp', 'print timestamps in log lines', false)
    .option('--cleanup', 'clean the filesystem at the end of the build (container mode)', false)
    .option('--kaniko-dir <dir>', "kiln's own directory in container mode (default: $KANIKO_DIR, else /kaniko)")
    .option('--cache', 'use the registry layer cache: RUN (and with --cache-copy-layers COPY/ADD) layers are looked up in and pushed to --cache-repo', false)
    .option('--cache-repo <repo>', 'repository for cached layers, as <repo>:<key> (default: <first destination\'s repository>/cache)')
    .option('--cache-ttl <duration>', 'Go duration after which a cached layer or --cache-dir image is stale (e.g. 6h30m)', '336h')
    .option('--cache-run-layers', 'cache RUN layers', true)
    .option('--no-cache-run-layers', 'do not cache RUN layers')
    .option('--cache-copy-layers', 'cache COPY and ADD layers too', false)
    .option('--no-push-cache', 'look up cached layers but never push new ones')
    .option('--compressed-caching', 'accepted for compatibility: kiln streams layers, so compressing for the cache costs no memory either way', true)
    .option('--no-compressed-caching', 'accepted for compatibility; changes nothing')
    .option('--cache-dir <dir>', 'kaniko\'s local base-image cache, written by the warmer: base images found there are not downloaded (default: /cache, when it exists)')
    .option('--reproducible', 'strip timestamps from the image for reproducible digests', false)
    .option('--single-snapshot', 'take one snapshot at the end of the build', false)
    .option('--force-build-metadata', 'add a layer for every instruction, an empty one where it changed no file (kaniko)', false)
    .option('--use-new-run', 'accepted for compatibility; kiln always detects changes from file metadata', false)
    .addOption(new Option('--snapshot-mode <mode>', 'how changed files are detected').choices(['full', 'redo', 'time']).default('full'))
    .option('--skip-unused-stages', 'build only the stages the target needs (kiln: on by default)', true)
    .option('--no-skip-unused-stages', 'build every stage of the Dockerfile')
    .option('--ignore-path <path>', 'path to leave out of snapshots (repeatable)', collect, [])
    .option('--ignore-var-run', 'leave /var/run out of snapshots', true)
    .option('--no-ignore-var-run', 'snapshot /var/run too')
    .option('--force', 'allow container mode outside kiln\'s executor image (it replaces files under /)', false)
    .option('--push-retry <n>', 'retries for a failed push', '0')
    .option('--image-download-retry <n>', 'retries for a failed base image download', '0')
    .option('--connect-timeout <duration>', '(kiln) Go duration a TCP connect plus TLS handshake may take, for registries, token servers, https contexts and ADD URLs; retried as the retry flags say', '30s')
    .option('--idle-timeout <duration>', '(kiln) Go duration a connected peer may stay silent: before the response headers and within a body', '60s')
    .option('--archive-max-mib <MiB>', '(kiln) most a context tar or an ADD archive may unpack to; past it the build fails (a gzip bomb)', '32768')
    .option('--archive-max-entries <n>', '(kiln) most entries a context tar or an ADD archive may hold', '4000000')
    .option('--image-fs-extract-retry <n>', 'retries for a failed base image extraction (kiln extracts while it downloads: the same as --image-download-retry)', '0')
    .addOption(new Option('-b, --bucket <name>', 'bucket holding the context as context.tar.gz: gs://BUCKET by default, or s3://BUCKET (kaniko)').hideHelp())
    .addOption(new Option('--compression <codec>', 'compression of new layers').choices(['gzip', 'zstd']).default('gzip'))
    .option('--compression-level <n>', 'compression level of new layers (gzip 0-9, zstd 1-19; -1: the default)')
    .option('--skip-push-permission-check', 'do not check push permission on the destinations before building', false)
    .option('--push-ignore-immutable-tag-errors', 'do not fail when the registry refuses to overwrite an immutable tag', false)
    .option('--registry-mirror <host>', 'registry to pull Docker Hub images from first (repeatable; also KANIKO_REGISTRY_MIRROR)', collect, [])
    .option('--registry-map <map>', 'original=mirror[;...]: registries to pull from before the original (repeatable; also KANIKO_REGISTRY_MAP)', collect, [])
    .option('--skip-default-registry-fallback', 'fail when no mirror or mapped registry has the image instead of pulling from the original', false)
    .option('--registry-certificate <map>', 'registry=path of a CA certificate to trust for that registry (repeatable)', collect, [])
    .option('--registry-client-cert <map>', 'registry=cert,key: client certificate for mutual TLS with that registry (repeatable)', collect, [])
    .addOption(new Option('--snapshot-strategy <strategy>', '(kiln) overlay: RUN on an overlay mount, snapshot its upper dir; walk: compare the whole rootfs; auto: overlay when it can be mounted').choices(['auto', 'overlay', 'walk']).default('auto'))
    .addOption(new Option('--run-isolation <mode>', '(kiln) container mode: each RUN in user and mount namespaces of its own (and PID where it can have its own /proc) that hide kiln\'s dir and the credentials (and allow RUN --mount); auto: where the runtime allows it, else a warning and RUN on kiln\'s own /; required: fail instead; off: never').choices(['auto', 'required', 'off']).default('auto'))
    .addOption(new Option('--run-mode <mode>', '(kiln) sandbox: RUN in an isolated rootfs; container: the rootfs is / (executor image); auto').choices(['auto', 'sandbox', 'container']).default('auto'))
    .option('--work-dir <dir>', '(kiln) where the rootfs and layers are kept in sandbox mode (default: a temp dir)')
    .addOption(new Option('--rootfs-tmpfs <when>', '(kiln) sandbox mode as root: keep stage filesystems on a private tmpfs; auto: with 8 GiB+ of memory available (within the cgroup limit, less what other kiln builds\' tmpfs mounts may take) and a base under an eighth of it').choices(['auto', 'always', 'never']).default('auto'))
    .option('--rootfs-tmpfs-size <MiB>', '(kiln) size limit of that tmpfs (default: half of the available memory)')
    .option('--jobs <N>', '(kiln) stages built at once, when their dependencies are built; in container mode one at a time on / (default: twice the number of cores, and up to four times while a core is idle)')
    .option('--secret <spec>', 'id=ID,src=PATH or id=ID,env=VAR: a secret for RUN --mount=type=secret (repeatable)', collect, [])
    .option('--ssh <spec>', 'default|ID[=SOCKET|KEY[,KEY...]]: an SSH agent for RUN --mount=type=ssh; no path: $SSH_AUTH_SOCK (repeatable)', collect, [])
    .option('--mount-cache-dir <dir>', '(kiln) where RUN --mount=type=cache directories persist (default: <kaniko-dir>/cache in container mode, else $XDG_CACHE_HOME/kiln/mounts, /var/cache/kiln/mounts as root, ~/.cache/kiln/mounts)')
    .addOption(new Option('--progress <mode>', '(kiln) progress of downloads, uploads and large snapshots: tty (live lines), plain (a line every few seconds), none; auto: tty on a terminal, else plain (none with --log-format json, which logs progress events)').choices(['auto', 'tty', 'plain', 'none']).default('auto'))
    .option('--summary-file <path>', '(kiln) write the build summary (steps, times, layer sizes, cache hits, totals) to this file as JSON, on success and on failure')
    .option('--dry-run', '(kiln) parse, plan and resolve base images, check push permission, print the plan; build and push nothing', false)
    .allowExcessArguments(false);
  return groupFlags(cmd, EXECUTOR_GROUPS, EXECUTOR_KILN_FLAGS);
}
