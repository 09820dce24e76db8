// Small helpers the cloud modules share: an unset-or-empty variable, and an SDK's message as one line.

export function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

/** SDK messages can span lines (XML bodies, aggregated causes): kiln's errors are one line. */
export function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim().slice(0, 300);
}
