// The warmer's flags, with kaniko's names (cmd/warmer/cmd/root.go), and argv + env -> a WarmRequest.
// The warmer only pulls: `--insecure` and `--skip-tls-verify` (kiln) mean their `-pull` forms.
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import type { WarmRequest } from '../builder/warm-cache.js';
import { parseGoDuration } from '../dockerfile/duration.js';
import { UsageError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import type { Platform } from '../oci/schemas.js';
import { DEFAULT_CACHE_DIR, dockerConfigDir, logFlagsShape, parseBuildArgs, registryFlagsShape, registryRoutesFrom, waitFlag, type Environment } from './validate-flags.js';
import { groupFlags, WARMER_GROUPS, WARMER_KILN_FLAGS } from './flag-groups.js';
import { flagsFrom } from './run-command.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Boolean flags and their defaults, for `--flag=true|false` (see go-style-argv.ts). */
export const WARMER_BOOLEAN_FLAGS: ReadonlyMap<string, boolean> = new Map([
  ['force', false],
  ['insecure', false],
  ['insecure-pull', false],
  ['skip-tls-verify', false],
  ['skip-tls-verify-pull', false],
  ['skip-default-registry-fallback', false],
  ['log-timestamp', false],
]);

export function warmerCommand(): Command {
  const cmd = new Command('warmer')
    .description("Pull base images into kaniko's local cache directory, which the executor reads with --cache-dir.\n`warmer version` prints the version.")
    .option('-i, --image <ref>', 'image to cache (repeatable)', collect, [])
    .option('-c, --cache-dir <dir>', 'directory of the cache', DEFAULT_CACHE_DIR)
    .option('-f, --force', 'rewrite images that are already in the cache', false)
    .option('--cache-ttl <duration>', 'Go duration after which a cached image is stale and written again', '336h')
    .option('-d, --dockerfile <path>', "cache the FROM images of this Dockerfile (a path or an http(s):// URL)")
    .option('--build-arg <arg>', 'KEY=VALUE (or KEY, from the environment) for the FROM lines of --dockerfile (repeatable)', collect, [])
    .option('--custom-platform <platform>', 'os/arch[/variant] to take from multi-platform images (default: this machine; kaniko spells it --customPlatform)')
    .option('--insecure', '(kiln) the same as --insecure-pull', false)
    .option('--insecure-pull', 'pull from registries over plain HTTP', false)
    .option('--insecure-registry <host>', 'registry to reach over plain HTTP (repeatable)', collect, [])
    .option('--skip-tls-verify', '(kiln) the same as --skip-tls-verify-pull', false)
    .option('--skip-tls-verify-pull', 'do not verify TLS certificates when pulling', false)
    .option('--skip-tls-verify-registry <host>', 'registry whose TLS certificate is not verified (repeatable)', collect, [])
    .option('--registry-certificate <map>', 'registry=path of a CA certificate to trust for that registry (repeatable)', collect, [])
    .option('--registry-client-cert <map>', 'registry=cert,key: client certificate for mutual TLS with that registry (repeatable)', collect, [])
    .option('--registry-mirror <host>', 'registry to pull Docker Hub images from first (repeatable; also KANIKO_REGISTRY_MIRROR)', collect, [])
    .option('--registry-map <map>', 'original=mirror[;...]: registries to pull from before the original (repeatable; also KANIKO_REGISTRY_MAP)', collect, [])
    .option('--skip-default-registry-fallback', 'fail when no mirror or mapped registry has the image instead of pulling from the original', false)
    .option('--connect-timeout <duration>', '(kiln) Go duration a TCP connect plus TLS handshake may take, for registries, token servers and a --dockerfile URL', '30s')
    .option('--idle-timeout <duration>', '(kiln) Go duration a connected peer may stay silent: before the response headers and within a body', '60s')
    .addOption(new Option('-v, --verbosity <level>', 'log level').choices(['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'))
    .addOption(new Option('--log-format <format>', 'log format').choices(['text', 'color', 'json']).default('text'))
    .option('--log-timestamp', 'print timestamps in log lines', false)
    .addOption(new Option('--progress <mode>', 'progress of downloads: tty (live lines), plain (a line every few seconds), none; auto: tty on a terminal, else plain (none with --log-format json, which logs progress events)').choices(['auto', 'tty', 'plain', 'none']).default('auto'))
    .allowExcessArguments(false);
  return groupFlags(cmd, WARMER_GROUPS, WARMER_KILN_FLAGS);
}

/** kaniko's warmer names the platform flag `--customPlatform` (no deprecation there): same flag. */
export function renameWarmerFlags(args: readonly string[]): string[] {
  return args.map((a) => a.replace(/^--customPlatform(?==|$)/, '--custom-platform'));
}

const warmerFlagsSchema = z.object({
  ...registryFlagsShape,
  ...logFlagsShape,
  image: z.array(z.string()),
  cacheDir: z.string().min(1),
  force: z.boolean(),
  cacheTtl: z.string(),
  dockerfile: z.string().min(1).optional(),
  buildArg: z.array(z.string()),
  customPlatform: z.string().optional(),
  progress: z.enum(['auto', 'tty', 'plain', 'none']),
  connectTimeout: z.string(),
  idleTimeout: z.string(),
});
export type WarmerFlags = z.infer<typeof warmerFlagsSchema>;

export function validateWarmerFlags(raw: Record<string, unknown>): WarmerFlags {
  return flagsFrom(warmerFlagsSchema.safeParse(raw));
}

export function warmRequestFrom(flags: WarmerFlags, e: Pick<Environment, 'env' | 'cwd' | 'homeDir' | 'exists' | 'hostPlatform'>): WarmRequest {
  if (flags.image.length === 0 && flags.dockerfile === undefined) {
    throw new UsageError('You must select at least one image to cache or a dockerfilepath to parse');
  }
  const ttlNs = parseGoDuration(flags.cacheTtl);
  if (ttlNs === undefined || ttlNs < 0) throw new UsageError(`invalid --cache-ttl ${JSON.stringify(flags.cacheTtl)}: want a Go duration such as 336h or 6h30m`);
  let dockerfile: string | undefined;
  if (flags.dockerfile !== undefined) {
    dockerfile = /^https?:\/\//i.test(flags.dockerfile) ? flags.dockerfile : resolve(e.cwd, flags.dockerfile);
    if (!/^https?:\/\//i.test(dockerfile) && !e.exists(dockerfile)) {
      throw new UsageError('error validating dockerfile path: please provide a valid path to a Dockerfile within the build context with --dockerfile');
    }
  }
  const platform: Platform = flags.customPlatform !== undefined ? parsePlatform(flags.customPlatform) : e.hostPlatform;
  return {
    cacheDir: resolve(e.cwd, flags.cacheDir),
    images: flags.image,
    dockerfile,
    buildArgs: parseBuildArgs(flags.buildArg, e.env),
    platform,
    buildPlatform: e.hostPlatform,
    force: flags.force,
    ttlMs: ttlNs / 1e6,
    waits: { connectMs: waitFlag('connect-timeout', flags.connectTimeout), idleMs: waitFlag('idle-timeout', flags.idleTimeout) },
    registry: {
      insecurePull: flags.insecurePull || flags.insecure,
      insecureRegistries: flags.insecureRegistry,
      skipTlsVerifyPull: flags.skipTlsVerifyPull || flags.skipTlsVerify,
      skipTlsVerifyRegistries: flags.skipTlsVerifyRegistry,
      dockerConfigDir: dockerConfigDir(e),
      imageDownloadRetry: 0,
      ...registryRoutesFrom(flags, e.env),
    },
  };
}
