// Container mode, as kaniko: the rootfs is `/` of the container kiln runs in, so RUN is a plain child
// process with the stage's env, workdir and identity.
import { spawn } from 'node:child_process';
import type { RunContext } from '../log/run-context.js';
import { envObject } from './chroot-sandbox.js';
import { waitForExit } from './child-exit.js';
import type { RunSpec, Sandbox } from './sandbox.js';

export class ContainerSandbox implements Sandbox {
  readonly kind = 'container' as const;
  readonly root = '/';

  async run(spec: RunSpec, ctx: RunContext): Promise<number> {
    const [file, ...rest] = spec.argv;
    if (file === undefined) return 0;
    const child = spawn(file, rest, {
      cwd: spec.workdir,
      env: envObject(spec.env),
      uid: spec.user.uid,
      gid: spec.user.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: ctx.signal,
    });
    child.stdout?.pipe(spec.stdout, { end: false });
    child.stderr?.pipe(spec.stderr, { end: false });
    return waitForExit(child, file);
  }
}
