// The typed Dockerfile: what `parseDockerfile` returns. Pure data, JSON-able, immutable by type.
//
// Values that the builder expands at run time (BuildKit expands each instruction when it is
// dispatched, against that stage's ARG/ENV scope) are kept RAW here: quotes, escapes and `$vars`
// exactly as written. `expand.ts` turns them into final strings; `expansionOf(kind)` says how.

export type EscapeChar = '\\' | '`';

/** Where an instruction sits in the file: 1-based first and last line, and its text. */
export interface Located {
  /** 1-based line where the instruction starts. */
  readonly line: number;
  /** 1-based last line (continuations and heredoc bodies included). */
  readonly endLine: number;
  /** The instruction's logical line: continuations joined, comment lines dropped, heredoc bodies left out. */
  readonly source: string;
}

/** A command given in shell form (run by the stage's SHELL) or exec form (a JSON array). */
export type CommandLine =
  | { readonly form: 'shell'; readonly command: string }
  | { readonly form: 'exec'; readonly args: readonly string[] };

/**
 * A here-document attached to RUN, COPY or ADD (BuildKit's `Heredoc`).
 * `content` is every line between the instruction and the terminator, newlines kept; with `chomp`
 * (`<<-EOF`) leading tabs are already stripped from each line. `expand` is false when any part of
 * the delimiter was quoted (`<<'EOF'`, `<<"EOF"`): the body is then used verbatim.
 */
export interface Heredoc {
  readonly name: string;
  readonly content: string;
  readonly expand: boolean;
  readonly chomp: boolean;
  /** The file descriptor prefix (`3<<EOF`), 0 when absent (BuildKit treats 0 as stdin). */
  readonly fileDescriptor: number;
}

/** A key and a RAW value (ENV, LABEL). */
export interface KeyValue {
  readonly key: string;
  readonly value: string;
}

/** An ARG declaration: name and optional RAW default. */
export interface ArgDeclaration {
  readonly name: string;
  readonly defaultValue?: string;
}

export type MountSharing = 'shared' | 'private' | 'locked';

/**
 * A `RUN --mount=...`, parsed as BuildKit's `parseMount` does. String options are RAW (BuildKit
 * expands them at dispatch), except `from`, which names a stage or image and is resolved by the plan.
 * Defaults applied: bind/secret/ssh are read-only unless `rw`; cache/tmpfs are read-write.
 */
export type Mount =
  | {
      readonly type: 'bind';
      readonly target: string;
      readonly source?: string;
      readonly from?: string;
      readonly readOnly: boolean;
    }
  | {
      readonly type: 'cache';
      readonly target: string;
      readonly id?: string;
      readonly sharing: MountSharing;
      readonly source?: string;
      readonly from?: string;
      readonly readOnly: boolean;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
    }
  | {
      readonly type: 'tmpfs';
      readonly target: string;
      /** Size limit in bytes, when given. */
      readonly size?: number;
    }
  | {
      readonly type: 'secret';
      readonly id?: string;
      readonly target?: string;
      /** Expose the secret as this environment variable instead of (or as well as) a file. */
      readonly env?: string;
      readonly required: boolean;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
    }
  | {
      readonly type: 'ssh';
      readonly id?: string;
      readonly target?: string;
      readonly required: boolean;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
    };

export type MountType = Mount['type'];
export type RunNetwork = 'default' | 'none' | 'host';
export type RunSecurity = 'sandbox' | 'insecure';

/** A COPY/ADD source: a path (RAW, may hold globs, URLs and `$vars`) or an inline heredoc file. */
export type CopySource =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'heredoc'; readonly heredoc: Heredoc };

/** Docker's HealthConfig: durations in nanoseconds, 0 meaning "inherit / default" as docker stores it. */
export type HealthConfig =
  | { readonly type: 'none' }
  | {
      readonly type: 'cmd';
      /** `['CMD', ...args]` (exec form) or `['CMD-SHELL', command]` (shell form), as docker stores `Test`. */
      readonly test: readonly string[];
      readonly intervalNs: number;
      readonly timeoutNs: number;
      readonly startPeriodNs: number;
      readonly startIntervalNs: number;
      readonly retries: number;
    };

export interface FromInstruction extends Located {
  readonly kind: 'from';
  /** The base as written, RAW (global ARGs are expanded by the plan). */
  readonly image: string;
  /** `--platform` as written, RAW. */
  readonly platform?: string;
  /** Stage name from `AS name`, lowercased (stage names are case-insensitive in BuildKit). */
  readonly stageName?: string;
}

