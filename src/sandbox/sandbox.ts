import type { Writable } from 'node:stream';
import type { RunContext } from '../log/run-context.js';

/** A numeric identity to run as, resolved from the stage's USER against its /etc/passwd and /etc/group. */
export interface RunUser {
  readonly uid: number;
  readonly gid: number;
  /**
   * The process's group list (setgroups), primary gid first: BuildKit's GetUser gives a user named
   * (or found by uid) in /etc/passwd the groups of /etc/group that list it as a member, and
   * ensureAdditionalGids puts the primary gid in front. Absent: the primary gid only.
   */
  readonly groups?: readonly number[];
}

/** One process to run for a RUN instruction. */
export interface RunSpec {
  readonly argv: readonly string[];
  /** `KEY=VALUE` entries: the stage's ENV plus the ARGs in scope, exactly what the process sees. */
  readonly env: readonly string[];
  /** Absolute path inside the rootfs; must exist. */
  readonly workdir: string;
  readonly user: RunUser;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly network: 'default' | 'none';
  /** Extra mounts for this process only (RUN --mount, heredoc scripts); none when absent. */
  readonly mounts?: readonly SandboxMount[];
}

/**
 * A mount seen by one RUN. `source` is a host path kiln prepared (a cache dir, a secret file, a
 * context or stage path already resolved and checked to stay inside its root); `target` is absolute
 * inside the rootfs. Mount targets that did not exist are created for the run and removed after it.
 */
export type SandboxMount =
  | { readonly kind: 'bind'; readonly source: string; readonly target: string; readonly readOnly: boolean }
  | { readonly kind: 'tmpfs'; readonly target: string; readonly size?: number };

/** How RUN executes. `run` resolves with the command's exit status (128+signal when killed). */
export interface Sandbox {
  readonly kind: 'chroot' | 'container';
  /** The directory that is `/` for the commands this sandbox runs. */
  readonly root: string;
  /** Why this sandbox cannot give a RUN mounts of its own (RUN --mount, heredoc scripts); undefined when it can. */
  readonly mountRefusal?: string | undefined;
  run(spec: RunSpec, ctx: RunContext): Promise<number>;
}
