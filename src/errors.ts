// The error hierarchy every module throws. A leaf: imports nothing of ours.
// `message` is what the user reads after "error building image: "; it must be one line
// and must never contain a secret.

export type ErrorCode =
  | 'USAGE'
  | 'DOCKERFILE'
  | 'CONTEXT'
  | 'REFERENCE'
  | 'REGISTRY'
  | 'AUTH'
  | 'DIGEST_MISMATCH'
  | 'UNPACK'
  | 'SNAPSHOT'
  | 'RUN'
  | 'SANDBOX'
  | 'OUTPUT'
  | 'TIMEOUT'
  | 'INVALID_DOCUMENT'
  | 'INTERNAL';

export class KilnError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
  /** The process exit code this error maps to (kaniko exits 1 for everything but a failed RUN). */
  get exitCode(): number {
    return 1;
  }
  /**
   * What the failure line starts with instead of the command's own words (`error building image`),
   * where kaniko's line starts otherwise: pipelines grep those words.
   */
  get headline(): string | undefined {
    return undefined;
  }
}

export class UsageError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options);
  }
}

/** A Dockerfile problem, rendered as `Dockerfile:12 COPY --from=x . .: stage "x" not found`. */
export class DockerfileError extends KilnError {
  readonly file: string;
  readonly line: number | undefined;
  readonly source: string | undefined;
  readonly detail: string;
  constructor(
    detail: string,
    where: { file: string; line?: number; source?: string },
    options?: { cause?: unknown },
  ) {
    const loc = where.line === undefined ? where.file : `${where.file}:${where.line}`;
    const src = where.source === undefined ? '' : ` ${oneLine(where.source)}`;
    super('DOCKERFILE', `${loc}${src}: ${detail}`, options);
    this.file = where.file;
    this.line = where.line;
    this.source = where.source;
    this.detail = detail;
  }
}

export class ContextError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONTEXT', message, options);
  }
}

export class InvalidReferenceError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('REFERENCE', message, options);
  }
}

/** A registry answered with an error or could not be reached. */
export class RegistryError extends KilnError {
  readonly status: number | undefined;
  /** Error codes from the distribution spec's error body (e.g. MANIFEST_UNKNOWN). */
  readonly registryCodes: readonly string[];
  readonly retryable: boolean;
  readonly url: string | undefined;
  constructor(
    message: string,
    details: { status?: number; registryCodes?: readonly string[]; retryable?: boolean; url?: string },
    options?: { cause?: unknown },
  ) {
    super(details.status === 401 || details.status === 403 ? 'AUTH' : 'REGISTRY', message, options);
    this.status = details.status;
    this.registryCodes = details.registryCodes ?? [];
    this.retryable = details.retryable ?? false;
    this.url = details.url;
  }

  /** The same error with what kiln was doing put before its message (`pulling layer sha256:...: `). */
  within(doing: string): RegistryError {
    const { status, registryCodes, retryable, url } = this;
    return new RegistryError(`${doing}: ${this.message}`, { ...(status !== undefined ? { status } : {}), registryCodes, retryable, ...(url !== undefined ? { url } : {}) }, { cause: this });
  }
}

/**
 * A destination refused before anything was built (kaniko's CheckPushPermissions). kaniko's line for
 * it is its own, not "error building image": `error checking push permissions -- make sure you
 * entered the correct tag name, and that you are authenticated correctly, and try again: checking
 * push permission for "REF": CAUSE`.
 */
export class PushPermissionError extends RegistryError {
  override get headline(): string {
    return 'error checking push permissions -- make sure you entered the correct tag name, and that you are authenticated correctly, and try again';
  }
}

/** A peer that stopped answering: no connection, no response headers, or a body that went quiet. */
export class WaitTimeoutError extends KilnError {
  readonly host: string;
  readonly phase: 'connect' | 'response' | 'body';
  readonly ms: number;
  constructor(host: string, phase: 'connect' | 'response' | 'body', ms: number) {
    const what =
      phase === 'connect'
        ? `no connection to ${host} within ${seconds(ms)} (waited for TCP connect and TLS handshake; --connect-timeout)`
        : phase === 'response'
          ? `no response from ${host} within ${seconds(ms)} (waited for response headers; --idle-timeout)`
          : `no data from ${host} for ${seconds(ms)} (waited for the rest of the response body; --idle-timeout)`;
    super('TIMEOUT', what);
    this.host = host;
    this.phase = phase;
    this.ms = ms;
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

export class DigestMismatchError extends KilnError {
  readonly expected: string;
  readonly actual: string;
  constructor(what: string, expected: string, actual: string) {
    super('DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}

export class UnpackError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNPACK', message, options);
  }
}

export class SnapshotError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SNAPSHOT', message, options);
  }
}

export class SandboxError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SANDBOX', message, options);
  }
}

export class OutputError extends KilnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OUTPUT', message, options);
  }
}

/** A RUN command exited non-zero: the executor exits with the same code, as kaniko does. */
export class RunFailedError extends KilnError {
  readonly commandExitCode: number;
  /** `where` locates the RUN, e.g. `Dockerfile:3 RUN make`. */
  constructor(where: string, exitCode: number, options?: { cause?: unknown }) {
    super('RUN', `${oneLine(where)}: failed to execute command: exit status ${exitCode}`, options);
    this.commandExitCode = exitCode;
  }
  override get exitCode(): number {
    return this.commandExitCode;
  }
}

/**
 * A stage built alongside others (--jobs) failed: the message names the stage before the failing
 * instruction's own `Dockerfile:N ...`; the exit code is the cause's (a RUN's status stays the executor's).
 */
export class StageFailedError extends KilnError {
  readonly stage: string;
  readonly #exitCode: number;
  constructor(stage: string, cause: KilnError) {
    super(cause.code, `stage ${stage}: ${cause.message}`, { cause });
    this.stage = stage;
    this.#exitCode = cause.exitCode;
  }
  override get exitCode(): number {
    return this.#exitCode;
  }
}

function oneLine(s: string): string {
  const flat = s.replace(/\s*\n\s*/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 117)}...` : flat;
}

/** Renders any thrown value as one line, for the final `error building image: ...`. */
export function describeError(err: unknown): string {
  if (err instanceof KilnError) return err.message.replace(/\n/g, ' ');
  if (err instanceof Error) return `${err.name}: ${err.message}`.replace(/\n/g, ' ');
  return String(err);
}
