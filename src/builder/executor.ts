// The whole build: inputs -> parse -> plan -> stages in dependency order -> outputs.
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDockerfile } from '../dockerfile/parse.js';
import type { Dockerfile } from '../dockerfile/instructions.js';
import { planBuild, stageLabel, stagesInOutput, type BuildPlan, type FromSource } from '../dockerfile/plan.js';
import { UNCOMPRESSED, type LayerFileCodec } from '../blob/compression.js';
import { DockerfileError, KilnError, OutputError, UsageError } from '../errors.js';
import type { ContextFiles, InstructionSite } from '../instructions/handler.js';
import type { Image } from '../oci/image.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import { RegistryClient } from '../registry/client.js';
import { cloudHelpers, withCloudRegistries } from '../registry/cloud-keychain.js';
import { loadDockerConfigKeychain, withGitLabCi } from '../registry/keychain.js';
import { anonymousKeychain } from '../registry/keychain.js';
import { loadRegistryTls } from '../registry/tls-files.js';
import type { EndpointCache } from '../registry/transport.js';
import { defaultIgnoreList, type IgnoreList } from '../rootfs/ignore-list.js';
import { spoolingImage, type SpoolingImage } from '../sources/registry-spool.js';
import { BuildDownloads } from './build-downloads.js';
import { checkPushPermissions } from '../sinks/registry-sink.js';
import { scratchImage } from '../sources/scratch.js';
import { Transfers } from '../log/transfers.js';
import { BaseImageCache } from './base-image-cache.js';
import { BuildReport } from './build-report.js';
import { dryRun, dryRunText } from './dry-run.js';
import { summaryLines, type BuildSummary } from './summary.js';
import { EarlyUploads } from './early-uploads.js';
import type { BuildContext, BuildDeps } from './build-deps.js';
import { findExecutable } from './find-executable.js';
import { LayerCache } from './layer-cache.js';
import { readMountPoints } from './mount-points.js';
import { resolveImageSource } from './resolve-image.js';
import { chooseIsolation, once } from './run-isolation.js';
import { fetchedContextDir, resolveInputs } from './inputs.js';
import { writeOutputs } from './outputs.js';
import type { BuildRequest } from './build-request.js';
import { RootfsArea } from './rootfs-area.js';
import { startSshAgents } from './ssh-agents.js';
import { compressedSize, moveContainerRoot, PristineRootfsStore, unpackImage } from './rootfs-materializer.js';
import { buildStage, mayDefer, type StageResult } from './stage-builder.js';
import { buildScheduled, hasIndependentStages, Slots, type IdleBorrowing, type StageGraph } from './stage-scheduler.js';
import { waitForIdleCore } from './cpu-idle.js';
import { endStream, prefixLines } from '../log/line-prefixer.js';
import { inBackground } from '../log/log-scope.js';

/** Build args that reach RUN without an ARG and stay out of the image (docker's predefined proxy ARGs). */
const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'];

export interface BuildResult {
  /** The image's manifest digest; undefined after --dry-run. */
  readonly digest: string | undefined;
}

/**
 * The build, and after it (success or failure) its summary: printed, a `summary` event in JSON, and
 * written to `--summary-file`.
 */
export async function runBuild(request: BuildRequest, buildDeps: BuildDeps): Promise<BuildResult> {
  const deps: BuildDeps = { ...buildDeps, transfers: buildDeps.transfers ?? new Transfers(Date.now, buildDeps.scope) };
  const report = new BuildReport({ log: deps.log, json: request.logFormat === 'json', transfers: deps.transfers as Transfers, scope: deps.scope });
  report.events.emit(
    'build-start',
    { dockerfile: request.dockerfileSpec, context: request.contextSpec, target: request.target, platform: formatPlatform(request.platform) },
    'Build starts',
  );
  let digest: string | undefined;
  let error: unknown;
  try {
    digest = (await buildImage(request, deps, report)).digest;
    return { digest };
  } catch (err) {
    error = err ?? new KilnError('INTERNAL', 'build failed without an error');
    throw err;
  } finally {
    const summary = report.finish({ error, digest });
    // A dry run builds nothing to summarize: its plan is its output.
    if (!request.dryRun) await publishSummary(summary, request, deps, report, error === undefined);
  }
}

