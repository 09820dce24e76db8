// A duplex stream through a child process's stdin and stdout (a filter such as `zstd -c`), with
// backpressure both ways. It ends only when the child exits 0; a failing child, a missing binary or a
// broken pipe fail the stream, so a pipeline through it never sees a clean end on bad output.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Duplex } from 'node:stream';

export interface ChildProcessStreamOptions {
  readonly command: string;
  readonly args: readonly string[];
  /** Turns a failure into the caller's typed error; `detail` is one line. */
  readonly error: (detail: string, cause?: unknown) => Error;
}

/** Bytes of the child's stderr kept for the error message. */
const STDERR_KEPT = 4096;

export class ChildProcessStream extends Duplex {
  readonly #opts: ChildProcessStreamOptions;
  #child: ChildProcessWithoutNullStreams | undefined;
  #stderr = '';
  #exited = false;
  #stdinError: Error | undefined;
  /** Whether all of the input was handed to the child (`_final` ran). */
  #inputEnded = false;

  /** The child starts with the first read or write, so a stream made but never used leaves no process behind. */
  constructor(opts: ChildProcessStreamOptions) {
    super();
    this.#opts = opts;
  }

  #start(): ChildProcessWithoutNullStreams {
    if (this.#child !== undefined) return this.#child;
    const opts = this.#opts;
    const child = spawn(opts.command, [...opts.args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    child.stdout.on('data', (data: Buffer) => {
      if (!this.push(data)) child.stdout.pause();
    });
    child.stderr.on('data', (data: Buffer) => {
      if (this.#stderr.length < STDERR_KEPT) this.#stderr += data.toString();
    });
    // EPIPE when the child stops reading: its exit status (seen on 'close') says why, so wait for it.
    child.stdin.on('error', (err) => (this.#stdinError = err));
    child.once('error', (err) => {
      this.#exited = true;
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      this.destroy(opts.error(missing ? `${opts.command} is not installed (apt-get install ${opts.command})` : `${opts.command}: ${err.message}`, err));
    });
    child.once('close', (code, signal) => {
      this.#exited = true;
      if (this.destroyed) return;
      if (code !== 0) {
        const why = this.#stderr.trim().split('\n')[0] ?? '';
        this.destroy(opts.error(`${opts.command} failed (${signal ?? `exit ${code}`})${why === '' ? '' : `: ${why}`}`));
      } else if (this.#stdinError !== undefined || !this.#inputEnded) {
        // Exit 0 before the end of the input: the output may be cut short. The EPIPE that says so can
        // come after 'close', or never when a write is still waiting for 'drain': do not wait for it.
        const detail = this.#stdinError?.message ?? 'it exited before the end of its input';
        this.destroy(opts.error(`${opts.command} stopped reading its input: ${detail}`, this.#stdinError));
      } else {
        this.push(null);
      }
    });
    return child;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const { stdin } = this.#start();
    if (stdin.write(chunk)) cb();
    else stdin.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#inputEnded = true;
    this.#start().stdin.end();
    cb();
  }

  override _read(): void {
    this.#start().stdout.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.#child !== undefined && !this.#exited) this.#child.kill('SIGKILL');
    cb(err);
  }
}
