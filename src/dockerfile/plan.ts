// The build plan: which stages to build, in which order, on what base. Pure; the result is plain
// JSON-able data, printable for `--dry-run`. Rules follow BuildKit's dockerfile2llb (convert.go):
//
// - Global ARGs (before the first FROM) are evaluated in order; a build arg overrides a default, and the
//   automatic platform ARGs (TARGETPLATFORM, BUILDPLATFORM, ...) are in scope without being declared.
//   FROM's image text and `--platform` are expanded against that scope and nothing else.
// - `FROM name` refers to a stage only if a stage of that name was defined EARLIER (states are
//   registered in order); otherwise it is an image, so `FROM x AS x` pulls image x.
// - `COPY --from=` and `RUN --mount=from=` see ALL stages: a number is a stage index (out of range:
//   "invalid stage index N"), a name (case-insensitive) a stage, forward references included; anything
//   else is an image. A stage that depends on itself, or a loop of stages, is an error
//   ("circular dependency detected on stage: NAME"), checked over every stage as BuildKit does.
// - Default target: the last stage. Stages not reachable from the target are not built.
// - `--from` is expanded against the global ARG scope. BuildKit does not expand it at all
//   (moby/buildkit#2374: an unexpanded `$X` fails as an invalid reference); kaniko does, with build
//   args. Expanding against the global scope accepts what kaniko users write and changes nothing for
//   Dockerfiles BuildKit accepts.

import { DockerfileError, InvalidReferenceError, UsageError } from '../errors.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { parseReference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import { expandWord } from './expand.js';
import type { Dockerfile, Instruction, Located, Stage } from './instructions.js';

export interface PlanOptions {
  /** `--target`: a stage name (case-insensitive). Default: the last stage. */
  readonly target?: string;
  /** `--build-arg`s; a value of `undefined` (`--build-arg NAME` with nothing to take) overrides nothing. */
  readonly buildArgs: ReadonlyMap<string, string | undefined>;
  /** The platform being built for (TARGET* args). */
  readonly targetPlatform: Platform;
  /** The platform the build runs on (BUILD* args). */
  readonly buildPlatform: Platform;
}

export type StageBase =
  | { readonly kind: 'scratch' }
  | { readonly kind: 'stage'; readonly index: number }
  /** An image reference as written after expansion (parse it with `parseReference`). */
  | { readonly kind: 'image'; readonly ref: string };

/** Where files come from for `COPY --from` / `RUN --mount=from=`. */
export type FromSource = { readonly kind: 'stage'; readonly index: number } | { readonly kind: 'image'; readonly ref: string };

export interface StageReference {
  readonly line: number;
  readonly via: 'copy' | 'mount';
  /** The `--from` value as written. */
  readonly written: string;
  readonly source: FromSource;
}

export interface NameValue {
  readonly name: string;
  readonly value: string;
}

export interface StagePlan {
  readonly index: number;
  readonly name?: string;
  /** Whether the target needs this stage. */
  readonly needed: boolean;
  readonly base: StageBase;
  /** `FROM --platform`, expanded and normalised (`linux/arm64`), when given. */
  readonly platform?: string;
  /** Stages this one needs first (its base stage and every `--from` stage), ascending, unique. */
  readonly dependsOn: readonly number[];
  /** Every `--from` of the stage, resolved. */
  readonly references: readonly StageReference[];
}

export interface BuildPlan {
  /** Index of the target stage. */
  readonly target: number;
  /** The needed stages, dependencies first. */
  readonly order: readonly number[];
  readonly stages: readonly StagePlan[];
  /** Global ARGs after build-arg overrides (a declared ARG without value is `''`), in declaration order. */
  readonly globalArgs: readonly NameValue[];
  /** Build args in effect: the automatic platform ARGs, then the user's (which win). */
  readonly buildArgs: readonly NameValue[];
  /** User build args no ARG consumes (globally or in a needed stage): docker warns about these. */
  readonly unusedBuildArgs: readonly string[];
}

