// Bytes moving: base layers downloaded, blobs uploaded, layer files written by a snapshot. Each module
// that moves bytes starts a Transfer through the build's Transfers (RunContext.transfers) and tells it
// how far it got; Transfers keeps the totals for the summary and tells its watchers (the progress view,
// the JSON events) when one starts and ends. Owned by one build: nothing here is global.
import { pipeline, Transform, type Readable } from 'node:stream';
import type { LogScope, ScopeFields } from './log-scope.js';

export type TransferKind = 'download' | 'upload' | 'snapshot';

export interface TransferStart {
  readonly kind: TransferKind;
  /** What moves, for the user: a digest, or a layer file's name. */
  readonly label: string;
  /** The blob's digest when it is known up front. */
  readonly digest?: string | undefined;
  /** Bytes expected, when known (a snapshot's compressed size is not). */
  readonly total?: number | undefined;
  /** Read the bytes so far from here instead of update() (a layer file's `written()`). */
  readonly read?: (() => number) | undefined;
}

export interface Transfer {
  /** Bytes moved so far (absolute: a retry that starts over sets a smaller number). */
  update(bytes: number): void;
  /** Finished: `bytes` (default: the last count) moved; `digest` once known. */
  end(result?: { readonly bytes?: number; readonly digest?: string }): void;
  /** Gave up (the caller reports the error); counts nothing toward the totals. */
  fail(): void;
}

export interface LiveTransfer {
  readonly id: number;
  readonly kind: TransferKind;
  readonly label: string;
  readonly digest: string | undefined;
  readonly total: number | undefined;
  readonly startedAt: number;
  /** The log scope's fields when it started: what its events and progress lines name (see Transfers.inScopeOf). */
  readonly fields: ScopeFields;
  /** Bytes so far. */
  bytes(): number;
}

export interface EndedTransfer extends LiveTransfer {
  readonly endedAt: number;
  readonly ok: boolean;
}

export interface TransferWatcher {
  started?(t: LiveTransfer): void;
  ended?(t: EndedTransfer): void;
}

export interface TransferTotals {
  readonly bytes: number;
  readonly count: number;
}

export class Transfers {
  readonly #live = new Map<number, LiveTransfer>();
  readonly #watchers: TransferWatcher[] = [];
  readonly #totals = new Map<TransferKind, { bytes: number; count: number }>();
  readonly #now: () => number;
  readonly #scope: LogScope | undefined;
  #next = 1;

  constructor(now: () => number = Date.now, scope?: LogScope) {
    this.#now = now;
    this.#scope = scope;
  }

  /**
   * Runs `fn` (a line about `t`) with the log fields `t` started with: a download a step started, whose
   * progress line is written by a timer or whose end comes while a later step runs, still names that step.
   */
  inScopeOf<R>(t: LiveTransfer, fn: () => R): R {
    return this.#scope === undefined ? fn() : this.#scope.within(t.fields, fn);
  }

  now(): number {
    return this.#now();
  }

  watch(w: TransferWatcher): void {
    this.#watchers.push(w);
  }

  /** Transfers still running, oldest first. */
  live(): LiveTransfer[] {
    return [...this.#live.values()];
  }

  totals(kind: TransferKind): TransferTotals {
    return { ...(this.#totals.get(kind) ?? { bytes: 0, count: 0 }) };
  }

  start(s: TransferStart): Transfer {
    const id = this.#next++;
    let count = 0;
    let digest = s.digest;
    const read = s.read ?? (() => count);
    const fields = this.#scope?.fields ?? {};
    const t: LiveTransfer = { id, kind: s.kind, label: s.label, get digest() { return digest; }, total: s.total, startedAt: this.#now(), fields, bytes: read };
    this.#live.set(id, t);
    this.inScopeOf(t, () => {
      for (const w of this.#watchers) w.started?.(t);
    });
    let over = false;
    const finish = (ok: boolean, bytes?: number): void => {
      if (over) return;
      over = true;
      this.#live.delete(id);
      const moved = bytes ?? read();
      if (ok) {
        const tot = this.#totals.get(s.kind) ?? { bytes: 0, count: 0 };
        tot.bytes += moved;
        tot.count += 1;
        this.#totals.set(s.kind, tot);
      }
      const ended: EndedTransfer = { ...t, digest, bytes: () => moved, endedAt: this.#now(), ok };
      this.inScopeOf(t, () => {
        for (const w of this.#watchers) w.ended?.(ended);
      });
    };
    return {
      update: (bytes) => {
        count = bytes;
      },
      end: (r) => {
        if (r?.digest !== undefined) digest = r.digest;
        finish(true, r?.bytes);
      },
      fail: () => finish(false),
    };
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB": one decimal from KiB up. */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** Milliseconds as the summary and progress lines show them: 850ms, 12.3s, 4m05s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** What a progress line says of a transfer at `now`: bytes (of total), rate, and time left. */
export function describeTransfer(t: LiveTransfer, now: number): string {
  const bytes = t.bytes();
  const secs = Math.max(0.001, (now - t.startedAt) / 1000);
  const rate = bytes / secs;
  const verb = t.kind === 'download' ? 'Downloading' : t.kind === 'upload' ? 'Uploading' : 'Writing layer';
  const amount = t.total !== undefined && t.total > 0 ? `${formatBytes(bytes)} / ${formatBytes(t.total)} (${Math.floor((100 * bytes) / t.total)}%)` : formatBytes(bytes);
  const eta = t.total !== undefined && t.total > bytes && rate > 0 ? `, ETA ${formatDuration((1000 * (t.total - bytes)) / rate)}` : '';
  return `${verb} ${shortLabel(t.label)}: ${amount}, ${formatBytes(rate)}/s${eta}`;
}

/** `sha256:` and 12 hex digits, as docker shows layers; other labels as they are. */
export function shortLabel(label: string): string {
  const m = /^(sha256:[0-9a-f]{12})[0-9a-f]{52}$/.exec(label);
  return m?.[1] ?? label;
}

/** `source` passed through unchanged, its bytes counted into `t` (from 0: a reopened stream starts over). */
export function counted(source: Readable, t: Transfer): Readable {
  let n = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      t.update(n);
      cb(null, chunk);
    },
  });
  // pipeline destroys the counter with the source's error, so a failed read still fails the reader.
  return pipeline(source, counter, () => {});
}
