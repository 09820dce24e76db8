// argv (as commander parsed it) + environment -> a validated BuildRequest. Commander hands back an
// untyped record, so it enters through zod like any other foreign data.
import { chmod, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { BuildRequest, RunMode } from '../build/request.js';
import { UsageError } from '../errors.js';
import { parsePlatform } from '../oci/platform.js';
import { parseReference, type Reference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';

const flagsSchema = z.object({
  dockerfile: z.string().min(1),
  context: z.string().min(1),
  destination: z.array(z.string()),
  push: z.boolean(),
  tarPath: z.string().optional(),
  ociLayoutPath: z.string().optional(),
  digestFile: z.string().optional(),
  imageNameWithDigestFile: z.string().optional(),
  imageNameTagWithDigestFile: z.string().optional(),
  insecure: z.boolean(),
  insecurePull: z.boolean(),
  insecureRegistry: z.array(z.string()),
  skipTlsVerify: z.boolean(),
  skipTlsVerifyPull: z.boolean(),
  skipTlsVerifyRegistry: z.array(z.string()),
  buildArg: z.array(z.string()),
  target: z.string().optional(),
  label: z.array(z.string()),
  customPlatform: z.string().optional(),
  verbosity: z.enum(['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace']),
  logFormat: z.enum(['text', 'color', 'json']),
  logTimestamp: z.boolean(),
  cleanup: z.boolean(),
  kanikoDir: z.string(),
  cache: z.boolean(),
  cacheRepo: z.string().optional(),
  reproducible: z.boolean(),
  singleSnapshot: z.boolean(),
  useNewRun: z.boolean(),
  snapshotMode: z.enum(['full', 'redo', 'time']),
  skipUnusedStages: z.boolean(),
  ignorePath: z.array(z.string()),
  ignoreVarRun: z.boolean(),
  force: z.boolean(),
  pushRetry: z.string().regex(/^\d+$/, 'must be a whole number'),
  imageDownloadRetry: z.string().regex(/^\d+$/, 'must be a whole number'),
  compressionLevel: z.string().regex(/^[0-9]$/, 'must be 0-9').optional(),
  runMode: z.enum(['auto', 'sandbox', 'container']),
  workDir: z.string().optional(),
});
export type ExecutorFlags = z.infer<typeof flagsSchema>;

export function validateFlags(raw: Record<string, unknown>): ExecutorFlags {
  const r = flagsSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const flag = issue?.path[0] === undefined ? '' : `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: `;
    throw new UsageError(`invalid flag ${flag}${issue?.message ?? 'invalid value'}`);
  }
  return r.data;
}

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly homeDir: string;
  readonly tmpDir: string;
  readonly hostPlatform: Platform;
  readonly readStdin: () => Promise<string>;
  readonly exists: (path: string) => boolean;
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

function dockerConfigDir(e: Environment): string | undefined {
  const fromEnv = e.env['DOCKER_CONFIG'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (e.exists('/kaniko/.docker/config.json')) return '/kaniko/.docker';
  return join(e.homeDir, '.docker');
}

export async function buildRequestFrom(flags: ExecutorFlags, e: Environment): Promise<BuildRequest> {
  const destinations: Reference[] = flags.destination.map((d) => parseReference(d));
  const noPush = !flags.push;
  if (destinations.length === 0 && !noPush) {
    throw new UsageError('you must provide --destination, or use --no-push');
  }
  const runMode = chooseRunMode(flags, e.env);
  const labels = new Map(flags.label.map((l) => keyValue('--label', l)));
  const platform = flags.customPlatform !== undefined ? parsePlatform(flags.customPlatform) : e.hostPlatform;
  const stdinDockerfile = flags.dockerfile === '-' ? await e.readStdin() : undefined;
  let workDir: string;
  let ownsWorkDir = false;
  if (runMode === 'container') workDir = flags.kanikoDir;
  else if (flags.workDir !== undefined) workDir = flags.workDir;
  else {
    workDir = await mkdtemp(join(e.tmpDir, 'kiln-'));
    // A RUN under a non-root USER runs bwrap as that user, who must be able to reach the rootfs.
    await chmod(workDir, 0o755);
    ownsWorkDir = true;
  }
  return {
    contextSpec: flags.context,
    dockerfileSpec: flags.dockerfile,
    stdinDockerfile,
    cwd: e.cwd,
    buildArgs: parseBuildArgs(flags.buildArg, e.env),
    target: flags.target,
    labels,
    platform,
    buildPlatform: e.hostPlatform,
    runMode,
    workDir,
    ownsWorkDir,
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
      imageDownloadRetry: Number(flags.imageDownloadRetry),
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
    compressionLevel: flags.compressionLevel === undefined ? undefined : Number(flags.compressionLevel),
    singleSnapshot: flags.singleSnapshot,
    skipUnusedStages: flags.skipUnusedStages,
  };
}
