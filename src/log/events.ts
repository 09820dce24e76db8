// The build's events as `--log-format json` records: each a pino line with an `event` field and the
// fields that apply (stage, step, instruction, line, duration_ms, digest, size, exit_code, ...), so a
// CI dashboard reads a step's start, a pull or a push without parsing English. docs/log-events.md lists
// them. In the text formats nothing here is written: those keep kaniko's lines, plus the summary.
import type { Logger } from './logger.js';

export type EventName =
  | 'build-start'
  | 'build-end'
  | 'pull'
  | 'download'
  | 'stage-start'
  | 'stage-end'
  | 'step-start'
  | 'step-end'
  | 'cache-hit'
  | 'cache-miss'
  | 'layer'
  | 'upload'
  | 'push'
  | 'progress'
  | 'summary';

export type EventFields = Readonly<Record<string, unknown>>;

export class EventLog {
  readonly #log: Logger;
  readonly #enabled: boolean;

  constructor(log: Logger, enabled: boolean) {
    this.#log = log;
    this.#enabled = enabled;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** One record: `msg` says it in words, `fields` for machines. Undefined fields are left out. */
  emit(event: EventName, fields: EventFields, msg: string): void {
    if (!this.#enabled) return;
    const rec: Record<string, unknown> = { event };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) rec[k] = v;
    this.#log.info(rec, msg);
  }
}
