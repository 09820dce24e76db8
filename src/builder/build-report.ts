// What the build did, step by step, as it happens: the JSON events (events.ts), the stage and step
// fields of every JSON log line (log-scope.ts), and at the end the summary (summary.ts): each step's
// time, layer and cache outcome, and the totals. One per build, in the BuildContext.
import { describeError, KilnError } from '../errors.js';
import { EventLog } from '../log/events.js';
import type { LogScope } from '../log/log-scope.js';
import type { Logger } from '../log/logger.js';
import { formatBytes, formatDuration, shortLabel, type Transfers } from '../log/transfers.js';
import type { BuildSummary, StageSummary, StepSummary } from './summary.js';
import { slowestSteps } from './summary.js';

export interface StageHandle {
  stepStart(line: number, source: string, isRun: boolean): StepHandle;
  end(): void;
}

export interface StepHandle {
  /** The layer cache's answer for this step (`digest`: the cached layer's, on a hit). */
  cache(outcome: 'hit' | 'miss', digest?: string): void;
  /** The step's layer (compressed size), or null: no change. */
  layer(layer: { readonly digest: string; readonly size: number } | null): void;
  end(): void;
  fail(err: unknown): void;
}

interface MutableStep {
  step: number;
  line: number;
  instruction: string;
  startedAt: number;
  duration_ms: number | undefined;
  layer: { digest: string; size: number } | null;
  cache: 'hit' | 'miss' | null;
  status: 'ok' | 'failed' | 'running';
  exit_code: number | undefined;
}

interface MutableStage {
  stage: string;
  index: number;
  base: string;
  base_digest: string | undefined;
  startedAt: number;
  duration_ms: number | undefined;
  steps: MutableStep[];
}

export interface BuildReportOptions {
  readonly log: Logger;
  readonly json: boolean;
  readonly transfers: Transfers;
  readonly scope?: LogScope | undefined;
}

/** A step's instruction on one line, as the summary shows it. */
function oneLine(source: string): string {
  return source.replace(/\s*\\?\n\s*/g, ' ').trim();
}

export class BuildReport {
  readonly events: EventLog;
  readonly #transfers: Transfers;
  readonly #scope: LogScope | undefined;
  readonly #startedAt: number;
  readonly #stages: MutableStage[] = [];
  #push: { destinations: string[]; duration_ms: number } | undefined;
  #skipped: string[] = [];

  constructor(o: BuildReportOptions) {
    this.events = new EventLog(o.log, o.json);
    this.#transfers = o.transfers;
    this.#scope = o.scope;
    this.#startedAt = o.transfers.now();
    // Downloads and uploads are events of their own when they end.
    o.transfers.watch({
      ended: (t) => {
        if (!t.ok || t.kind === 'snapshot') return;
        this.events.emit(
          t.kind,
          { digest: t.digest, size: t.bytes(), duration_ms: Math.round(t.endedAt - t.startedAt) },
          `${t.kind === 'download' ? 'Downloaded' : 'Uploaded'} ${shortLabel(t.label)} (${formatBytes(t.bytes())}) in ${formatDuration(t.endedAt - t.startedAt)}`,
        );
      },
    });
  }

