// Builds one stage: base -> (rootfs, on first need) -> instructions -> snapshots -> image.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseDockerfile } from '../dockerfile/parse.js';
import type { Dockerfile, Instruction, Stage } from '../dockerfile/instructions.js';
import type { StagePlan } from '../dockerfile/plan.js';
import { DockerfileError, KilnError } from '../errors.js';
import { HANDLERS } from '../instructions/index.js';
import type { ContextFiles, Handler, InstructionEnv, InstructionSite, Step } from '../instructions/handler.js';
import { DEFAULT_PATH, type StageState } from '../instructions/stage-state.js';
import { assembleImage } from '../oci/assemble.js';
import type { Image, Layer } from '../oci/image.js';
import { manifestFamily } from '../oci/media-types.js';
import type { ContainerConfig, History } from '../oci/schemas.js';
import { ChrootSandbox } from '../sandbox/chroot-sandbox.js';
import { ContainerSandbox } from '../sandbox/container-sandbox.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { Snapshotter } from '../snapshot/snapshotter.js';
import type { BuildContext } from './build-context.js';
import { clearContainerRoot, cloneRootfs, compressedSize, unpackImage } from './rootfs-materializer.js';
import { chooseOverlay } from './snapshot-strategy.js';
import type { FsEffect } from '../instructions/handler.js';

export interface StageResult {
  readonly index: number;
  readonly image: Image;
  /** Host directory with the stage's final filesystem, when one exists and stays valid. */
  readonly rootfs: string | undefined;
}

export interface StageInputs {
  readonly df: Dockerfile;
  readonly stage: Stage;
  readonly stagePlan: StagePlan;
  readonly base: Image;
  /** The result of the stage this one is built FROM, if any. */
  readonly baseStage: StageResult | undefined;
  /** A pristine unpacked copy of `base` to clone instead of unpacking (sandbox mode; images used more than once). */
  readonly pristineBase?: (() => Promise<string>) | undefined;
  readonly context: ContextFiles;
  readonly buildArgs: ReadonlyMap<string, string>;
  readonly globalArgs: ReadonlyMap<string, string>;
  readonly runOnlyArgs: ReadonlyMap<string, string>;
  /** Labels from `--label`, applied to the target stage only. */
  readonly extraLabels: ReadonlyMap<string, string>;
  fromRootfs(from: string, site: InstructionSite): Promise<string>;
}

/** The rootfs of the stage being built, unpacked when an instruction first needs it. */
class StageRootfs {
  #root: string | undefined;
  #snapshotter: Snapshotter | undefined;
  #sandbox: Sandbox | undefined;
  /** Whether RUN goes through an overlay whose upper dir the snapshotter takes (RUNs mark themselves). */
  #overlay = false;
  #layerCount = 0;

  constructor(
    private readonly bctx: BuildContext,
    private readonly inputs: StageInputs,
  ) {}

  get materialized(): string | undefined {
    return this.#root;
  }

