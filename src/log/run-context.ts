import type { Logger } from './logger.js';
import type { Transfers } from './transfers.js';

/** What every effectful operation is handed: where to log and when to stop. No globals. */
export interface RunContext {
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Where bytes moving (downloads, uploads, layer files) are counted and shown; absent: not watched. */
  readonly transfers?: Transfers | undefined;
  /** How long a network peer may stay silent (`--connect-timeout`, `--idle-timeout`); absent: the defaults. */
  readonly waits?: { readonly connectMs: number; readonly idleMs: number } | undefined;
}
