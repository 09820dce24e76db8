// How transfers are shown while they run (`--progress`):
// - tty: one live line per transfer, redrawn in place below everything else on the terminal; log lines
//   and RUN output are written above it (LiveLines clears the block, writes, and draws it again).
// - plain: for CI logs, one ordinary log line per transfer still running, every few seconds; a
//   transfer shorter than that interval prints nothing, so a build of many small layers stays quiet.
// - json: the same cadence as plain, as `progress` event records (--log-format json).
// - none: nothing.
import { Writable } from 'node:stream';
import type { Logger } from './logger.js';
import { describeTransfer, type LiveTransfer, type Transfers } from './transfers.js';

export type ProgressMode = 'tty' | 'plain' | 'json' | 'none';

/** `--progress` and the terminal -> what is shown. */
export function progressMode(flag: 'auto' | 'tty' | 'plain' | 'none', logFormat: 'text' | 'color' | 'json', stderrIsTty: boolean): ProgressMode {
  if (logFormat === 'json') return flag === 'none' ? 'none' : 'json';
  if (flag === 'auto') return stderrIsTty ? 'tty' : 'plain';
  return flag;
}

interface TextOut {
  write(chunk: string): unknown;
}

/**
 * A terminal with a block of live lines at its bottom. Everything else written to the terminal goes
 * through `write` (the logger) or a `wrap`ped stream (RUN's output), which clear the block first and
 * draw it again after; while a write has left a line unfinished, the block waits for its end.
 */
export class LiveLines {
  readonly #out: TextOut;
  readonly #columns: () => number;
  #lines: readonly string[] = [];
  #drawn = 0;
  #atLineStart = true;

  constructor(out: TextOut, columns: () => number) {
    this.#out = out;
    this.#columns = columns;
  }

  write(chunk: string): void {
    this.#clear();
    this.#out.write(chunk);
    if (chunk.length > 0) this.#atLineStart = chunk.endsWith('\n');
    this.#draw();
  }

  /** The live lines to show now (an empty list removes the block). */
  set(lines: readonly string[]): void {
    if (lines.length === this.#lines.length && lines.every((l, i) => l === this.#lines[i])) return;
    this.#clear();
    this.#lines = lines;
    this.#draw();
  }

  /** A stream to the same terminal (RUN's stdout or stderr) that keeps the block below its output. */
  wrap(target: Writable): Writable {
    return new Writable({
      write: (chunk: Buffer | string, _enc, cb) => {
        this.#clear();
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        const ok = target.write(chunk);
        if (text.length > 0) this.#atLineStart = text.endsWith('\n');
        this.#draw();
        if (ok) cb();
        else target.once('drain', () => cb());
      },
    });
  }

  #clear(): void {
    if (this.#drawn === 0) return;
    // To the first column of the block's first line, then erase to the end of the screen.
    this.#out.write(`\x1b[${this.#drawn}F\x1b[J`);
    this.#drawn = 0;
  }

  #draw(): void {
    if (this.#lines.length === 0 || !this.#atLineStart) return;
    const width = Math.max(20, this.#columns() - 1);
    this.#out.write(this.#lines.map((l) => `${l.length > width ? `${l.slice(0, width - 1)}…` : l}\n`).join(''));
    this.#drawn = this.#lines.length;
  }
}

export interface ProgressViewOptions {
  readonly mode: ProgressMode;
  readonly transfers: Transfers;
  readonly log: Logger;
  /** tty mode: the terminal's block. */
  readonly live?: LiveLines | undefined;
  /** plain and json: how often a running transfer is reported (default 5 s). */
  readonly intervalMs?: number | undefined;
}

/** tty mode: a transfer gets its line once it has run this long (a 10 ms blob would only flicker). */
const TTY_SHOW_AFTER_MS = 300;
const TTY_REDRAW_MS = 200;
/** tty mode: at most this many lines; the rest are counted on one more. */
const TTY_MAX_LINES = 8;
export const DEFAULT_PROGRESS_INTERVAL_MS = 5000;

/** Starts showing `transfers` as `mode` says; the returned function stops it and removes live lines. */
export function startProgressView(o: ProgressViewOptions): () => void {
  const { transfers } = o;
  if (o.mode === 'none') return () => {};
  if (o.mode === 'tty') {
    const live = o.live;
    if (live === undefined) return () => {};
    const tick = (): void => {
      const now = transfers.now();
      const shown = transfers.live().filter((t) => now - t.startedAt >= TTY_SHOW_AFTER_MS);
      const lines = shown.slice(0, TTY_MAX_LINES).map((t) => describeTransfer(t, now));
      if (shown.length > TTY_MAX_LINES) lines.push(`… and ${shown.length - TTY_MAX_LINES} more`);
      live.set(lines);
    };
    const timer = setInterval(tick, TTY_REDRAW_MS);
    timer.unref();
    return () => {
      clearInterval(timer);
      live.set([]);
    };
  }
  const interval = o.intervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const report = (t: LiveTransfer, now: number): void => {
    const text = describeTransfer(t, now);
    if (o.mode === 'plain') {
      o.log.info(text);
      return;
    }
    const secs = Math.max(0.001, (now - t.startedAt) / 1000);
    o.log.info(
      {
        event: 'progress',
        transfer: t.kind,
        label: t.label,
        ...(t.digest !== undefined ? { digest: t.digest } : {}),
        bytes: t.bytes(),
        ...(t.total !== undefined ? { total: t.total } : {}),
        bytes_per_second: Math.round(t.bytes() / secs),
        duration_ms: Math.round(now - t.startedAt),
      },
      text,
    );
  };
  const timer = setInterval(() => {
    const now = transfers.now();
    // Written by a timer: each line names the step that started its transfer, not the one running now.
    for (const t of transfers.live()) if (now - t.startedAt >= interval) transfers.inScopeOf(t, () => report(t, now));
  }, interval);
  timer.unref();
  return () => clearInterval(timer);
}