async function publishSummary(summary: BuildSummary, request: BuildRequest, deps: BuildDeps, report: BuildReport, succeeded: boolean): Promise<void> {
  if (report.events.enabled) report.events.emit('summary', { summary }, summaryLines(summary)[0] ?? 'Build summary');
  else for (const line of summaryLines(summary)) deps.log.info(line);
  report.events.emit(
    'build-end',
    { status: summary.status, duration_ms: summary.duration_ms, digest: summary.digest, exit_code: summary.exit_code },
    `Build ${summary.status === 'success' ? 'succeeded' : 'failed'}`,
  );
  if (request.summaryFile === undefined) return;
  try {
    // The mask too: an error message or an instruction may hold a secret the logs would hide.
    await writeFile(request.summaryFile, `${deps.mask.apply(JSON.stringify(summary, null, 2))}\n`);
  } catch (err) {
    const what = `writing the summary to ${request.summaryFile}: ${(err as Error).message}`;
    // A failed build's own error is the one to report; a built image's summary that cannot be written fails it.
    if (!succeeded) deps.log.warn(what);
    else throw new OutputError(what, { cause: err });
  }
}

async function buildImage(request: BuildRequest, deps: BuildDeps, report: BuildReport): Promise<BuildResult> {
  const { log } = deps;
  const inputs = await resolveInputs(request, deps).catch(async (err: unknown) => {
    await removeWorkFiles(request);
    throw err;
  });
  const df = parseDockerfile(inputs.dockerfileText, inputs.dockerfileName);
  for (const w of df.warnings) log.warn(`${df.file}:${w.line}: ${w.message}`);
  const plan = planBuild(df, {
    ...(request.target !== undefined ? { target: request.target } : {}),
    buildArgs: request.buildArgs,
    targetPlatform: request.platform,
    buildPlatform: request.buildPlatform,
  });
  const order = new Set(buildOrder(plan, !request.skipUnusedStages));
  report.skipped(plan.stages.filter((s) => !order.has(s.index)).map((s) => stageLabel(df.stages[s.index] ?? { index: s.index })));
  if (plan.unusedBuildArgs.length > 0) {
    log.warn(`[Warning] One or more build-args [${plan.unusedBuildArgs.join(' ')}] were not consumed`);
  }
  const reg = request.registry;
  const cloud = { env: reg.cloudEnv, ctx: deps, mask: deps.mask };
  const configKeychain = reg.dockerConfigDir === undefined ? anonymousKeychain : await loadDockerConfigKeychain(reg.dockerConfigDir, deps.mask, { builtIn: cloudHelpers(cloud) });
  const keychain = withCloudRegistries(withGitLabCi(configKeychain, reg.gitLabCi, deps.mask), cloud);
  const tls = await loadRegistryTls(reg.registryCertificates, reg.registryClientCertificates);
  // One ping per registry for both clients: a build usually pulls from the registry it pushes to.
  const endpoints: EndpointCache = new Map();
  const pullClient = new RegistryClient({
    endpoints,
    ctx: deps,
    keychain,
    mask: deps.mask,
    insecure: (host) => reg.insecurePull || reg.insecureRegistries.includes(host),
    skipTlsVerify: (host) => reg.skipTlsVerifyPull || reg.skipTlsVerifyRegistries.includes(host),
    tls: (host) => tls.get(host),
    retries: reg.imageDownloadRetry,
  });
  const pushClient = new RegistryClient({
    endpoints,
    ctx: deps,
    keychain,
    mask: deps.mask,
    insecure: (host) => reg.insecurePush || reg.insecureRegistries.includes(host),
    skipTlsVerify: (host) => reg.skipTlsVerifyPush || reg.skipTlsVerifyRegistries.includes(host),
    tls: (host) => tls.get(host),
    retries: reg.pushRetry,
  });
  if (request.dryRun) {
    try {
      // What the build checks before any stage fails a dry run too: `--ssh` sources (key files loaded
      // into an agent, stopped at once), and the ignore list (container mode refuses a context at /).
      await (await startSshAgents(request.ssh, { ...deps, dir: join(request.workDir, 'ssh-agents'), find: (name) => findExecutable(name, deps.hostPath) })).close();
      await ignoreListFor(request, inputs.context.dir);
      const p = await dryRun({ df, plan, order: [...order], request, pullClient, pushClient, ctx: deps });
      // Masked: a global ARG's value may be a secret given with --build-arg.
      deps.stdout.write(deps.mask.apply(request.logFormat === 'json' ? `${JSON.stringify(p)}\n` : dryRunText(p)));
      return { digest: undefined };
    } finally {
      pullClient.close();
      pushClient.close();
      await removeWorkFiles(request);
    }
  }
  // `--ssh` is checked (and key files loaded into an agent) before any stage runs, as BuildKit does.
  const sshAgents = await startSshAgents(request.ssh, { ...deps, dir: join(request.workDir, 'ssh-agents'), find: (name) => findExecutable(name, deps.hostPath) }).catch(
    async (err: unknown) => {
      pullClient.close();
      pushClient.close();
      await removeWorkFiles(request);
      throw err;
    },
  );
  // The build's layer downloads (bases, --from images, layer cache hits), stopped before its work dir goes.
  const downloads = new BuildDownloads(deps.signal);
  const bctx: BuildContext = {
    ...deps,
    report,
    request,
    sshAgents: sshAgents.sockets,
    pullClient,
    pushClient,
    ignore: await ignoreListFor(request, inputs.context.dir),
    bwrap: request.runMode === 'sandbox' ? findExecutable('bwrap', deps.hostPath) : undefined,
    area: new RootfsArea({
      workDir: request.workDir,
      policy: request.rootfsTmpfs,
      sizeMiB: request.rootfsTmpfsSizeMiB,
      budgetMiB: request.rootfsTmpfsBudgetMiB,
      lockFile: request.tmpfsLockFile,
      sandbox: request.runMode === 'sandbox',
      root: request.isRoot,
      ctx: deps,
    }),
    // Cache images are read and written with the push settings and the destinations' keychain; the
    // cache repo gets no push-permission check (a cache that refuses is a warning, never a failure).
    layerCache:
      request.layerCache === undefined
        ? undefined
        : new LayerCache(request.layerCache, pushClient, deps, { dir: join(request.workDir, 'base-blobs'), retries: request.registry.imageDownloadRetry, downloads }),
    // With --cache the layers go to the cache repo as they are made, and the push mounts them from there.
    earlyUploads: earlyUploadsFor(request, pushClient, deps),
    runIsolation: once(() => chooseIsolation(request, request.registry.cloudEnv, deps)),
  };
  let succeeded = false;
  try {
    // Awaited before any stage starts: bad credentials fail in a second, not after the build. Base
    // manifests are fetched meanwhile (no layer is downloaded before the check has passed).
    const permission =
      !request.outputs.noPush && !reg.skipPushPermissionCheck ? checkPushPermissions(pushClient, request.outputs.destinations, bctx) : Promise.resolve();
    const results = await buildStages(bctx, df, plan, inputs.context, permission, downloads);
    const final = results.get(plan.target);
    if (final === undefined) throw new KilnError('INTERNAL', `target stage ${plan.target} was not built`);
    const digest = await writeOutputs(bctx, final.image);
    succeeded = true;
    return { digest };
  } finally {
    // Cache pushes run in the background during the build; they end (or fail, with a warning) here.
    // Early uploads were awaited by the push; after a failure, closing the client below cuts them off.
    await bctx.layerCache?.settle();
    await downloads.stop();
    pullClient.close();
    pushClient.close();
    await bctx.area.close();
    await sshAgents.close();
    // After a failure, the build's own error is the one to report, not the clean-up's.
    await removeWorkFiles(request, succeeded).catch((err: unknown) => {
      if (succeeded) throw err;
      bctx.log.warn(`could not remove the build's files under ${request.workDir}: ${(err as Error).message}`);
    });
  }
}