export interface RunInstruction extends Located {
  readonly kind: 'run';
  readonly command: CommandLine;
  readonly heredocs: readonly Heredoc[];
  readonly mounts: readonly Mount[];
  readonly network?: RunNetwork;
  readonly security?: RunSecurity;
}

export interface CmdInstruction extends Located {
  readonly kind: 'cmd';
  readonly command: CommandLine;
}

export interface EntrypointInstruction extends Located {
  readonly kind: 'entrypoint';
  readonly command: CommandLine;
}

export interface LabelInstruction extends Located {
  readonly kind: 'label';
  readonly labels: readonly KeyValue[];
}

export interface ExposeInstruction extends Located {
  readonly kind: 'expose';
  /** RAW words (`80`, `443/tcp`, `$PORT`); expand each with `expandWords`. */
  readonly ports: readonly string[];
}

export interface EnvInstruction extends Located {
  readonly kind: 'env';
  readonly pairs: readonly KeyValue[];
}

interface CopyLike extends Located {
  readonly sources: readonly CopySource[];
  /** Destination, RAW. */
  readonly dest: string;
  /** `json` when written as a JSON array (each element is one word; quotes are JSON's). */
  readonly form: 'shell' | 'json';
  readonly chown?: string;
  readonly chmod?: string;
  readonly link: boolean;
  readonly exclude: readonly string[];
}

export interface CopyInstruction extends CopyLike {
  readonly kind: 'copy';
  /** `--from`: a stage name, a stage index or an image reference; resolved by the plan. */
  readonly from?: string;
  readonly parents: boolean;
}

export interface AddInstruction extends CopyLike {
  readonly kind: 'add';
  readonly checksum?: string;
  readonly keepGitDir: boolean;
}

export interface VolumeInstruction extends Located {
  readonly kind: 'volume';
  /** RAW paths; JSON form elements or whitespace-separated words. */
  readonly paths: readonly string[];
  readonly form: 'shell' | 'json';
}

export interface UserInstruction extends Located {
  readonly kind: 'user';
  /** RAW `user[:group]` (split at the first `:` after expansion). */
  readonly user: string;
}

export interface WorkdirInstruction extends Located {
  readonly kind: 'workdir';
  readonly path: string;
}

export interface ArgInstruction extends Located {
  readonly kind: 'arg';
  readonly args: readonly ArgDeclaration[];
}

export interface OnbuildInstruction extends Located {
  readonly kind: 'onbuild';
  /** The trigger, parsed (never ONBUILD, FROM or MAINTAINER). */
  readonly trigger: Instruction;
  /** The trigger's text as docker stores it in the image config's `OnBuild` list. */
  readonly expression: string;
}

export interface StopsignalInstruction extends Located {
  readonly kind: 'stopsignal';
  readonly signal: string;
}

export interface HealthcheckInstruction extends Located {
  readonly kind: 'healthcheck';
  readonly health: HealthConfig;
}

export interface ShellInstruction extends Located {
  readonly kind: 'shell';
  readonly shell: readonly string[];
}

export interface MaintainerInstruction extends Located {
  readonly kind: 'maintainer';
  readonly maintainer: string;
}

/** Every instruction that may appear inside a stage (FROM starts a stage and is kept on it). */
export type Instruction =
  | RunInstruction
  | CmdInstruction
  | EntrypointInstruction
  | LabelInstruction
  | ExposeInstruction
  | EnvInstruction
  | CopyInstruction
  | AddInstruction
  | VolumeInstruction
  | UserInstruction
  | WorkdirInstruction
  | ArgInstruction
  | OnbuildInstruction
  | StopsignalInstruction
  | HealthcheckInstruction
  | ShellInstruction
  | MaintainerInstruction;

export type InstructionKind = Instruction['kind'];
export type AnyInstruction = Instruction | FromInstruction;

export interface Stage {
  readonly index: number;
  /** Lowercased `AS` name. */
  readonly name?: string;
  readonly from: FromInstruction;
  readonly instructions: readonly Instruction[];
}

export type WarningCode =
  | 'empty-continuation-line'
  | 'maintainer-deprecated'
  | 'stage-name-casing'
  | 'legacy-key-value-format';

/** A parse warning: data for the caller to print, never logged here. */
export interface Warning {
  readonly code: WarningCode;
  readonly message: string;
  readonly line: number;
}

export interface Dockerfile {
  readonly file: string;
  readonly directives: { readonly syntax?: string; readonly escape: EscapeChar };
  /** ARGs before the first FROM. */
  readonly globalArgs: readonly ArgInstruction[];
  readonly stages: readonly Stage[];
  readonly warnings: readonly Warning[];
}
