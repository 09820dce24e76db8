// The build summary: what `--summary-file` holds (as JSON) and what the end of every build prints (as
// text), success or failure. Pure: BuildReport gathers the data, the executor writes it out.
import { formatBytes, formatDuration, shortLabel } from '../log/transfers.js';

export interface StepSummary {
  readonly step: number;
  /** Line of the Dockerfile. */
  readonly line: number;
  readonly instruction: string;
  readonly duration_ms: number;
  /** The step's layer, compressed; null: no change (no layer). */
  readonly layer: { readonly digest: string; readonly size: number } | null;
  /** The layer cache's answer; null: not looked up (no --cache, or not a cached kind of step). */
  readonly cache: 'hit' | 'miss' | null;
  readonly status: 'ok' | 'failed';
  readonly exit_code?: number;
}

export interface StageSummary {
  readonly stage: string;
  readonly index: number;
  /** What the stage is built FROM: an image reference, `stage NAME`, or `scratch`. */
  readonly base: string;
  readonly base_digest?: string;
  readonly duration_ms: number;
  readonly steps: readonly StepSummary[];
}

export interface SlowStep {
  readonly stage: string;
  readonly step: number;
  readonly line: number;
  readonly instruction: string;
  readonly duration_ms: number;
}

export interface BuildSummary {
  readonly status: 'success' | 'failure';
  readonly error?: string;
  readonly exit_code: number;
  readonly duration_ms: number;
  /** The image's manifest digest, when it was built. */
  readonly digest?: string;
  readonly stages: readonly StageSummary[];
  /** Stages the target does not need, not built (`--skip-unused-stages`, the default). */
  readonly skipped: readonly string[];
  /** Base layers downloaded (not those already on disk or in --cache-dir). */
  readonly pulled: { readonly bytes: number; readonly layers: number };
  /** Blobs uploaded (not those the registry had or mounted), and the push's wall time. */
  readonly pushed: { readonly bytes: number; readonly blobs: number; readonly duration_ms: number; readonly destinations: readonly string[] };
  /** The slowest steps, slowest first. */
  readonly slowest: readonly SlowStep[];
}

/** The `n` slowest steps of the build, slowest first (steps of 0 ms are never "slow"). */
export function slowestSteps(summary: Pick<BuildSummary, 'stages'>, n: number): SlowStep[] {
  return summary.stages
    .flatMap((st) => st.steps.map((s) => ({ stage: st.stage, step: s.step, line: s.line, instruction: s.instruction, duration_ms: s.duration_ms })))
    .filter((s) => s.duration_ms > 0)
    .sort((a, b) => b.duration_ms - a.duration_ms)
    .slice(0, n);
}

const INSTRUCTION_WIDTH = 60;

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function clip(s: string, width: number): string {
  return s.length > width ? `${s.slice(0, width - 3)}...` : s;
}

/** The summary as lines of text (each becomes one log line). */
export function summaryLines(s: BuildSummary): string[] {
  const out: string[] = [];
  out.push(`Build summary: ${s.status === 'success' ? 'succeeded' : `FAILED (exit code ${s.exit_code})`} in ${formatDuration(s.duration_ms)}`);
  const slow = new Set(s.slowest.map((x) => `${x.stage}/${x.step}`));
  for (const st of s.stages) {
    out.push(`  stage ${st.stage} [${st.index}] FROM ${st.base}${st.base_digest !== undefined ? ` (${shortLabel(st.base_digest)})` : ''}: ${formatDuration(st.duration_ms)}`);
    if (st.steps.length === 0) continue;
    const rows = st.steps.map((p) => [
      String(p.step),
      String(p.line),
      formatDuration(p.duration_ms),
      p.status === 'failed' ? `FAILED${p.exit_code !== undefined ? ` (exit ${p.exit_code})` : ''}` : p.layer === null ? 'no change' : formatBytes(p.layer.size),
      p.cache ?? '-',
      clip(p.instruction, INSTRUCTION_WIDTH),
      slow.has(`${st.stage}/${p.step}`) ? '<- slow' : '',
    ]);
    const head = ['step', 'line', 'time', 'layer', 'cache', 'instruction', ''];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]): string =>
      `    ${r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd()}`;
    out.push(fmt(head));
    for (const r of rows) out.push(fmt(r));
  }
  if (s.skipped.length > 0) out.push(`  skipped (the target does not need them): ${s.skipped.join(', ')}`);
  const pushed =
    s.pushed.destinations.length > 0
      ? `pushed ${formatBytes(s.pushed.bytes)} in ${plural(s.pushed.blobs, 'blob')} in ${formatDuration(s.pushed.duration_ms)}`
      : 'pushed nothing';
  out.push(`  total ${formatDuration(s.duration_ms)}: pulled ${formatBytes(s.pulled.bytes)} in ${plural(s.pulled.layers, 'layer')}, ${pushed}`);
  if (s.slowest.length > 0) {
    out.push(`  slowest: ${s.slowest.map((x) => `${x.stage} step ${x.step} (line ${x.line}) ${formatDuration(x.duration_ms)}`).join(', ')}`);
  }
  return out;
}