function earlyUploadsFor(request: BuildRequest, client: RegistryClient, deps: BuildDeps): EarlyUploads | undefined {
  const first = request.outputs.destinations[0];
  if (request.outputs.noPush || first === undefined || request.layerCache !== undefined) return undefined;
  return new EarlyUploads(client, first, deps);
}

/** The directories a build makes under its work dir, besides the context and the rootfs area's. */
const WORK_DIR_PARTS = ['stages', 'layers', 'run-mounts', 'ssh-agents'] as const;

/** What this build wrote under the work dir: all of it when kiln made the dir, else its own parts. */
async function removeWorkFiles(request: BuildRequest, succeeded = false): Promise<void> {
  if (request.ownsWorkDir) await rm(request.workDir, { recursive: true, force: true });
  else {
    // A user's --work-dir is often reused by the next build (a CI runner's): after a failure
    // everything kiln put there goes. After a success the layers stay, as kaniko leaves them in its dir.
    await rm(join(request.workDir, 'base-blobs'), { recursive: true, force: true });
    if (!succeeded) for (const part of WORK_DIR_PARTS) await rm(join(request.workDir, part), { recursive: true, force: true });
    await rm(fetchedContextDir(request), { recursive: true, force: true });
  }
}

/**
 * What no unpack, snapshot or clearing of `/` may touch. In container mode that adds, as kaniko does,
 * every mount point of kiln's container (volumes, secrets, runtime files), and the build context: kiln
 * reads it after `/` is cleared, and kaniko users mount it as a volume, which makes it ignored anyway.
 */