/** Build args docker never reports as unused (builtinAllowedBuildArgs). */
const BUILTIN_BUILD_ARGS: ReadonlySet<string> = new Set([
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
]);

/** The automatic platform ARGs (Dockerfile reference, "Automatic platform ARGs in the global scope"). */
export function platformArgs(targetPlatform: Platform, buildPlatform: Platform): NameValue[] {
  return [
    { name: 'TARGETPLATFORM', value: formatPlatform(targetPlatform) },
    { name: 'TARGETOS', value: targetPlatform.os },
    { name: 'TARGETARCH', value: targetPlatform.architecture },
    { name: 'TARGETVARIANT', value: targetPlatform.variant ?? '' },
    { name: 'BUILDPLATFORM', value: formatPlatform(buildPlatform) },
    { name: 'BUILDOS', value: buildPlatform.os },
    { name: 'BUILDARCH', value: buildPlatform.architecture },
    { name: 'BUILDVARIANT', value: buildPlatform.variant ?? '' },
  ];
}

/** A stage as BuildKit names it in messages: its `AS` name, else `stage-N`. */
export function stageLabel(stage: Pick<Stage, 'index' | 'name'>): string {
  return stage.name ?? `stage-${stage.index}`;
}

export function planBuild(df: Dockerfile, options: PlanOptions): BuildPlan {
  const fileError: (detail: string, at?: Located) => never = (detail, at) => {
    throw new DockerfileError(detail, at === undefined ? { file: df.file } : { file: df.file, line: at.line, source: at.source });
  };

  // Build args in effect: automatic platform args, overridden by the user's.
  const effective = new Map<string, string>();
  for (const { name, value } of platformArgs(options.targetPlatform, options.buildPlatform)) effective.set(name, value);
  for (const [name, value] of options.buildArgs) if (value !== undefined) effective.set(name, value);

  // Global scope: the platform args are there undeclared; each global ARG adds or overrides.
  const globalScope = new Map<string, string>(platformArgs(options.targetPlatform, options.buildPlatform).map((a) => [a.name, a.value]));
  const globalArgs: NameValue[] = [];
  const declared = new Set<string>();
  for (const ins of df.globalArgs) {
    const site = { file: df.file, line: ins.line, source: ins.source };
    for (const decl of ins.args) {
      const name = expandWord(decl.name, (n) => globalScope.get(n), df.directives.escape, site);
      declared.add(name);
      const fromUser = options.buildArgs.get(name);
      let value: string;
      if (fromUser !== undefined) value = fromUser;
      else if (decl.defaultValue !== undefined) value = expandWord(decl.defaultValue, (n) => globalScope.get(n), df.directives.escape, site);
      else value = effective.get(name) ?? '';
      globalScope.set(name, value);
      globalArgs.push({ name, value });
    }
  }
  const expandGlobal = (word: string, at: Located): string =>
    expandWord(word, (n) => globalScope.get(n), df.directives.escape, { file: df.file, line: at.line, source: at.source });

  const stageCount = df.stages.length;
  const byName = new Map<string, number>();
  for (const st of df.stages) if (st.name !== undefined) byName.set(st.name, st.index);

  const resolveFrom = (written: string, at: Located): FromSource => {
    const value = expandGlobal(written, at);
    if (/^[+-]?\d+$/.test(value)) {
      const index = Number.parseInt(value, 10);
      if (index < 0 || index >= stageCount) fileError(`invalid stage index ${index}`, at);
      return { kind: 'stage', index };
    }
    const stage = byName.get(value.toLowerCase());
    if (stage !== undefined) return { kind: 'stage', index: stage };
    if (value === '') fileError('--from requires a stage name, index or image', at);
    return { kind: 'image', ref: value };
  };

  // Per stage: base, platform, references.
  const drafts = df.stages.map((st) => {
    const from = st.from;
    const image = expandGlobal(from.image, from);
    if (image === '') fileError(`base name (${from.image}) should not be blank`, from);
    let base: StageBase;
    const earlier = byName.get(image.toLowerCase());
    if (earlier !== undefined && earlier < st.index) base = { kind: 'stage', index: earlier };
    else if (image === 'scratch') base = { kind: 'scratch' };
    else base = { kind: 'image', ref: image };
    const platformText = from.platform === undefined ? undefined : expandGlobal(from.platform, from);
    const references: StageReference[] = [];
    const visit = (ins: Instruction): void => {
      switch (ins.kind) {
        case 'copy':
          if (ins.from !== undefined) references.push({ line: ins.line, via: 'copy', written: ins.from, source: resolveFrom(ins.from, ins) });
          break;
        case 'run':
          for (const m of ins.mounts) {
            if ((m.type === 'bind' || m.type === 'cache') && m.from !== undefined) {
              references.push({ line: ins.line, via: 'mount', written: m.from, source: resolveFrom(m.from, ins) });
            }
          }
          break;
        default:
          break; // ONBUILD triggers run in a child build, not this one
      }
    };
    st.instructions.forEach(visit);
    const deps = new Set<number>();
    if (base.kind === 'stage') deps.add(base.index);
    for (const r of references) if (r.source.kind === 'stage') deps.add(r.source.index);
    return { st, base, platformText, references, dependsOn: [...deps].sort((a, b) => a - b) };
  });

  // Cycles, over every stage (BuildKit checks all, reachable or not).
  const state = new Array<0 | 1 | 2>(stageCount).fill(0); // 0 unvisited, 1 on path, 2 done
  const visitCycle = (i: number): void => {
    state[i] = 1;
    const d = drafts[i];
    if (d !== undefined) {
      for (const dep of d.dependsOn) {
        if (state[dep] === 1) {
          const ref = d.references.find((r) => r.source.kind === 'stage' && r.source.index === dep);
          const at = ref === undefined ? d.st.from : findLocated(d.st, ref.line);
          const culprit = df.stages[dep] as Stage;
          fileError(`circular dependency detected on stage: ${stageLabel(culprit)}`, at);
        }
        if (state[dep] === 0) visitCycle(dep);
      }
    }
    state[i] = 2;
  };
  for (let i = 0; i < stageCount; i++) if (state[i] === 0) visitCycle(i);

  // Target and reachability.
  let target = stageCount - 1;
  if (options.target !== undefined) {
    const t = byName.get(options.target.toLowerCase());
    if (t === undefined) fileError(`target stage "${options.target}" could not be found`);
    target = t;
  }
  const needed = new Set<number>();
  const order: number[] = [];
  const visitNeeded = (i: number): void => {
    if (needed.has(i)) return;
    needed.add(i);
    for (const dep of drafts[i]?.dependsOn ?? []) visitNeeded(dep);
    order.push(i); // post-order: dependencies first
  };
  visitNeeded(target);

  // Validate what will actually be pulled or used: only for needed stages.
  const stages: StagePlan[] = drafts.map((d) => {
    const isNeeded = needed.has(d.st.index);
    let platform: string | undefined;
    if (d.platformText !== undefined) {
      if (isNeeded) {
        try {
          platform = formatPlatform(parsePlatform(d.platformText));
        } catch (err) {
          if (!(err instanceof UsageError)) throw err;
          fileError(`failed to parse platform ${d.platformText}: ${err.message}`, d.st.from);
        }
      } else {
        platform = d.platformText;
      }
    }
    if (isNeeded) {
      if (d.base.kind === 'image') checkReference(d.base.ref, d.st.from, fileError);
      for (const r of d.references) if (r.source.kind === 'image') checkReference(r.source.ref, findLocated(d.st, r.line), fileError);
    }
    return {
      index: d.st.index,
      ...(d.st.name === undefined ? {} : { name: d.st.name }),
      needed: isNeeded,
      base: d.base,
      ...(platform === undefined ? {} : { platform }),
      dependsOn: d.dependsOn,
      references: d.references,
    };
  });

  // Unused build args: not declared by a global ARG nor by an ARG of a needed stage.
  for (const st of df.stages) {
    if (!needed.has(st.index)) continue;
    for (const ins of st.instructions) if (ins.kind === 'arg') for (const a of ins.args) declared.add(a.name);
  }
  const unusedBuildArgs = [...options.buildArgs.keys()]
    .filter((k) => !declared.has(k) && !BUILTIN_BUILD_ARGS.has(k))
    .sort();

  return {
    target,
    order,
    stages,
    globalArgs,
    buildArgs: [...effective].map(([name, value]) => ({ name, value })),
    unusedBuildArgs,
  };
}

