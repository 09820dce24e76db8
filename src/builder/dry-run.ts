// `--dry-run`: everything a build does before its first RUN that can fail, and nothing after. The
// Dockerfile is parsed and planned (by the caller), each base image and `--from` image is resolved to a
// digest and platform (manifests and configs only: no layer is downloaded), push permission is checked
// as a real build checks it, and the plan is printed: text, or one JSON document with --log-format json.
// With --cache-dir an image comes from there as the build would take it (resolve-image.ts): a digest
// reference the cache dir holds asks no registry at all.
import type { Dockerfile } from '../dockerfile/instructions.js';
import { printablePlan, stageLabel, type BuildPlan, type PrintablePlan } from '../dockerfile/plan.js';
import { DockerfileError, KilnError } from '../errors.js';
import type { RunContext } from '../log/run-context.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { formatReference } from '../oci/reference.js';
import type { Platform } from '../oci/schemas.js';
import type { RegistryClient } from '../registry/client.js';
import { checkPushPermissions } from '../sinks/registry-sink.js';
import { BaseImageCache } from './base-image-cache.js';
import type { BuildRequest } from './build-request.js';
import { resolveImageSource } from './resolve-image.js';

export interface ResolvedImage {
  readonly image: string;
  /** The manifest the build would use (for an index: the platform's manifest). */
  readonly digest: string;
  readonly platform: string;
  /** Where the build would take it from: its registry, or the `--cache-dir` (config and layers there). */
  readonly source: 'registry' | 'cache dir';
}

export interface DryRunPlan extends PrintablePlan {
  readonly dryRun: true;
  readonly platform: string;
  /** Stages that would be built, in order (all of them with --no-skip-unused-stages). */
  readonly runs: readonly string[];
  readonly skipped: readonly string[];
  /** Every image a needed stage is built FROM or copies from, resolved. */
  readonly images: readonly ResolvedImage[];
  readonly destinations: readonly { readonly destination: string; readonly pushPermission: 'ok' | 'not checked' }[];
  readonly outputs: readonly string[];
}

export interface DryRunInputs {
  readonly df: Dockerfile;
  readonly plan: BuildPlan;
  /** The stages the build would run, in order. */
  readonly order: readonly number[];
  readonly request: BuildRequest;
  readonly pullClient: RegistryClient;
  readonly pushClient: RegistryClient;
  readonly ctx: RunContext;
}

