// Go's time.ParseDuration, which HEALTHCHECK options use: `[-+]?(\d*\.?\d+unit)+` with units ns, us
// (µs, μs), ms, s, m, h; a bare `0` is allowed. Returns nanoseconds, or undefined when invalid.

const UNIT_NS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  '\u00b5s': 1e3,
  '\u03bcs': 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const PART = /(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

export function parseGoDuration(text: string): number | undefined {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s.startsWith('-')) sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (m === null) return undefined;
    total += Number.parseFloat(m[1] as string) * (UNIT_NS[m[2] as string] as number);
    pos = PART.lastIndex;
  }
  const ns = Math.round(total) * sign;
  // Go rejects durations beyond int64 nanoseconds (~292 years).
  return Math.abs(ns) > 9.223372036854775e18 ? undefined : ns;
}

/** Renders nanoseconds the way Go's Duration.String does for whole units (for messages): `1ms`, `30s`. */
export function formatDuration(ns: number): string {
  if (ns % 3600e9 === 0 && ns !== 0) return `${ns / 3600e9}h`;
  if (ns % 60e9 === 0 && ns !== 0) return `${ns / 60e9}m`;
  if (ns % 1e9 === 0) return `${ns / 1e9}s`;
  if (ns % 1e6 === 0) return `${ns / 1e6}ms`;
  if (ns % 1e3 === 0) return `${ns / 1e3}µs`;
  return `${ns}ns`;
}