async function ignoreListFor(request: BuildRequest, contextDir: string): Promise<IgnoreList> {
  const base = { mode: request.runMode, ignoreVarRun: request.ignorePaths.includes('/var/run') };
  if (request.runMode === 'sandbox') return defaultIgnoreList({ ...base, extra: request.ignorePaths });
  if (contextDir === '/') {
    throw new UsageError('in container mode the build context cannot be /: kiln empties / before unpacking the base image');
  }
  // The --cache-dir too: base layers are read from it while `/` is being replaced (usually a volume).
  const cacheDir = request.baseImageCache === undefined ? [] : [request.baseImageCache.dir];
  // The kaniko dir (--kaniko-dir / KANIKO_DIR) holds the build's own state when it is not /kaniko.
  return defaultIgnoreList({ ...base, extra: [...request.ignorePaths, ...(await readMountPoints()), contextDir, ...cacheDir, request.workDir] });
}

/** Stages to build, dependencies first: the plan's order, or every stage without --skip-unused-stages. */
function buildOrder(plan: BuildPlan, all: boolean): number[] {
  if (!all) return [...plan.order];
  const out: number[] = [];
  const seen = new Set<number>();
  const visit = (i: number): void => {
    if (seen.has(i)) return;
    seen.add(i);
    for (const d of plan.stages[i]?.dependsOn ?? []) visit(d);
    out.push(i);
  };
  for (const s of plan.stages) visit(s.index);
  return out;
}