export async function dryRun(i: DryRunInputs): Promise<DryRunPlan> {
  const { df, plan, request, ctx } = i;
  const label = (index: number): string => stageLabel(df.stages[index] ?? { index });
  const routes = { registryMap: request.registry.registryMap, skipDefaultRegistryFallback: request.registry.skipDefaultRegistryFallback };
  const resolved = new Map<string, Promise<ResolvedImage>>();
  const baseCache = request.baseImageCache === undefined ? undefined : new BaseImageCache(request.baseImageCache, ctx);
  const resolve = (ref: string, platform: Platform, at: { line: number; source: string }): Promise<ResolvedImage> => {
    const key = `${ref}|${formatPlatform(platform)}`;
    let p = resolved.get(key);
    if (p === undefined) {
      p = (async (): Promise<ResolvedImage> => {
        const { image, fromCacheDir } = await resolveImageSource(ref, platform, { client: i.pullClient, routes, baseCache, ctx });
        const config = await image.configFile();
        const got = formatPlatform({ os: config.os ?? platform.os, architecture: config.architecture ?? platform.architecture, ...(config.variant !== undefined ? { variant: config.variant } : {}) });
        return { image: ref, digest: await image.digest(), platform: got, source: fromCacheDir ? 'cache dir' : 'registry' };
      })().catch((err: unknown) => {
        // Named as the real build names it: the Dockerfile line that wants the image.
        if (err instanceof KilnError && !(err instanceof DockerfileError)) {
          throw new DockerfileError(`base image ${ref}: ${err.message}`, { file: df.file, ...at }, { cause: err });
        }
        throw err;
      });
      resolved.set(key, p);
    }
    return p;
  };
  const wanted: Promise<ResolvedImage>[] = [];
  for (const index of i.order) {
    const sp = plan.stages[index];
    const stage = df.stages[index];
    if (sp === undefined || stage === undefined) continue;
    const platform = sp.platform !== undefined ? parsePlatform(sp.platform) : request.platform;
    if (sp.base.kind === 'image') wanted.push(resolve(sp.base.ref, platform, stage.from));
    for (const r of sp.references) {
      if (r.source.kind !== 'image') continue;
      const at = stage.instructions.find((ins) => ins.line === r.line) ?? stage.from;
      wanted.push(resolve(r.source.ref, request.platform, at));
    }
  }
  // All resolved at once, as the build starts its pulls; the first failure (in Dockerfile order) wins.
  const settled = await Promise.allSettled(wanted);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
  const o = request.outputs;
  const check = !o.noPush && !request.registry.skipPushPermissionCheck;
  if (check) await checkPushPermissions(i.pushClient, o.destinations, ctx);
  const runs = new Set(i.order);
  const images = [...new Map(settled.flatMap((s) => (s.status === 'fulfilled' ? [[`${s.value.image}|${s.value.platform}`, s.value] as const] : []))).values()];
  return {
    dryRun: true,
    ...printablePlan(df, plan),
    platform: formatPlatform(request.platform),
    runs: i.order.map(label),
    skipped: plan.stages.filter((s) => !runs.has(s.index)).map((s) => label(s.index)),
    images,
    destinations: o.noPush ? [] : o.destinations.map((d) => ({ destination: formatReference(d), pushPermission: check ? 'ok' : 'not checked' })),
    outputs: [
      ...(o.tarPath !== undefined ? [`tarball ${o.tarPath}`] : []),
      ...(o.ociLayoutPath !== undefined ? [`OCI layout ${o.ociLayoutPath}`] : []),
    ],
  };
}

/** " from cache dir" when the build would take the image from --cache-dir. */
function fromCache(r: ResolvedImage): string {
  return r.source === 'cache dir' ? ' from cache dir' : '';
}

/** The plan as text, for a person. */
export function dryRunText(p: DryRunPlan): string {
  const out: string[] = [];
  out.push(`Dry run of ${p.file}: target stage ${p.target}, platform ${p.platform}; nothing was built or pushed.`);
  out.push('Stages that run, in order:');
  const byImage = new Map(p.images.map((r) => [r.image, r]));
  for (const name of p.runs) {
    const s = p.stages.find((x) => x.stage === name);
    if (s === undefined) continue;
    out.push(`  [${s.index}] ${s.stage}: FROM ${s.base.replace(/^image /, '')}${s.platform !== undefined ? ` (--platform ${s.platform})` : ''}, ${s.instructions} instructions`);
    const img = s.base.startsWith('image ') ? byImage.get(s.base.slice('image '.length)) : undefined;
    if (img !== undefined) out.push(`        base: ${img.digest} (${img.platform})${fromCache(img)}`);
    for (const f of s.from) {
      const what = f.via === 'copy' ? 'copies from' : 'mounts';
      const r = f.source.startsWith('image ') ? byImage.get(f.source.slice('image '.length)) : undefined;
      out.push(`        line ${f.line}: ${what} ${f.source}${r !== undefined ? ` (${r.digest})${fromCache(r)}` : ''}`);
    }
  }
  if (p.skipped.length > 0) out.push(`Skipped (the target does not need them): ${p.skipped.join(', ')}`);
  if (p.unusedBuildArgs.length > 0) out.push(`Build args no ARG uses: ${p.unusedBuildArgs.join(', ')}`);
  if (p.destinations.length === 0) out.push('Destinations: none (--no-push)');
  for (const d of p.destinations) out.push(`Destination: ${d.destination} (push permission: ${d.pushPermission})`);
  for (const o of p.outputs) out.push(`Output: ${o}`);
  return `${out.join('\n')}\n`;
}
