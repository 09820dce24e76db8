// Builds one stage: base -> (rootfs, on first need) -> instructions -> snapshots -> image.
import { readdirSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseDockerfile } from '../dockerfile/parse.js';
import type { Dockerfile, Instruction, Stage } from '../dockerfile/instructions.js';
import type { StagePlan } from '../dockerfile/plan.js';
import { DockerfileError, KilnError } from '../errors.js';
import { HANDLERS } from '../instructions/handlers.js';
import { workdirState } from '../instructions/workdir.js';
import type { ContextFiles, Handler, InstructionEnv, InstructionSite, Step } from '../instructions/handler.js';
import { DEFAULT_PATH, type StageState } from '../instructions/stage-state.js';
import { assembleImage } from '../oci/assemble.js';
import type { Image, Layer } from '../oci/image.js';
import type { LayerFileCodec } from '../blob/compression.js';
import { manifestFamily } from '../oci/media-types.js';
import type { ContainerConfig, History, Platform } from '../oci/schemas.js';
import { ChrootSandbox } from '../sandbox/chroot-sandbox.js';
import { ContainerSandbox } from '../sandbox/container-sandbox.js';
import { staticIsolateHelperPath } from '../sandbox/isolated-run.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { fileLandsAt, readBasePaths, type BasePaths } from '../rootfs/base-paths.js';
import { mkdirAllInRoot } from '../rootfs/in-root.js';
import { OFF_THREAD_MIN } from '../rootfs/unpack-worker.js';
import { Snapshotter } from '../snapshot/snapshotter.js';
import type { BuildContext } from './build-deps.js';
import { CacheKeyChain } from './cache-key.js';
import { keyInstruction } from './instruction-key.js';
import { clearContainerRoot, cloneRootfs, compressedSize, unpackImage, unpackPulledLayer } from './rootfs-materializer.js';
import { emptyLayer } from './empty-layer.js';
import { chooseOverlay } from './snapshot-strategy.js';
import type { FsEffect } from '../instructions/handler.js';
import type { EarlyUploads } from './early-uploads.js';
import type { LayerWriting } from '../blob/layer-file.js';
import type { StageHandle } from './build-report.js';

export interface StageResult {
  readonly index: number;
  readonly image: Image;
  /** Host directory with the stage's final filesystem, when one exists and stays valid. */
  readonly rootfs: string | undefined;
  /** With the layer cache: the stage's final key, and whether it stands for the stage's content. */
  readonly cacheKey: { readonly key: string; readonly keyed: boolean } | undefined;
  /** Container mode: `/` holds the stage's final filesystem (it was unpacked there), until the next stage replaces it. */
  readonly onContainerRoot: boolean;
}

export interface StageInputs {
  readonly df: Dockerfile;
  readonly stage: Stage;
  readonly stagePlan: StagePlan;
  /** Where the stage's steps are reported (its own handle: stages may run at the same time). */
  readonly report: StageHandle;
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
  /** The platform the stage is built for. */
  readonly platform: Platform;
  /** How this stage's layers are compressed (the build's codec, unless no output holds them: executor.ts). */
  readonly layerCodec: LayerFileCodec;
  fromRootfs(from: string, site: InstructionSite): Promise<string>;
  /** Where this stage's layers are uploaded while they are written (an output stage's, when the build pushes). */
  readonly earlyUploads?: EarlyUploads | undefined;
  /**
   * Container mode: called before `/` is cleared for this stage. Resolves once the stage holds `/`
   * (until it ends: other stages wait for it meanwhile) and an earlier stage's filesystem still there
   * has been moved aside if a later --from reads it.
   */
  readonly claimContainerRoot?: (() => Promise<void>) | undefined;
  /** With the layer cache: what a `--from` source's key stands for, when a string says it all (layer-cache.ts). */
  fromIdentity(from: string, site: InstructionSite): Promise<string | undefined>;
}