/**
 * The value a stage's `ARG name[=default]` takes, BuildKit's precedence: a build arg, else the
 * default (already expanded by the caller against the stage scope), else the global ARG of that name
 * (an ARG redeclared without default inherits the global value). `undefined`: declared but unset.
 */
export function stageArgValue(plan: BuildPlan, name: string, expandedDefault: string | undefined): string | undefined {
  const fromBuild = plan.buildArgs.find((a) => a.name === name);
  if (fromBuild !== undefined) return fromBuild.value;
  if (expandedDefault !== undefined) return expandedDefault;
  return plan.globalArgs.find((a) => a.name === name)?.value;
}

/** A plain JSON value describing the plan, for `--dry-run`. */
export function printablePlan(df: Dockerfile, plan: BuildPlan): PrintablePlan {
  const label = (i: number): string => stageLabel(df.stages[i] ?? { index: i });
  const describeSource = (s: StageBase | FromSource): string => {
    switch (s.kind) {
      case 'scratch':
        return 'scratch';
      case 'stage':
        return `stage ${label(s.index)}`;
      case 'image':
        return `image ${s.ref}`;
    }
  };
  return {
    file: df.file,
    target: label(plan.target),
    order: plan.order.map(label),
    stages: plan.stages.map((s) => ({
      stage: label(s.index),
      index: s.index,
      needed: s.needed,
      base: describeSource(s.base),
      ...(s.platform === undefined ? {} : { platform: s.platform }),
      dependsOn: s.dependsOn.map(label),
      instructions: df.stages[s.index]?.instructions.length ?? 0,
      from: s.references.map((r) => ({ line: r.line, via: r.via, source: describeSource(r.source) })),
    })),
    globalArgs: Object.fromEntries(plan.globalArgs.map((a) => [a.name, a.value])),
    unusedBuildArgs: [...plan.unusedBuildArgs],
  };
}

