// The contract between the builder and the one-file-per-command handlers.
import type { Writable } from 'node:stream';
import type { AnyInstruction, Instruction } from '../dockerfile/instructions.js';
import type { RunContext } from '../log/run-context.js';
import type { IgnoreList } from '../rootfs/ignore-list.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { RunMountSupport } from './run/mount-support.js';
import type { StageState } from './stage-state.js';

/** Files of the build context that COPY and ADD may read. */
export interface ContextFiles {
  readonly dir: string;
  /**
   * Expands one COPY/ADD source (a path or glob, already variable-expanded) to context-relative paths
   * (`''` is the context itself), honouring .dockerignore. Throws a DockerfileError at `where` when
   * nothing matches or the source escapes the context.
   */
  resolveSource(pattern: string, where: InstructionSite): Promise<string[]>;
  /** `resolveSource`, each source with the name a copy gives it (a symlink's own name, not its target's). */
  resolveNamedSources(pattern: string, where: InstructionSite): Promise<NamedSource[]>;
  /** Whether a context-relative path is left out by .dockerignore (a directory: with nothing re-included under it). */
  isExcluded(relPath: string, isDir: boolean): boolean;
}

/**
 * A resolved COPY/ADD source: the root-relative path read (`''` is the root; a symlink source followed to
 * its target) and the root-relative path the source names (the link itself), whose last component is
 * the name a file source is copied as (BuildKit names the copy `filepath.Base(src)`, not the target).
 */
export interface NamedSource {
  readonly path: string;
  readonly named: string;
}

export interface InstructionSite {
  readonly file: string;
  readonly line: number;
  readonly source: string;
}

/** What a handler may use. Everything effectful is reached through here, nothing global. */
export interface InstructionEnv {
  readonly ctx: RunContext;
  readonly site: InstructionSite;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** The build's ignore list: paths of the rootfs no instruction writes (kiln's own, mount points). */
  readonly ignore: IgnoreList;
  /** The stage's rootfs, unpacked from the base on first use. */
  rootfs(): Promise<string>;
  /**
   * A deferred stage's delta root (see StageRootfs in src/builder/stage-builder.ts), where an instruction
   * that needs nothing from the base may write instead of unpacking it; undefined once the rootfs is
   * unpacked (or when it holds a file of deltaRootForFile's). What is written there reaches the layer
   * only strictly inside the paths the step reports.
   */
  deltaRootfs(): Promise<string | undefined>;
  /**
   * The delta root for one file copied to the absolute path `dest`, when the stage is still deferred,
   * its delta root holds no directories of deltaRootfs's, and its base holds no directory or symlink
   * at `dest` nor a non-directory above it (read from the base's layer headers,
   * src/rootfs/base-paths.ts); else undefined. The step reports `dest`'s parent as what it changed.
   */
  deltaRootForFile(dest: string): Promise<string | undefined>;
  /** The sandbox RUN executes in; unpacks the rootfs first. */
  sandbox(): Promise<Sandbox>;
  readonly context: ContextFiles;
  /** The rootfs of another stage (or of an image) named by `--from`, materialised read-only. */
  fromRootfs(from: string): Promise<string>;
  /** Build args in effect: the automatic platform ARGs, then `--build-arg`s (which win). */
  readonly buildArgs: ReadonlyMap<string, string>;
  /** Values of the ARGs declared before the first FROM, after --build-arg. */
  readonly globalArgs: ReadonlyMap<string, string>;
  /** Proxy build args, which reach RUN without an ARG (docker's predefined ARGs) and stay out of history. */
  readonly runOnlyArgs: ReadonlyMap<string, string>;
  /** Cache root, scratch space, `--secret`s and the secret mask, for RUN --mount (and ADD <git URL>). */
  readonly runMounts: RunMountSupport;
  /** The executor's environment, which host tools run with (git for ADD <git URL>: PATH, HOME, proxies). */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
}

export type FsEffect =
  /** Only the config changed: history gets an empty_layer entry. */
  | { readonly kind: 'none' }
  /** Files may have changed anywhere: the snapshotter diffs the rootfs. */
  | { readonly kind: 'changed' }
  /**
   * Only these absolute in-rootfs paths (with everything under them, and their parent directories)
   * may have changed: the snapshotter rescans just those (COPY, ADD, WORKDIR).
   */
  | { readonly kind: 'paths'; readonly paths: readonly string[] };

export interface Step {
  readonly state: StageState;
  /** The history entry's created_by. */
  readonly createdBy: string;
  readonly fs: FsEffect;
}

export type Handler<I extends Instruction> = (instr: I, state: StageState, env: InstructionEnv) => Promise<Step>;

export type HandlerTable = { readonly [K in Instruction['kind']]: Handler<Extract<Instruction, { kind: K }>> };

export function isInstruction(i: AnyInstruction): i is Instruction {
  return i.kind !== 'from';
}

export const NO_FS: FsEffect = { kind: 'none' };
export const FS_CHANGED: FsEffect = { kind: 'changed' };

export function fsPaths(paths: readonly string[]): FsEffect {
  return { kind: 'paths', paths };
}
