import type { Writable } from 'node:stream';
import type { RunContext } from '../log/run-context.js';

/** A numeric identity to run as, resolved from the stage's USER against its /etc/passwd and /etc/group. */
export interface RunUser {
  readonly uid: number;
  readonly gid: number;
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
}

/** How RUN executes. `run` resolves with the command's exit status (128+signal when killed). */
export interface Sandbox {
  readonly kind: 'chroot' | 'container';
  /** The directory that is `/` for the commands this sandbox runs. */
  readonly root: string;
  run(spec: RunSpec, ctx: RunContext): Promise<number>;
}
