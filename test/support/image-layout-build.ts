// buildToLayout (test/e2e/layout-build.ts) with the executor image run by podman instead of the CLI on
// this host: the context is the /workspace volume, the OCI layout goes to an /out volume, and every
// temp dir the arguments name (a --secret source, a --mount-cache-dir) is a volume at the same path,
// as a user would mount them. What was built is read with skopeo and umoci on the host, as there.
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readLayoutBuild, type LayoutBuild } from '../e2e/layout-build.js';
import { writeContext } from './executor.js';
import { RUN_DEFAULTS, type Podman } from './podman.js';

export type ImageBuildFn = (files: Record<string, string>, args?: readonly string[], opts?: { env?: Record<string, string>; ctx?: string }) => Promise<LayoutBuild>;

/** A BuildFn that runs `imageId` in `podman` with `runOpts` (e.g. a seccomp profile) before the image. */
export function imageLayoutBuilder(podman: Podman, imageId: () => string, runOpts: readonly string[] = []): ImageBuildFn {
  return async (files, args = [], opts = {}) => {
    const ctx = opts.ctx ?? (await writeContext(files));
    await chmod(ctx, 0o755);
    const out = await mkdtemp(join(tmpdir(), 'kiln-image-layout-'));
    const volumes = [...new Set(args.flatMap((a) => [...a.matchAll(new RegExp(`${tmpdir()}/[^/,=\\s]+`, 'g'))].map((m) => m[0])))];
    const env = Object.entries(opts.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const r = await podman.exec([
      ...RUN_DEFAULTS,
      ...runOpts,
      '-v', `${ctx}:/workspace`,
      '-v', `${out}:/out`,
      ...volumes.flatMap((v) => ['-v', `${v}:${v}`]),
      ...env,
      imageId(),
      '--context', 'dir:///workspace', '--no-push', '--insecure-pull', '--oci-layout-path', '/out/layout',
      ...args,
    ]);
    return readLayoutBuild(r, { ctx, out, layout: join(out, 'layout'), ownsCtx: opts.ctx === undefined });
  };
}