export interface PrintablePlan {
  readonly file: string;
  readonly target: string;
  readonly order: readonly string[];
  readonly stages: readonly {
    readonly stage: string;
    readonly index: number;
    readonly needed: boolean;
    readonly base: string;
    readonly platform?: string;
    readonly dependsOn: readonly string[];
    readonly instructions: number;
    readonly from: readonly { readonly line: number; readonly via: 'copy' | 'mount'; readonly source: string }[];
  }[];
  readonly globalArgs: Readonly<Record<string, string>>;
  readonly unusedBuildArgs: readonly string[];
}

function findLocated(stage: Stage, line: number): Located {
  return stage.instructions.find((i) => i.line === line) ?? stage.from;
}

function checkReference(ref: string, at: Located, fileError: (detail: string, at?: Located) => never): void {
  try {
    parseReference(ref);
  } catch (err) {
    if (!(err instanceof InvalidReferenceError)) throw err;
    fileError(err.message, at);
  }
}

/** The target stage and the stages it is built FROM, whose layers are the image's. */
export function stagesInOutput(plan: BuildPlan): ReadonlySet<number> {
  const out = new Set<number>();
  for (let index: number | undefined = plan.target; index !== undefined && !out.has(index); ) {
    out.add(index);
    const base: StageBase | undefined = plan.stages[index]?.base;
    index = base?.kind === 'stage' ? base.index : undefined;
  }
  return out;
}
