// Running the git CLI for kiln's two git users: `--context git://...` (src/context/fetch-context.ts) and
// `ADD <git URL>` (src/instructions/add/add-git.ts). Both follow one rule for credentials: they travel in
// configuration given through the environment (GIT_CONFIG_COUNT / GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n),
// never in argv (visible in `ps`), never in the clone's .git/config, and never in a message: git's
// output is masked with the build's SecretMask before any of it reaches an error.
import { spawn } from 'node:child_process';
import type { SecretMask } from '../log/logger.js';

/** One `key=value` of git configuration, as `git -c` would take it. */
export type GitConfigEntry = readonly [key: string, value: string];

export interface GitRunOptions {
  /** The executor's environment (PATH, HOME, proxies, GIT_SSL_CAINFO, ...), which git runs with. */
  readonly hostEnv: Readonly<Record<string, string | undefined>>;
  /** What `gitEnv` made: never-prompt and the configuration entries. */
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal;
  /** Applied to git's stderr before any of it is put in an error. */
  readonly mask: SecretMask;
  /** Working directory (`git -C` works too). */
  readonly cwd?: string;
  /**
   * Makes the error of a failed run: `detail` is git's `fatal:`/`error:` line (else its last line, or
   * the exit status), already masked; for a git that cannot be started, why.
   */
  readonly error: (detail: string, cause?: unknown) => Error;
}

/** The environment that gives git `config` without argv or files, and never lets it prompt. */
export function gitEnv(config: readonly GitConfigEntry[]): Record<string, string> {
  const env: Record<string, string> = { GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_COUNT: String(config.length) };
  config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

/**
 * `Authorization: Basic base64(user:password)`, with the encoded value and the password added to
 * `mask` first.
 */
export function basicAuthorization(username: string, password: string, mask: SecretMask): string {
  const encoded = Buffer.from(`${username}:${password}`).toString('base64');
  mask.add(encoded);
  if (password !== '') mask.add(password);
  return `Authorization: Basic ${encoded}`;
}

/** `--connect-timeout` and `--idle-timeout`, in milliseconds. */
export interface GitWaits {
  readonly connectMs: number;
  readonly idleMs: number;
}

/**
 * The configuration that bounds git's waits on an http(s) remote: curl aborts a transfer that moves
 * less than 1 byte a second for `--idle-timeout` (a server that accepted the request and went quiet,
 * before its answer or within the pack). git has no setting for curl's connect timeout (300 s); a
 * connect that hangs stays bounded by that and the system's TCP timeouts.
 */
export function gitWaitConfig(waits: GitWaits): GitConfigEntry[] {
  return [
    ['http.lowSpeedLimit', '1'],
    ['http.lowSpeedTime', String(Math.max(1, Math.ceil(waits.idleMs / 1000)))],
  ];
}

/** Runs git; resolves with its standard output. */
export function runGit(args: readonly string[], o: GitRunOptions): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn('git', [...args], {
      env: { ...definedOnly(o.hostEnv), ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: o.signal,
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      if (stdout.length < 1 << 20) stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 8192) stderr += b.toString();
    });
    child.once('error', (err) =>
      reject(o.error((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'git is not installed (apt-get install git)' : o.mask.apply(err.message), err)),
    );
    child.once('close', (code) => {
      if (code === 0) return resolveRun(stdout);
      const line = failureLine(o.mask.apply(stderr), code);
      // curl's words for the idle bound gitWaitConfig set: say which flag it was.
      reject(o.error(/Operation too slow/.test(line) ? `${line} (--idle-timeout)` : line));
    });
  });
}

/** The line of git's stderr that says what went wrong. */
function failureLine(stderr: string, code: number | null): string {
  const lines = stderr.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.find((l) => /^(fatal|error):/.test(l)) ?? lines[lines.length - 1] ?? `exit ${code ?? 'signal'}`;
}

function definedOnly(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}
