import type { LogScope } from './log-scope.js';
import type { Logger } from './logger.js';
import type { Transfers } from './transfers.js';

/** What every effectful operation is handed: where to log and when to stop. No globals. */
export interface RunContext {
  readonly log: Logger;
  readonly signal: AbortSignal;
  /** Where bytes moving (downloads, uploads, layer files) are counted and shown; absent: not watched. */
  readonly transfers?: Transfers | undefined;
  /** The stage and step the JSON log lines name; background work keeps its starter's (log-scope.ts `inBackground`). */
  readonly scope?: LogScope | undefined;
  /** How long a network peer may stay silent (`--connect-timeout`, `--idle-timeout`); absent: the defaults. */
  readonly waits?: { readonly connectMs: number; readonly idleMs: number } | undefined;
  /** Most an archive (a context tar, an ADD archive) may unpack to (`--archive-max-mib`, `--archive-max-entries`); absent: the defaults. */
  readonly archiveLimits?: ArchiveLimits | undefined;
}

export interface ArchiveLimits {
  readonly maxBytes: number;
  readonly maxEntries: number;
}

/** Far above any real context or ADD archive; a gzip bomb stops here instead of filling the disk. */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 32 * 1024 ** 3, maxEntries: 4_000_000 };