async function buildStages(
  bctx: BuildContext,
  df: Dockerfile,
  plan: BuildPlan,
  context: ContextFiles,
  permission: Promise<void>,
  downloads: BuildDownloads,
): Promise<Map<number, StageResult>> {
  const { log, request } = bctx;
  const results = new Map<number, StageResult>();
  const buildArgs = new Map(plan.buildArgs.map((a) => [a.name, a.value]));
  const globalArgs = new Map(plan.globalArgs.map((a) => [a.name, a.value]));
  const runOnlyArgs = new Map([...buildArgs].filter(([k]) => PROXY_ARGS.includes(k)));
  const materialized = new Map<string, Promise<string>>();
  const pulled = new Map<string, Promise<Image>>();
  const pristine = new PristineRootfsStore(async (image) => join(await bctx.area.dir(await compressedSize(image)), 'pristine'), bctx.ignore, bctx);
  // Images whose filesystem more than one stage or COPY --from needs: those keep a pristine copy.
  const imageUses = new Map<string, number>();
  for (const s of plan.stages) {
    const refs = [...(s.base.kind === 'image' ? [s.base.ref] : []), ...s.references.flatMap((r) => (r.source.kind === 'image' ? [r.source.ref] : []))];
    for (const ref of refs) imageUses.set(ref, (imageUses.get(ref) ?? 0) + 1);
  }

  const baseCache = request.baseImageCache === undefined ? undefined : new BaseImageCache(request.baseImageCache, bctx);
  const pull = (ref: string, platform: Platform): Promise<Image> => {
    const key = `${ref}|${platform.os}/${platform.architecture}/${platform.variant ?? ''}`;
    let p = pulled.get(key);
    if (p === undefined) {
      p = (async () => {
        const parsed = parseReference(ref);
        const routes = { registryMap: request.registry.registryMap, skipDefaultRegistryFallback: request.registry.skipDefaultRegistryFallback };
        const startedAt = bctx.transfers?.now() ?? Date.now();
        const source = await resolveImageSource(ref, platform, { client: bctx.pullClient, routes, baseCache, ctx: bctx });
        if (source.askedRegistry) bctx.report.pulled(ref, await source.image.digest(), formatPlatform(platform), startedAt);
        if (source.fromCacheDir) return source.image;
        // Layers download (several at once, into the work dir) when prefetchBases or a stage first reads them.
        const img = downloads.add(
          spoolingImage(source.image, {
            dir: join(request.workDir, 'base-blobs'),
            retries: request.registry.imageDownloadRetry,
            ctx: { ...bctx, signal: downloads.signal },
          }),
        );
        log.info(`Retrieving image ${formatReference(parsed)} from registry ${parsed.registry}`);
        return img;
      })();
      pulled.set(key, p);
    }
    return p;
  };

  // Container mode: the stage whose final filesystem `/` still holds (the last one unpacked there). A
  // later `--from` of it takes those files (moved aside, see moveContainerRoot) instead of unpacking its
  // layers again; with --snapshot-mode=time its layers may lack a change the files have, so not then.
  let onRoot: number | undefined;
  const fromStages = new Set(plan.stages.flatMap((s) => s.references.flatMap((r) => (r.source.kind === 'stage' ? [r.source.index] : []))));
  const canMoveRoot = request.runMode === 'container' && request.snapshotMode !== 'time';

  /** The filesystem of stage `index`'s image, unpacked from its layers into `dir`. */
  const unpackStage = async (index: number, dir: string): Promise<string> => {
    const r = results.get(index);
    if (r === undefined) throw new KilnError('INTERNAL', `stage ${index} is used before it was built`);
    await unpackImage(dir, r.image, bctx.ignore, bctx);
    return dir;
  };
  const stageDir = async (index: number): Promise<string> => {
    const r = results.get(index);
    if (r === undefined) throw new KilnError('INTERNAL', `stage ${index} is used before it was built`);
    return join(await bctx.area.dir(await compressedSize(r.image)), 'from', `stage-${index}`);
  };
  // Container mode, stages built at once (--jobs): `/` is one tree, so the stage that unpacks there
  // holds this lock from then until it ends; stages that need no `/` (a deferred base, COPY into a
  // delta root) run beside it, as do base downloads.
  const rootLock = new Slots(1);
  // A move of `/` aside (takeRoot) still under way: a --from of a stage that is not on `/` may start
  // one while no stage holds `/`, and the next stage to claim `/` waits for it before clearing.
  let moving: Promise<unknown> = Promise.resolve();
  /** Moves `/` (stage `onRoot`'s files) to that stage's --from dir, or unpacks it there if the move fails. */
  const takeRoot = (index: number): Promise<string> => {
    onRoot = undefined;
    const p = (async () => {
      const dir = await stageDir(index);
      return (await moveContainerRoot(dir, bctx.ignore, bctx)) ? dir : unpackStage(index, dir);
    })();
    materialized.set(`stage-${index}`, p);
    moving = p.catch(() => undefined);
    return p;
  };
  /** Before a stage clears `/`: keep what it holds if a --from still to come reads that stage. */
  const releaseContainerRoot = async (): Promise<void> => {
    const index = onRoot;
    onRoot = undefined;
    if (index !== undefined && canMoveRoot && fromStages.has(index) && !materialized.has(`stage-${index}`)) await takeRoot(index);
    await moving;
  };

  /** The filesystem of a `--from` source, on disk and never modified. */
  const sourceRootfs = (source: FromSource): Promise<string> => {
    const key = source.kind === 'stage' ? `stage-${source.index}` : `image-${createHash('sha256').update(source.ref).digest('hex').slice(0, 16)}`;
    let p = materialized.get(key);
    if (p === undefined) {
      if (source.kind === 'stage' && canMoveRoot && onRoot === source.index) return takeRoot(source.index);
      p = (async () => {
        if (source.kind === 'stage') {
          const r = results.get(source.index);
          if (r === undefined) throw new KilnError('INTERNAL', `stage ${source.index} is used before it was built`);
          if (r.rootfs !== undefined) return r.rootfs;
          return unpackStage(source.index, await stageDir(source.index));
        }
        return pristine.get(await pull(source.ref, request.platform));
      })();
      materialized.set(key, p);
    }
    return p;
  };

  const order = buildOrder(plan, !request.skipUnusedStages);
  for (const index of order) {
    const sp = plan.stages[index];
    // Errors surface when the stage awaits the same pull (or parses its platform), with its line.
    try {
      // Started before any stage, awaited by one later: its lines name no stage (inBackground).
      const base = sp?.base;
      if (sp !== undefined && base?.kind === 'image') {
        const platform = sp.platform !== undefined ? parsePlatform(sp.platform) : request.platform;
        void inBackground(bctx, () => pull(base.ref, platform).catch(() => undefined));
      }
    } catch {
      // An invalid platform: reported by the stage itself.
    }
  }
  // Container mode: the probe of RUN isolation (a kiln-isolate child, ~5 ms) runs while the base
  // downloads, not after the unpack, when a stage will run a RUN (and so ask for it anyway). Its
  // verdict, warning or error reaches the stage through the same once().
  if (request.runMode === 'container' && order.some((i) => df.stages[i]?.instructions.some((ins) => ins.kind === 'run') === true)) {
    void inBackground(bctx, () => bctx.runIsolation().catch(() => undefined));
  }
  await permission;
  prefetchBases(bctx, df, plan, order, pull);
  const outputStages = stagesInOutput(plan);
  const graph: StageGraph = {
    order,
    dependsOn: (i) => plan.stages[i]?.dependsOn ?? [],
    label: (i) => stageLabel(df.stages[i] ?? { index: i }),
  };
  // In container mode every stage that unpacks needs `/`, the one tree there is: such stages hold it
  // one at a time (rootLock), the others run beside them.
  const parallel = Math.max(request.jobs, request.jobsWhenIdle) > 1 && hasIndependentStages(graph);
  const buildOne = async (index: number, sctx: BuildContext): Promise<StageResult> => {
    let holdsRoot = false;
    const claimContainerRoot = async (): Promise<void> => {
      if (!holdsRoot) {
        // Rejects when another stage fails meanwhile: `/` is not cleared for a cancelled build.
        await rootLock.acquire(sctx.signal);
        holdsRoot = true;
      }
      await releaseContainerRoot();
    };
    const result = await buildStageOn(index, sctx, claimContainerRoot);
    // Only a stage that ended well hands `/` on. One that failed on it keeps it: the build is over,
    // and a stage waiting for `/` would otherwise take it (and empty it) before the scheduler's abort
    // reached it; the abort makes it stop waiting instead.
    if (holdsRoot) rootLock.release();
    return result;
  };
  const buildStageOn = async (index: number, sctx: BuildContext, claimContainerRoot: () => Promise<void>): Promise<StageResult> => {
    const stage = df.stages[index];
    const sp = plan.stages[index];
    if (stage === undefined || sp === undefined) throw new KilnError('INTERNAL', `stage ${index} missing from the plan`);
    const platform = sp.platform !== undefined ? parsePlatform(sp.platform) : request.platform;
    let base: Image;
    let baseStage: StageResult | undefined;
    let baseIdx = -1;
    switch (sp.base.kind) {
      case 'scratch':
        base = scratchImage(platform);
        break;
      case 'stage': {
        baseStage = results.get(sp.base.index);
        if (baseStage === undefined) throw new KilnError('INTERNAL', `stage ${sp.base.index} is used before it was built`);
        base = baseStage.image;
        baseIdx = sp.base.index;
        break;
      }
      case 'image':
        base = await pull(sp.base.ref, platform).catch((err: unknown) => {
          if (err instanceof KilnError && !(err instanceof DockerfileError)) {
            throw new DockerfileError(`base image ${sp.base.kind === 'image' ? sp.base.ref : ''}: ${err.message}`, { file: df.file, line: stage.from.line, source: stage.from.source }, { cause: err });
          }
          throw err;
        });
        break;
    }
    const stageReport = sctx.report.stageStart(index, stageLabel(stage), describeBase(sp.base, df), sp.base.kind === 'image' ? await base.digest() : undefined);
    sctx.log.info(`Building stage '${stageLabel(stage)}' [idx: '${index}', base-idx: '${baseIdx}']`);
    const fromSource = (from: string, site: InstructionSite): FromSource => {
      const ref = sp.references.find((r) => r.written === from && r.line === site.line) ?? sp.references.find((r) => r.written === from);
      if (ref === undefined) throw new DockerfileError(`unknown --from source ${JSON.stringify(from)}`, site);
      return ref.source;
    };
    const result = await buildStage(sctx, {
      df,
      stage,
      stagePlan: sp,
      report: stageReport,
      base,
      baseStage,
      pristineBase:
        sp.base.kind === 'image' && request.runMode === 'sandbox' && (imageUses.get(sp.base.ref) ?? 0) > 1 ? () => pristine.get(base) : undefined,
      context,
      buildArgs,
      globalArgs,
      runOnlyArgs,
      extraLabels: index === plan.target ? request.labels : new Map(),
      layerCodec: outputStages.has(index) || request.layerCache !== undefined ? request.compression : BUILDER_STAGE_CODEC,
      platform,
      fromRootfs: async (from: string, site: InstructionSite) => sourceRootfs(fromSource(from, site)),
      claimContainerRoot,
      earlyUploads: outputStages.has(index) ? bctx.earlyUploads : undefined,
      fromIdentity: async (from: string, site: InstructionSite) => {
        const source = fromSource(from, site);
        if (source.kind === 'stage') {
          const key = results.get(source.index)?.cacheKey;
          return key?.keyed === true ? `stage:${key.key}` : undefined;
        }
        return `image:${await (await pull(source.ref, request.platform)).digest()}`;
      },
    });
    stageReport.end();
    results.set(index, result);
    if (result.onContainerRoot) onRoot = index;
    return result;
  };
  if (!parallel) {
    for (const index of order) await buildOne(index, bctx);
    return results;
  }
  // Each stage logs through its own context: its text lines start with `[stage] ` (kaniko's format
  // otherwise), its JSON lines carry its own stage and step fields (LogScope.isolate).
  // The default --jobs (twice the cores) lets one stage more in each time a core has been idle for a
  // quarter second (cpu-idle.ts), up to four times the cores; --jobs N is N.
  const borrowing: IdleBorrowing | undefined =
    request.jobsWhenIdle > request.jobs
      ? {
          max: request.jobsWhenIdle,
          idle: (signal) => waitForIdleCore(signal, { windowMs: 250, threshold: 0.5 }),
          onLend: (running) => bctx.log.debug(`a core is idle: ${running} stages at once (--jobs default ${request.jobs})`),
        }
      : undefined;
  await buildScheduled(graph, request.jobs, bctx.signal, (index, signal) => {
    const label = graph.label(index);
    const log = request.logFormat === 'json' ? bctx.log : bctx.log.child({}, { msgPrefix: `[${label}] ` });
    // RUN's own output too: its lines start with `[stage] ` in both formats (it is never JSON).
    const stdout = prefixLines(bctx.stdout, `[${label}] `);
    const stderr = prefixLines(bctx.stderr, `[${label}] `);
    const run = async (): Promise<StageResult> => {
      try {
        return await buildOne(index, { ...bctx, log, signal, stdout, stderr });
      } finally {
        // The stage's last partial line, if any, is written before the stage counts as built.
        await Promise.all([endStream(stdout), endStream(stderr)]);
      }
    };
    return bctx.scope !== undefined ? bctx.scope.isolate(run) : run();
  }, borrowing);
  return results;
}