  async root(reason: string): Promise<string> {
    if (this.#root !== undefined) return this.#root;
    const { bctx, inputs } = this;
    const { log } = bctx;
    log.info(`Unpacking rootfs as cmd ${reason} requires it.`);
    let root: string;
    if (bctx.request.runMode === 'container') {
      root = '/';
      await clearContainerRoot(bctx.ignore, bctx);
      await unpackImage(root, inputs.base, bctx.ignore, bctx);
    } else {
      const area = await bctx.area.dir(await compressedSize(inputs.base));
      root = join(area, 'stages', String(inputs.stage.index), 'rootfs');
      await mkdir(root, { recursive: true, mode: 0o755 });
      const from = inputs.baseStage?.rootfs;
      if (from !== undefined) await cloneRootfs(from, root, bctx);
      else if (inputs.pristineBase !== undefined) await cloneRootfs(await inputs.pristineBase(), root, bctx);
      else await unpackImage(root, inputs.base, bctx.ignore, bctx);
    }
    if (bctx.request.runMode === 'sandbox') {
      if (bctx.bwrap === undefined) {
        throw new KilnError('SANDBOX', 'sandbox mode runs RUN with bubblewrap, which is not installed (apt-get install bubblewrap)');
      }
      // Upper dirs live beside the rootfs: on its filesystem, so merging them is a rename.
      const scratch = join(dirname(root), 'overlay');
      const tools = await chooseOverlay(bctx, scratch);
      const overlay = tools === undefined ? undefined : { tools, scratch, collect: (upper: string, touched: readonly string[]) => this.#collect(upper, touched) };
      const sandbox = new ChrootSandbox({ root, bwrap: bctx.bwrap, ...(overlay !== undefined ? { overlay } : {}) });
      await sandbox.prepare();
      this.#sandbox = sandbox;
      this.#overlay = overlay !== undefined;
    } else {
      this.#sandbox = new ContainerSandbox();
    }
    log.info('Initializing snapshotter ...');
    const snapshotter = new Snapshotter({
      root,
      ignore: bctx.ignore,
      workDir: join(bctx.request.workDir, 'layers'),
      ctx: bctx,
      codec: bctx.request.compression,
      mode: bctx.request.snapshotMode,
      reproducible: bctx.request.reproducible,
    });
    await mkdir(join(bctx.request.workDir, 'layers'), { recursive: true });
    await snapshotter.init();
    this.#snapshotter = snapshotter;
    this.#root = root;
    return root;
  }

  async sandbox(reason: string): Promise<Sandbox> {
    await this.root(reason);
    if (this.#sandbox === undefined) throw new KilnError('INTERNAL', 'sandbox missing after the rootfs was unpacked');
    return this.#sandbox;
  }

  async #collect(upper: string, touched: readonly string[]): Promise<void> {
    if (this.#snapshotter === undefined) throw new KilnError('INTERNAL', 'overlay upper dir before the snapshotter');
    await this.#snapshotter.mergeUpper(upper);
    this.#snapshotter.markEntries(touched);
  }

  /** Tells the snapshotter what an instruction may have changed. */
  record(fs: FsEffect, isRun: boolean): void {
    const snap = this.#snapshotter;
    if (snap === undefined) return;
    switch (fs.kind) {
      case 'none':
        return;
      case 'paths':
        snap.markPaths(fs.paths);
        return;
      case 'changed':
        // On an overlay, the RUN's upper dir already said what changed.
        if (!(isRun && this.#overlay)) snap.markAll();
        return;
    }
  }

  /** Snapshots the changes since the last one; null when nothing changed or nothing was unpacked. */
  async snapshot(fs: FsEffect | undefined): Promise<Layer | null> {
    if (this.#snapshotter === undefined) return null;
    this.bctx.log.info(fs?.kind === 'paths' ? 'Taking snapshot of files...' : 'Taking snapshot of full filesystem...');
    const n = this.#layerCount++;
    return this.#snapshotter.snapshot(`stage${this.inputs.stage.index}-${n}.tar.gz`);
  }
}

function siteOf(df: Dockerfile, instr: { line: number; source: string }): InstructionSite {
  return { file: df.file, line: instr.line, source: instr.source };
}

/** Base config with docker's defaults: a PATH when the base sets none (kaniko's ScratchEnvVars). */
function initialConfig(base: ContainerConfig | undefined): ContainerConfig {
  const config: ContainerConfig = { ...(base ?? {}) };
  if (config.Env === undefined || config.Env === null || config.Env.length === 0) config.Env = [`PATH=${DEFAULT_PATH}`];
  // Triggers run in this build and are not inherited further (docker clears them).
  delete config.OnBuild;
  return config;
}

/** Parses a base image's ONBUILD triggers into instructions, located at the FROM line. */
function onbuildTriggers(df: Dockerfile, stage: Stage, triggers: readonly string[]): Instruction[] {
  return triggers.flatMap((t) => {
    try {
      const parsed = parseDockerfile(`FROM scratch\n${t}\n`, df.file);
      return (parsed.stages[0]?.instructions ?? []).map((i) => ({ ...i, line: stage.from.line, endLine: stage.from.line }));
    } catch (err) {
      throw new DockerfileError(`invalid ONBUILD trigger in base image: ${t}`, siteOf(df, stage.from), { cause: err });
    }
  });
}

export async function buildStage(bctx: BuildContext, inputs: StageInputs): Promise<StageResult> {
  const { df, stage, base } = inputs;
  const { log } = bctx;
  const baseConfig = await base.configFile();
  const rootfs = new StageRootfs(bctx, inputs);
  let state: StageState = {
    config: initialConfig(baseConfig.config),
    args: new Map(),
    author: baseConfig.author,
    escape: df.directives.escape,
    cmdSet: false,
  };
  const layers: Layer[] = [...(await base.layers())];
  const history: History[] = [...(baseConfig.history ?? [])];
  // Some tools write no history: give each base layer an entry so history and layers stay aligned.
  const missing = layers.length - history.filter((h) => h.empty_layer !== true).length;
  for (let i = 0; i < missing; i++) history.unshift({ created_by: 'layer of the base image' });
  const now = bctx.request.reproducible ? new Date(0).toISOString() : new Date().toISOString();
  const single = bctx.request.singleSnapshot;

  // A RUN or COPY that fills a tmpfs rootfs fails like one that fills a disk: say which it was.
  const warnIfFull = async (err: unknown): Promise<never> => {
    const hint = await bctx.area.fullHint();
    if (hint !== undefined) log.warn(hint);
    throw err;
  };

  const triggers = onbuildTriggers(df, stage, baseConfig.config?.OnBuild ?? []);
  log.info(`Executing ${triggers.length} build triggers`);
  for (const instr of [...triggers, ...stage.instructions]) {
    bctx.signal.throwIfAborted();
    log.info(instr.source);
    const site = siteOf(df, instr);
    const reason = instr.source.split(/\s+/, 1)[0]?.toUpperCase() ?? instr.kind.toUpperCase();
    const env: InstructionEnv = {
      ctx: bctx,
      site,
      stdout: bctx.stdout,
      stderr: bctx.stderr,
      rootfs: () => rootfs.root(`${reason}`),
      sandbox: () => rootfs.sandbox(`${reason}`),
      context: inputs.context,
      // A --from image that cannot be pulled still names the instruction (as a FROM image does).
      fromRootfs: (from) =>
        inputs.fromRootfs(from, site).catch((err: unknown) => {
          if (err instanceof KilnError && !(err instanceof DockerfileError)) {
            throw new DockerfileError(`--from=${from}: ${err.message}`, site, { cause: err });
          }
          throw err;
        }),
      buildArgs: inputs.buildArgs,
      globalArgs: inputs.globalArgs,
      runOnlyArgs: inputs.runOnlyArgs,
      runMounts: {
        cacheDir: bctx.request.mountCacheDir,
        scratchDir: join(bctx.request.workDir, 'run-mounts'),
        secrets: bctx.request.secrets,
        mask: bctx.mask,
      },
    };
    const step = await runHandler(instr, state, env).catch(warnIfFull);
    state = step.state;
    let layer: Layer | null = null;
    rootfs.record(step.fs, instr.kind === 'run');
    if (step.fs.kind !== 'none' && !single) layer = await rootfs.snapshot(step.fs).catch(warnIfFull);
    if (layer !== null) {
      layers.push(layer);
      history.push({ created: now, created_by: step.createdBy });
    } else {
      if (step.fs.kind !== 'none' && !single) log.info('No files were changed, appending empty layer to config. No layer added to image.');
      history.push({ created: now, created_by: step.createdBy, empty_layer: true });
    }
  }
  if (single) {
    const layer = await rootfs.snapshot(undefined);
    if (layer !== null) {
      layers.push(layer);
      history.push({ created: now, created_by: 'kiln --single-snapshot', comment: 'all changes of the stage' });
    }
  }
  if (rootfs.materialized === undefined) log.info('Skipping unpacking as no commands require it.');

  let config = state.config;
  if (inputs.extraLabels.size > 0) config = { ...config, Labels: { ...(config.Labels ?? {}), ...Object.fromEntries(inputs.extraLabels) } };
  const image = assembleImage({
    family: manifestFamily(await base.mediaType()),
    config: {
      ...baseConfig,
      created: now,
      ...(state.author !== undefined ? { author: state.author } : {}),
      config,
      rootfs: { type: 'layers', diff_ids: [] },
      history,
    },
    layers,
  });
  return {
    index: stage.index,
    image,
    // In container mode `/` is reused by the next stage, so nothing on disk stays valid.
    rootfs: bctx.request.runMode === 'container' ? undefined : rootfs.materialized,
  };
}

async function runHandler(instr: Instruction, state: StageState, env: InstructionEnv): Promise<Step> {
  const handler = HANDLERS[instr.kind] as Handler<Instruction>;
  try {
    return await handler(instr, state, env);
  } catch (err) {
    if (err instanceof KilnError) throw err;
    // An unexpected failure (EACCES, ENOSPC, ...) still points at the instruction that hit it.
    throw new DockerfileError((err as Error).message ?? String(err), env.site, { cause: err });
  }
}
