// Logging through pino. Text format renders kaniko's logrus lines (`INFO[0003] Pushing image to ...`)
// because pipelines grep for them; json keeps pino's records. Every line passes through a mask of
// known secret values before it is written, at every verbosity.
import { pino, type Logger as PinoLogger } from 'pino';
import type { LogScope } from './log-scope.js';

export type Logger = PinoLogger;
export type LogFormat = 'text' | 'color' | 'json';
export const LOG_LEVELS = ['panic', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type Verbosity = (typeof LOG_LEVELS)[number];

/** Values that must never be printed (passwords, tokens). Owned by one build, not global. */
export class SecretMask {
  readonly #values = new Set<string>();
  add(value: string | undefined): void {
    if (value !== undefined && value.length >= 4) this.#values.add(value);
  }
  apply(text: string): string {
    let out = text;
    for (const v of this.#values) if (out.includes(v)) out = out.split(v).join('********');
    return out;
  }
}

export interface LoggerOptions {
  readonly verbosity: Verbosity;
  readonly format: LogFormat;
  readonly timestamps: boolean;
  readonly mask: SecretMask;
  /** Where lines go; the CLI passes process.stderr. */
  readonly out: { write(chunk: string): unknown };
  /** Injected clock, for the `[0003]` seconds-since-start field. */
  readonly startedAt?: number;
  /** json: the stage and step fields merged into every record (text lines stay kaniko's). */
  readonly scope?: LogScope | undefined;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRAC', 20: 'DEBU', 30: 'INFO', 40: 'WARN', 50: 'ERRO', 60: 'FATA' };
const LEVEL_COLORS: Record<number, string> = { 10: '37', 20: '37', 30: '36', 40: '33', 50: '31', 60: '31' };
const REDACT_PATHS = ['password', 'auth', 'token', 'identitytoken', 'registrytoken', 'authorization', 'headers.authorization', '*.password', '*.token', '*.auth'];

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.verbosity === 'panic' ? 'fatal' : opts.verbosity;
  const startedAt = opts.startedAt ?? Date.now();
  const dest = {
    write(line: string): void {
      const masked = opts.mask.apply(line);
      opts.out.write(opts.format === 'json' ? masked : renderText(masked, opts, startedAt));
    },
  };
  return pino(
    {
      level,
      base: null,
      redact: { paths: REDACT_PATHS, censor: '********' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label, number) => ({ level: label, levelNumber: number }) },
      ...(opts.format === 'json' && opts.scope !== undefined ? { mixin: scopeMixin(opts.scope) } : {}),
    },
    dest,
  );
}

function scopeMixin(scope: LogScope): () => object {
  // A copy each time: pino merges the line's own fields into the object the mixin returns.
  return () => ({ ...scope.fields });
}

function renderText(jsonLine: string, opts: LoggerOptions, startedAt: number): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const num = typeof rec['levelNumber'] === 'number' ? rec['levelNumber'] : 30;
  const name = LEVEL_NAMES[num] ?? 'INFO';
  const time = typeof rec['time'] === 'string' ? rec['time'] : new Date().toISOString();
  const stamp = opts.timestamps
    ? time
    : String(Math.max(0, Math.floor((Date.parse(time) - startedAt) / 1000))).padStart(4, '0');
  const msg = typeof rec['msg'] === 'string' ? rec['msg'] : '';
  const extra = Object.entries(rec)
    .filter(([k]) => !['level', 'levelNumber', 'time', 'msg', 'pid', 'hostname'].includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const head = opts.format === 'color' ? `\x1b[${LEVEL_COLORS[num] ?? '36'}m${name}\x1b[0m` : name;
  return `${head}[${stamp}] ${msg}${extra ? `  ${extra}` : ''}\n`;
}

/** A logger that drops everything, for tests of modules that take one. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