/**
 * The layers of every base image a stage will unpack, downloaded as soon as the plan is known (and the
 * push check has passed), all images at once, instead of when each stage first needs its rootfs: a
 * stage waiting for its dependencies (or for a --jobs slot) finds its base on disk. Left out, because
 * their layers may never be read: a stage whose instructions may defer the base (COPY and WORKDIR
 * only; see stage-builder.ts), and builds with the layer cache (a stage whose steps all hit never
 * unpacks). A failure here is the stage's to report, when it opens the same layer.
 */
function prefetchBases(bctx: BuildContext, df: Dockerfile, plan: BuildPlan, order: readonly number[], pull: (ref: string, platform: Platform) => Promise<Image>): void {
  if (bctx.request.layerCache !== undefined) return;
  const fetch = (ref: string, platform: Platform): void => {
    void inBackground(bctx, () =>
      pull(ref, platform)
        .then((img) => (isSpooling(img) ? img.spoolAll() : undefined))
        .catch(() => undefined),
    );
  };
  for (const index of order) {
    const stage = df.stages[index];
    const sp = plan.stages[index];
    if (stage === undefined || sp === undefined) continue;
    // A --from image's filesystem is unpacked whole when the COPY runs.
    for (const r of sp.references) if (r.source.kind === 'image') fetch(r.source.ref, bctx.request.platform);
    if (sp.base.kind !== 'image' || mayDefer(stage.instructions)) continue;
    let platform: Platform;
    try {
      platform = sp.platform !== undefined ? parsePlatform(sp.platform) : bctx.request.platform;
    } catch {
      continue; // An invalid platform: reported by the stage itself.
    }
    fetch(sp.base.ref, platform);
  }
}

function isSpooling(img: Image): img is SpoolingImage {
  return typeof (img as Partial<SpoolingImage>).spoolAll === 'function';
}

/** A stage's base as the summary shows it. */
function describeBase(base: BuildPlan['stages'][number]['base'], df: Dockerfile): string {
  if (base.kind === 'image') return base.ref;
  if (base.kind === 'scratch') return 'scratch';
  return `stage ${stageLabel(df.stages[base.index] ?? { index: base.index })}`;
}

/**
 * How the layers of a stage whose image no output holds are written: not compressed at all. They only
 * feed `COPY --from` (or, in container mode, are unpacked again when a later stage copies from it) and
 * are deleted with the build, so compressing them is work nobody reads: a builder stage's 120 MB of
 * toolchain took ~35 s at zstd 19, ~1 s at gzip 1, and is now written as the tar it is. BuildKit too
 * keeps its snapshots uncompressed and compresses only what it exports.
 */
const BUILDER_STAGE_CODEC: LayerFileCodec = UNCOMPRESSED;