/** The rootfs of the stage being built, unpacked when an instruction first needs it. */
class StageRootfs {
  #root: string | undefined;
  #snapshotter: Snapshotter | undefined;
  #sandbox: Sandbox | undefined;
  /** Whether RUN goes through an overlay whose upper dir the snapshotter takes (RUNs mark themselves). */
  #overlay = false;
  #layerCount = 0;
  /**
   * A deferred stage: the base is not unpacked (nor, unless an output needs its layers, downloaded)
   * while the stage's instructions are COPYs and WORKDIRs that do not depend on what the base holds.
   * They write into `root`, an empty tree whose snapshots hold only what they wrote (Snapshotter's
   * delta mode), and the layers are kept to be applied if a later instruction needs the real rootfs.
   */
  #delta: { root: string; snapshotter: Snapshotter } | undefined;
  /** What the base holds, for a deferred stage's COPY of a file (deltaRootForFile). */
  #basePaths: Promise<BasePaths> | undefined;
  /** What the delta root has taken so far: see deltaRootForFile. */
  #deltaHolds: 'files' | 'dirs' | undefined;
  /**
   * Layers to apply, in order, on top of the base when the rootfs is unpacked: a deferred stage's
   * snapshots and the layers of instructions taken from the layer cache before anything needed the
   * rootfs (a stage whose every instruction hits never unpacks its base at all).
   */
  #pending: Layer[] = [];
  /** Whether the layer being written now goes to the early uploads (see `snapshot`). */
  #uploadWhileWriting = false;
  /** The name of the layer file being written now, for its progress line. */
  #writing = '';

  constructor(
    private readonly bctx: BuildContext,
    private readonly inputs: StageInputs,
    /** Whether the stage may defer its base at all: decided from its instructions before the first runs. */
    private readonly mayDefer: boolean,
  ) {}

  get materialized(): string | undefined {
    return this.#root;
  }

