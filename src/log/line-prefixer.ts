// A RUN's own stdout/stderr while stages overlap: each of its lines starts with the stage's name, as
// kiln's own log lines do, so the output of two RUNs running side by side stays attributable. Lines
// are cut on '\n' bytes (never inside a UTF-8 sequence) and written whole, so two stages' lines never
// mix within one line of the shared stream.
import { Writable } from 'node:stream';

const NEWLINE = 0x0a;

/**
 * A writable that forwards to `target`, each line preceded by `prefix`. The partial line held at
 * `end()` is written with a newline added: another stage's next line must not continue it.
 * `target` is never ended (it is the process's stream, shared by every stage).
 */
export function prefixLines(target: Writable, prefix: string): Writable {
  const head = Buffer.from(prefix, 'utf8');
  let pending: Buffer = Buffer.alloc(0);
  const forward = (data: Buffer, done: (err?: Error | null) => void): void => {
    if (data.length === 0) return done();
    target.write(data, (err) => done(err ?? null));
  };
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      let data = Buffer.concat([pending, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk]);
      const lines: Buffer[] = [];
      for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE)) {
        lines.push(head, data.subarray(0, nl + 1));
        data = data.subarray(nl + 1);
      }
      pending = data;
      forward(Buffer.concat(lines), done);
    },
    final(done) {
      const rest = pending;
      pending = Buffer.alloc(0);
      forward(rest.length > 0 ? Buffer.concat([head, rest, Buffer.from('\n')]) : rest, done);
    },
  });
}

/** Ends a prefixing writable and resolves once its last line is handed on (errors are the target's). */
export function endStream(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    w.end(() => resolve());
  });
}