  #now(): number {
    return this.#transfers.now();
  }

  /** Stages the plan leaves out. */
  skipped(stages: readonly string[]): void {
    this.#skipped = [...stages];
  }

  /** A base image's manifest is in: its digest and platform. */
  pulled(image: string, digest: string, platform: string, startedAt: number): void {
    this.events.emit('pull', { image, digest, platform, duration_ms: Math.round(this.#now() - startedAt) }, `Resolved ${image} to ${digest}`);
  }

  /**
   * A stage starts: its steps are reported through the handle, so stages built at the same time
   * (--jobs) each keep their own steps.
   */
  stageStart(index: number, stage: string, base: string, baseDigest?: string): StageHandle {
    const st: MutableStage = { stage, index, base, base_digest: baseDigest, startedAt: this.#now(), duration_ms: undefined, steps: [] };
    this.#stages.push(st);
    this.#scope?.enter({ stage, stage_index: index });
    this.events.emit('stage-start', { stage, stage_index: index, base, digest: baseDigest }, `Stage ${stage} starts from ${base}`);
    return {
      stepStart: (line, source, isRun) => this.#stepStart(st, line, source, isRun),
      end: () => {
        if (st.duration_ms !== undefined) return;
        st.duration_ms = Math.round(this.#now() - st.startedAt);
        this.events.emit('stage-end', { stage: st.stage, stage_index: st.index, duration_ms: st.duration_ms }, `Stage ${st.stage} done in ${formatDuration(st.duration_ms)}`);
        this.#scope?.leave();
      },
    };
  }

  #stepStart(st: MutableStage, line: number, source: string, isRun: boolean): StepHandle {
    const s: MutableStep = {
      step: st.steps.length + 1,
      line,
      instruction: oneLine(source),
      startedAt: this.#now(),
      duration_ms: undefined,
      layer: null,
      cache: null,
      status: 'running',
      exit_code: undefined,
    };
    st.steps.push(s);
    const where = { stage: st.stage, stage_index: st.index, step: s.step, instruction: s.instruction, line };
    this.#scope?.enter(where);
    this.events.emit('step-start', where, `Step ${s.step} of stage ${st.stage}: ${s.instruction}`);
    const finish = (status: 'ok' | 'failed', exitCode: number | undefined): void => {
      if (s.status !== 'running') return;
      s.status = status;
      s.exit_code = exitCode;
      s.duration_ms = Math.round(this.#now() - s.startedAt);
      this.events.emit(
        'step-end',
        { ...where, duration_ms: s.duration_ms, status, exit_code: exitCode, size: s.layer?.size, digest: s.layer?.digest, cache: s.cache ?? undefined },
        `Step ${s.step} of stage ${st.stage} ${status === 'ok' ? 'done' : 'failed'} in ${formatDuration(s.duration_ms)}`,
      );
      this.#scope?.enter({ stage: st.stage, stage_index: st.index });
    };
    return {
      cache: (outcome, digest) => {
        s.cache = outcome;
        this.events.emit(outcome === 'hit' ? 'cache-hit' : 'cache-miss', { ...where, digest }, `Layer cache ${outcome} for ${s.instruction}`);
      },
      layer: (layer) => {
        s.layer = layer;
        if (layer !== null) this.events.emit('layer', { ...where, digest: layer.digest, size: layer.size }, `Layer ${shortLabel(layer.digest)} (${formatBytes(layer.size)})`);
      },
      end: () => finish('ok', isRun ? 0 : undefined),
      fail: (err) => finish('failed', exitCodeOf(err)),
    };
  }

  pushed(destinations: readonly string[], digest: string, startedAt: number): void {
    const duration_ms = Math.round(this.#now() - startedAt);
    this.#push = { destinations: [...destinations], duration_ms };
    this.events.emit('push', { destinations, digest, duration_ms }, `Pushed ${destinations.join(', ')} in ${formatDuration(duration_ms)}`);
  }

  /** The summary of the build as it stands; closes whatever step or stage is still open as failed. */
  finish(outcome: { readonly error?: unknown; readonly digest?: string | undefined }): BuildSummary {
    const failed = outcome.error !== undefined;
    const now = this.#now();
    const stages: StageSummary[] = this.#stages.map((st) => {
      const steps: StepSummary[] = st.steps.map((s) => ({
        step: s.step,
        line: s.line,
        instruction: s.instruction,
        duration_ms: s.duration_ms ?? Math.round(now - s.startedAt),
        layer: s.layer,
        cache: s.cache,
        status: s.status === 'running' ? 'failed' : s.status,
        ...(s.exit_code !== undefined ? { exit_code: s.exit_code } : s.status === 'running' && failed ? { exit_code: exitCodeOf(outcome.error) } : {}),
      }));
      return {
        stage: st.stage,
        index: st.index,
        base: st.base,
        ...(st.base_digest !== undefined ? { base_digest: st.base_digest } : {}),
        duration_ms: st.duration_ms ?? Math.round(now - st.startedAt),
        steps,
      };
    });
    const down = this.#transfers.totals('download');
    const up = this.#transfers.totals('upload');
    const summary: BuildSummary = {
      status: failed ? 'failure' : 'success',
      ...(failed ? { error: errorText(outcome.error) } : {}),
      exit_code: failed ? exitCodeOf(outcome.error) : 0,
      duration_ms: Math.round(now - this.#startedAt),
      ...(outcome.digest !== undefined ? { digest: outcome.digest } : {}),
      stages,
      skipped: this.#skipped,
      pulled: { bytes: down.bytes, layers: down.count },
      pushed: { bytes: up.bytes, blobs: up.count, duration_ms: this.#push?.duration_ms ?? 0, destinations: this.#push?.destinations ?? [] },
      slowest: [],
    };
    const withSlowest: BuildSummary = { ...summary, slowest: slowestSteps(summary, 3) };
    this.#scope?.leave();
    return withSlowest;
  }
}

/** The process exit code an error gives (a failed RUN's own code), as runCommand computes it. */
function exitCodeOf(err: unknown): number {
  return err instanceof KilnError ? err.exitCode : 1;
}

function errorText(err: unknown): string {
  return describeError(err);
}