  /**
   * See InstructionEnv.deltaRootForFile. The base's paths are read once, when a COPY first asks. A
   * delta root takes either files (this) or directories (deltaRoot), never both: a delta snapshot
   * records no directory it leaves implicit (a WORKDIR's, an empty directory COPY's destination), which
   * docker's layers hold, and before files could go there such a stage was unpacked at its first file
   * COPY, which made those directories real. Whichever kind comes first keeps the stage deferred; the
   * other unpacks it, as before.
   */
  async deltaRootForFile(dest: string): Promise<string | undefined> {
    if (this.#root !== undefined || !this.mayDefer || this.#deltaHolds === 'dirs') return undefined;
    this.#basePaths ??= readBasePaths(this.inputs.base, this.bctx.signal);
    if (!fileLandsAt(await this.#basePaths, dest)) return undefined;
    const root = await this.#deltaRoot();
    if (root !== undefined) this.#deltaHolds = 'files';
    return root;
  }

  /** The deferred stage's delta root for directories (a WORKDIR, a COPY into a directory), or undefined once the real rootfs exists. */
  async deltaRoot(): Promise<string | undefined> {
    if (this.#deltaHolds === 'files') return undefined;
    const root = await this.#deltaRoot();
    if (root !== undefined) this.#deltaHolds = 'dirs';
    return root;
  }

  async #deltaRoot(): Promise<string | undefined> {
    if (this.#root !== undefined || !this.mayDefer) return undefined;
    if (this.#delta !== undefined) return this.#delta.root;
    const { bctx, inputs } = this;
    const parent = bctx.request.runMode === 'container' ? bctx.request.workDir : await bctx.area.dir(await compressedSize(inputs.base));
    const root = join(parent, 'stages', String(inputs.stage.index), 'delta');
    await mkdir(root, { recursive: true, mode: 0o755 });
    this.#delta = { root, snapshotter: await this.#startSnapshotter(root, true) };
    bctx.log.info('Deferring the base image: COPY and WORKDIR so far need nothing from it');
    return root;
  }

  /**
   * Puts what the stage did before the rootfs existed onto the just-unpacked rootfs: its layers (a
   * deferred stage's snapshots, cached layers), then a deferred stage's directories.
   */
  async #applyPending(root: string): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    for (const layer of pending) await this.#unpack(root, layer);
    const delta = this.#delta;
    if (delta === undefined) return;
    this.#delta = undefined;
    // Directories the layers leave implicit (WORKDIRs, COPY destinations): created as a runtime would.
    for (const dir of listDirs(delta.root)) await mkdirAllInRoot(root, `/${dir}`);
    await rm(delta.root, { recursive: true, force: true });
  }

  async #unpack(root: string, layer: Layer, onPath?: (rel: string) => void): Promise<void> {
    const what = `layer ${await layer.digest()}`;
    await unpackPulledLayer(root, layer, {
      ignore: this.bctx.ignore,
      ctx: this.bctx,
      expectedDiffId: await layer.diffId(),
      what,
      offThread: (await layer.size()) >= OFF_THREAD_MIN,
      ...(onPath !== undefined ? { onPath } : {}),
    });
  }

  /**
   * An instruction's layer taken from the layer cache instead of running it. Before the rootfs exists
   * it waits with the deferred layers; on an unpacked rootfs it is applied now (whiteouts delete what
   * they name) and the snapshotter re-reads its baseline for the paths the layer touched, so the next
   * snapshot does not carry the layer's files again.
   */
  async applyCached(layer: Layer): Promise<void> {
    const root = this.#root;
    if (root === undefined) {
      this.#pending.push(layer);
      return;
    }
    const touched = new Set<string>();
    await this.#unpack(root, layer, (rel) => touched.add(rel));
    // Only what the layer touched is rescanned: a cache hit costs no walk of the whole rootfs.
    await this.#snapshotter?.rebasePaths(touched);
  }

  async root(reason: string): Promise<string> {
    if (this.#root !== undefined) return this.#root;
    const { bctx, inputs } = this;
    const { log } = bctx;
    log.info(`Unpacking rootfs as cmd ${reason} requires it.`);
    let root: string;
    if (bctx.request.runMode === 'container') {
      root = '/';
      await inputs.claimContainerRoot?.();
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
    await this.#applyPending(root);
    // A RUN mount's stub moves its parent's ctime (no one can set it back): the snapshot must not
    // record a directory for that alone.
    const onStubParents = (rels: readonly string[]): void => this.#snapshotter?.markStubParents(rels);
    if (bctx.request.runMode === 'sandbox') {
      if (bctx.bwrap === undefined) {
        throw new KilnError('SANDBOX', 'sandbox mode runs RUN with bubblewrap, which is not installed (apt-get install bubblewrap)');
      }
      // Upper dirs live beside the rootfs: on its filesystem, so merging them is a rename.
      const scratch = join(dirname(root), 'overlay');
      const tools = await chooseOverlay(bctx, scratch);
      const overlay = tools === undefined ? undefined : { tools, scratch, collect: (upper: string, touched: readonly string[]) => this.#collect(upper, touched) };
      // A static kiln-isolate (npm's build links it statically where it can) becomes a non-root USER
      // inside bwrap, with no user namespace: files keep their real owners, as in docker build.
      const identityHelper = staticIsolateHelperPath();
      const sandbox = new ChrootSandbox({ root, bwrap: bctx.bwrap, onStubParents, ...(overlay !== undefined ? { overlay } : {}), ...(identityHelper !== undefined ? { identityHelper } : {}) });
      await sandbox.prepare();
      this.#sandbox = sandbox;
      this.#overlay = overlay !== undefined;
    } else {
      this.#sandbox = new ContainerSandbox(await bctx.runIsolation(), onStubParents);
    }
    log.info('Initializing snapshotter ...');
    this.#snapshotter = await this.#startSnapshotter(root, false);
    this.#root = root;
    return root;
  }

  /** A snapshotter of `root` with the build's settings, its baseline taken; layers go to `<work>/layers`. */
  async #startSnapshotter(root: string, delta: boolean): Promise<Snapshotter> {
    const { request } = this.bctx;
    const layers = join(request.workDir, 'layers');
    await mkdir(layers, { recursive: true });
    const snapshotter = new Snapshotter({
      root,
      ignore: this.bctx.ignore,
      workDir: layers,
      ctx: this.bctx,
      codec: this.inputs.layerCodec,
      mode: request.snapshotMode,
      reproducible: request.reproducible,
      delta,
      onLayerWriting: (w) => {
        this.#watchWrite(w);
        if (this.#uploadWhileWriting) this.inputs.earlyUploads?.watch(w);
      },
    });
    await snapshotter.init();
    return snapshotter;
  }

  /** A layer file being written is a transfer too: a large snapshot shows its progress. */
  #watchWrite(w: LayerWriting): void {
    const t = this.bctx.transfers?.start({ kind: 'snapshot', label: this.#writing, read: () => w.written() });
    if (t === undefined) return;
    w.done.then(
      async (l) => t.end({ bytes: await l.size(), digest: await l.digest() }),
      () => t.fail(),
    );
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
    const snap = this.#snapshotter ?? this.#delta?.snapshotter;
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
    const delta = this.#snapshotter === undefined ? this.#delta : undefined;
    const snap = this.#snapshotter ?? delta?.snapshotter;
    if (snap === undefined) return null;
    this.bctx.log.info(fs?.kind === 'paths' ? 'Taking snapshot of files...' : 'Taking snapshot of full filesystem...');
    const n = this.#layerCount++;
    // Uploaded while written (early-uploads.ts): what a RUN made, whose digest is new unless the build
    // is reproducible. A COPY of unchanged context files (times kept) gives the same layer build after
    // build: the push's HEAD finds it in the registry, and sending it early would only cost bandwidth.
    this.#uploadWhileWriting = fs?.kind !== 'paths' && !this.bctx.request.reproducible;
    const name = `stage${this.inputs.stage.index}-${n}.tar.gz`;
    this.#writing = name;
    try {
      const layer = await snap.snapshot(name);
      if (layer !== null && delta !== undefined) this.#pending.push(layer);
      return layer;
    } finally {
      this.#uploadWhileWriting = false;
    }
  }
}

/**
 * Whether a stage is worth deferring: only if nothing in it is sure to need the base's files (a RUN, an
 * ADD, a COPY --chown), so a stage that unpacks anyway builds exactly as it would without deferral. A
 * COPY that turns out to depend on the base (a file to a destination the base may hold as a directory)
 * still unpacks it then, and the deferred layers are applied on top.
 */
export function mayDefer(instructions: readonly Instruction[]): boolean {
  return instructions.every((i) => (i.kind === 'copy' ? i.chown === undefined : i.kind !== 'run' && i.kind !== 'add'));
}

/** Every directory under `root`, parents first, as root-relative paths (a delta tree: small). */
function listDirs(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const ent of readdirSync(rel === '' ? root : join(root, rel), { withFileTypes: true })) {
    if (!ent.isDirectory()) continue;
    const child = rel === '' ? ent.name : `${rel}/${ent.name}`;
    out.push(child, ...listDirs(root, child));
  }
  return out;
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
  const triggers = onbuildTriggers(df, stage, baseConfig.config?.OnBuild ?? []);
  // --single-snapshot takes no delta snapshot per COPY: what a deferred stage wrote could then not be
  // applied when a later instruction needs the base, so such builds unpack as before. FROM scratch
  // has nothing to defer: its layers keep their parent directories, as docker writes them.
  const deferrable = inputs.stagePlan.base.kind !== 'scratch' && !bctx.request.singleSnapshot && mayDefer([...triggers, ...stage.instructions]);
  const rootfs = new StageRootfs(bctx, inputs, deferrable);
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
  const family = manifestFamily(await base.mediaType());
  // The layer cache needs a layer per instruction: --single-snapshot builds without it.
  const cache = single ? undefined : bctx.layerCache;
  if (bctx.layerCache !== undefined && single) log.info('--single-snapshot takes no layer per instruction: the layer cache is not used');
  let chain = cache === undefined ? undefined : CacheKeyChain.start(await chainStart(bctx, inputs, deferrable));
  let keyed = inputs.baseStage === undefined || inputs.baseStage.cacheKey?.keyed === true;

  // A RUN or COPY that fills a tmpfs rootfs fails like one that fills a disk: say which it was.
  const warnIfFull = async (err: unknown): Promise<never> => {
    const hint = await bctx.area.fullHint();
    if (hint !== undefined) log.warn(hint);
    throw err;
  };

  log.info(`Executing ${triggers.length} build triggers`);
  for (const instr of [...triggers, ...stage.instructions]) {
    bctx.signal.throwIfAborted();
    const report = inputs.report.stepStart(instr.line, instr.source, instr.kind === 'run');
    try {
      log.info(instr.source);
      const site = siteOf(df, instr);
      const reason = instr.source.split(/\s+/, 1)[0]?.toUpperCase() ?? instr.kind.toUpperCase();
      const env: InstructionEnv = {
        ctx: bctx,
        site,
        stdout: bctx.stdout,
        stderr: bctx.stderr,
        ignore: bctx.ignore,
        rootfs: () => rootfs.root(`${reason}`),
        deltaRootfs: () => rootfs.deltaRoot(),
        deltaRootForFile: (dest) => rootfs.deltaRootForFile(dest),
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
          sshAgents: bctx.sshAgents,
          mask: bctx.mask,
        },
        hostEnv: bctx.request.contextFetch.hostEnv,
      };
      let cacheable = false;
      if (cache !== undefined && chain !== undefined) {
        const k = await keyInstruction(instr, state, env, chain, { settings: cache.settings, fromIdentity: (from) => inputs.fromIdentity(from, site) });
        chain = k.chain;
        keyed &&= k.keyed;
        // A deferred stage's WORKDIR writes into the delta tree, which a hit would leave without it.
        cacheable = k.cacheable && !(deferrable && instr.kind === 'workdir');
        const hit = cacheable ? await cache.lookup(chain.key, instr.source, inputs.platform) : undefined;
        if (cacheable) report.cache(hit !== undefined ? 'hit' : 'miss', hit !== undefined && hit.layer !== null ? await hit.layer.digest() : undefined);
        if (hit !== undefined) {
          report.layer(hit.layer === null ? null : { digest: await hit.layer.digest(), size: await hit.layer.size() });
          // RUN, COPY and ADD change only the filesystem, which the layer holds; WORKDIR also the config.
          if (instr.kind === 'workdir') state = workdirState(instr, state, env);
          if (hit.layer !== null) {
            await rootfs.applyCached(hit.layer).catch(warnIfFull);
            layers.push(hit.layer);
            history.push({ created: now, created_by: hit.createdBy });
          } else {
            history.push({ created: now, created_by: hit.createdBy, empty_layer: true });
          }
          continue;
        }
      }
      const step = await runHandler(instr, state, env).catch(warnIfFull);
      state = step.state;
      let layer: Layer | null = null;
      rootfs.record(step.fs, instr.kind === 'run');
      if (step.fs.kind !== 'none' && !single) layer = await rootfs.snapshot(step.fs).catch(warnIfFull);
      if (layer === null && bctx.request.forceBuildMetadata && !single) {
        layer = await emptyLayer(bctx.request.workDir, `stage${stage.index}-metadata-${history.length}.tar`, inputs.layerCodec);
      }
      report.layer(layer === null ? null : { digest: await layer.digest(), size: await layer.size() });
      if (layer !== null) {
        layers.push(layer);
        history.push({ created: now, created_by: step.createdBy });
      } else {
        if (step.fs.kind !== 'none' && !single) log.info('No files were changed, appending empty layer to config. No layer added to image.');
        history.push({ created: now, created_by: step.createdBy, empty_layer: true });
      }
      if (cacheable && cache !== undefined && chain !== undefined) cache.store(chain.key, layer, step.createdBy, inputs.platform, family);
    } catch (err) {
      report.fail(err);
      throw err;
    } finally {
      // After a failure, a no-op: the step stays failed.
      report.end();
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
    family,
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
    cacheKey: chain === undefined ? undefined : { key: chain.key, keyed },
    onContainerRoot: bctx.request.runMode === 'container' && rootfs.materialized !== undefined,
  };
}

/** Where a stage's key chain starts: its base and platform, and the settings that shape its layers. */
async function chainStart(bctx: BuildContext, inputs: StageInputs, deferrable: boolean): Promise<{ base: string; platform: string; settings: Record<string, unknown> }> {
  const { request } = bctx;
  const baseKey = inputs.baseStage?.cacheKey?.key;
  const base = baseKey !== undefined ? `stage:${baseKey}` : `image:${await inputs.base.digest()}`;
  const p = inputs.platform;
  return {
    base,
    platform: [p.os, p.architecture, p.variant ?? ''].join('/'),
    settings: {
      reproducible: request.reproducible,
      runMode: request.runMode,
      snapshotMode: request.snapshotMode,
      ignorePaths: request.ignorePaths,
      deferrable,
    },
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
