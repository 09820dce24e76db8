import type { Logger } from './logger.js';

/** What every effectful operation is handed: where to log and when to stop. No globals. */
export interface RunContext {
  readonly log: Logger;
  readonly signal: AbortSignal;
}
