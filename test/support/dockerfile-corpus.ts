// The conformance corpus under test/dockerfiles/: one directory per case with a Dockerfile, its context
// files and an expected.json (format: `caseSchema` below). Each case is built with the real executor
// into an OCI layout and checked only with independent tools: `skopeo inspect --config` for the image
// config, `umoci unpack` for the filesystem, `tar -t` for the contents of the new layers.
//
// Base images are named by placeholders in any file whose name starts with `Dockerfile` or ends with
// `.Dockerfile`, and in the case's `dockerfile`: `{{busybox}}`, `{{busyboxDocker}}`, `{{multi}}` (see test/global-setup.ts).
import { execFile } from 'node:child_process';
import { chmod, cp, lchown, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import type { BaseImages } from './base-images.js';
import { executor, type ExecResult } from './executor.js';

const run = promisify(execFile);
export const CORPUS = resolve(dirname(fileURLToPath(import.meta.url)), '../dockerfiles');

const octal = z.string().regex(/^0?[0-7]{3,4}$/, 'an octal mode like "0644"');

const pathExpectation = z
  .object({
    type: z.enum(['file', 'dir', 'symlink']),
    mode: octal.optional(),
    uid: z.number().int().optional(),
    gid: z.number().int().optional(),
    /** Exact file content (utf8). */
    content: z.string().optional(),
    /** Symlink target, exactly as stored. */
    target: z.string().optional(),
  })
  .strict();

const stringList = z.array(z.string()).nullable();
const emptyObjectMap = z.record(z.string(), z.object({}).strict()).nullable();

/** The config fields a case may pin; each listed one is compared exactly (null: absent or null). */
const configExpectation = z
  .object({
    Env: stringList,
    Cmd: stringList,
    Entrypoint: stringList,
    WorkingDir: z.string().nullable(),
    User: z.string().nullable(),
    ExposedPorts: emptyObjectMap,
    Labels: z.record(z.string(), z.string()).nullable(),
    Volumes: emptyObjectMap,
    Healthcheck: z
      .object({
        Test: z.array(z.string()),
        Interval: z.number().optional(),
        Timeout: z.number().optional(),
        StartPeriod: z.number().optional(),
        StartInterval: z.number().optional(),
        Retries: z.number().optional(),
      })
      .strict()
      .nullable(),
    StopSignal: z.string().nullable(),
    Shell: stringList,
    OnBuild: stringList,
  })
  .partial()
  .strict();

export const caseSchema = z
  .object({
    /** The Dockerfile reference section / BuildKit rule (file and function) the case pins. */
    rule: z.string().min(10),
    /** Not built yet by kiln: reported as a todo with this reason. */
    pending: z.string().optional(),
    /** The Dockerfile's name inside the case directory (default `Dockerfile`). */
    dockerfile: z.string().default('Dockerfile'),
    /**
     * How the executor is told about the Dockerfile: relative to the working directory (the context),
     * by absolute path, or on stdin (`--dockerfile -`).
     */
    dockerfileVia: z.enum(['relative', 'absolute', 'stdin']).default('relative'),
    /** Extra executor flags: `--build-arg`, `--target`, `--label`, `--custom-platform`. */
    args: z.array(z.string()).default([]),
    /** Extra environment for the executor (`--build-arg NAME` takes its value from there). */
    env: z.record(z.string(), z.string()).default({}),
    /** What git cannot carry: applied to the copied context before the build. */
    setup: z
      .object({
        mkdir: z.array(z.string()).default([]),
        symlinks: z.record(z.string(), z.string()).default({}),
        chmod: z.record(z.string(), octal).default({}),
        /** `uid:gid` */
        chown: z.record(z.string(), z.string().regex(/^\d+:\d+$/)).default({}),
      })
      .strict()
      .default({ mkdir: [], symlinks: {}, chmod: {}, chown: {} }),
    expectError: z
      .object({
        exitCode: z.number().int(),
        /** The one `error building image: ...` line: a substring, or `{ regex }`. */
        message: z.union([z.string(), z.object({ regex: z.string() }).strict()]),
      })
      .strict()
      .optional(),
    config: configExpectation.optional(),
    /** Top-level config fields. */
    image: z.object({ architecture: z.string(), os: z.string(), author: z.string().nullable() }).partial().strict().optional(),
    files: z.record(z.string(), pathExpectation).default({}),
    absent: z.array(z.string()).default([]),
    /** Every path in the layers this build added (on top of the test base images), `./` stripped. */
    newLayerPaths: z.array(z.string()).optional(),
    /** Substrings of the executor's output (warnings). */
    logContains: z.array(z.string()).default([]),
    /** Substrings that must appear nowhere in the config JSON (history included). */
    configExcludes: z.array(z.string()).default([]),
  })
  .strict();

export type CorpusCase = z.infer<typeof caseSchema>;

export interface LoadedCase {
  readonly name: string;
  readonly dir: string;
  readonly spec: CorpusCase;
}

export async function loadCorpus(): Promise<LoadedCase[]> {
  const names = (await readdir(CORPUS, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const out: LoadedCase[] = [];
  for (const name of names) {
    const dir = join(CORPUS, name);
    const raw = JSON.parse(await readFile(join(dir, 'expected.json'), 'utf8')) as unknown;
    const parsed = caseSchema.safeParse(raw);
    if (!parsed.success) throw new Error(`test/dockerfiles/${name}/expected.json: ${z.prettifyError(parsed.error)}`);
    out.push({ name, dir, spec: parsed.data });
  }
  return out;
}

function isDockerfileName(name: string): boolean {
  return (name.startsWith('Dockerfile') || name.endsWith('.Dockerfile')) && !name.endsWith('.dockerignore');
}

/** Copies the case into a fresh temp context, fills in the base images and applies `setup`. */
async function prepareContext(c: LoadedCase, images: BaseImages, registry: string): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), `kiln-corpus-${c.name}-`));
  const ctx = join(work, 'context');
  await cp(c.dir, ctx, { recursive: true, verbatimSymlinks: true });
  // Bait beside the context: a COPY that escapes the context (`../outside.txt`, or a symlink to it)
  // would find this file, so an error case cannot pass by accident.
  await writeFile(join(work, 'outside.txt'), 'outside the context\n');
  const dockerfiles = new Set([...(await readdir(ctx)).filter(isDockerfileName), c.spec.dockerfile]);
  for (const ent of dockerfiles) {
    const text = await readFile(join(ctx, ent), 'utf8');
    await writeFile(
      join(ctx, ent),
      text
        .replaceAll('{{busyboxDocker}}', images.busyboxDocker)
        .replaceAll('{{busybox}}', images.busybox)
        .replaceAll('{{multi}}', images.multi)
        .replaceAll('{{registry}}', registry),
    );
  }
  const s = c.spec.setup;
  for (const d of s.mkdir) await mkdir(join(ctx, d), { recursive: true });
  for (const [link, target] of Object.entries(s.symlinks)) {
    await mkdir(dirname(join(ctx, link)), { recursive: true });
    await symlink(target, join(ctx, link));
  }
  for (const [p, m] of Object.entries(s.chmod)) await chmod(join(ctx, p), Number.parseInt(m, 8));
  for (const [p, o] of Object.entries(s.chown)) {
    const [uid, gid] = o.split(':').map(Number);
    await lchown(join(ctx, p), uid ?? 0, gid ?? 0);
  }
  return work;
}

export interface BuiltCase {
  readonly work: string;
  readonly layout: string;
  readonly result: ExecResult;
}

export async function buildCase(c: LoadedCase, images: BaseImages, registry: string): Promise<BuiltCase> {
  const work = await prepareContext(c, images, registry);
  const ctx = join(work, 'context');
  const layout = join(work, 'out');
  // The Dockerfile is named relative to the working directory (the context), as users run it, so
  // errors read `Dockerfile:N ...`.
  const via = c.spec.dockerfileVia;
  const dockerfileArg = via === 'stdin' ? '-' : via === 'absolute' ? join(ctx, c.spec.dockerfile) : c.spec.dockerfile;
  const input = via === 'stdin' ? await readFile(join(ctx, c.spec.dockerfile), 'utf8') : undefined;
  const result = await executor(
    ['--context', ctx, '--dockerfile', dockerfileArg, '--no-push', '--oci-layout-path', layout, '--insecure-pull', ...c.spec.args],
    { env: c.spec.env, cwd: via === 'absolute' ? work : ctx, ...(input !== undefined ? { input } : {}) },
  );
  return { work, layout, result };
}

export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: '));
}

export async function inspectConfig(layout: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('skopeo', ['inspect', '--config', '--raw', `oci:${layout}`], { maxBuffer: 16 << 20 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

export async function configText(layout: string): Promise<string> {
  const { stdout } = await run('skopeo', ['inspect', '--config', '--raw', `oci:${layout}`], { maxBuffer: 16 << 20 });
  return stdout;
}

/** skopeo copies the layout to a tagged one, umoci unpacks it; returns the rootfs. */
export async function unpackLayout(work: string, layout: string): Promise<string> {
  const tagged = join(work, 'tagged');
  await run('skopeo', ['copy', '--quiet', `oci:${layout}`, `oci:${tagged}:img`]);
  await run('umoci', ['unpack', '--image', `${tagged}:img`, join(work, 'bundle')]);
  return join(work, 'bundle', 'rootfs');
}

export async function layerDigests(ref: string): Promise<string[]> {
  const tls = ref.startsWith('docker://') ? ['--tls-verify=false'] : [];
  const { stdout } = await run('skopeo', ['inspect', ...tls, '--raw', ref], { maxBuffer: 16 << 20 });
  const m = JSON.parse(stdout) as { layers?: Array<{ digest: string }>; manifests?: Array<{ digest: string }> };
  if (m.manifests !== undefined) {
    const repo = ref.replace(/:[^:/]+$/, '');
    const nested = await Promise.all(m.manifests.map((d) => layerDigests(`${repo}@${d.digest}`)));
    return nested.flat();
  }
  return (m.layers ?? []).map((l) => l.digest);
}

/** Base-image layer digests, so "new layers" means the layers this build made. */
export async function baseLayerDigests(images: BaseImages): Promise<Set<string>> {
  const all = await Promise.all(
    [images.busybox, images.busyboxDocker, images.multi].map((r) => layerDigests(`docker://${r}`)),
  );
  return new Set(all.flat());
}

/** Paths (`./` and trailing `/` stripped) in the layers of the layout that are not base layers. */
export async function newLayerPaths(layout: string, base: ReadonlySet<string>): Promise<string[]> {
  const digests = (await layerDigests(`oci:${layout}`)).filter((d) => !base.has(d));
  const out: string[] = [];
  for (const d of digests) {
    const blob = join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
    const { stdout } = await run('tar', ['-tzf', blob], { maxBuffer: 16 << 20 });
    for (const l of stdout.split('\n')) {
      const p = l.replace(/^\.\//, '').replace(/\/$/, '');
      if (p !== '' && p !== '.') out.push(p);
    }
  }
  return out.sort();
}

export interface ObservedPath {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: string;
  uid: number;
  gid: number;
  content?: string;
  target?: string;
}

export async function observePath(rootfs: string, path: string, want: z.infer<typeof pathExpectation>): Promise<ObservedPath | undefined> {
  const host = join(rootfs, path);
  const st = await lstat(host).catch(() => undefined);
  if (st === undefined) return undefined;
  const type = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  const obs: ObservedPath = { type, mode: `0${(st.mode & 0o7777).toString(8).padStart(3, '0')}`, uid: st.uid, gid: st.gid };
  if (want.content !== undefined && type === 'file') obs.content = await readFile(host, 'utf8');
  if (want.target !== undefined && type === 'symlink') obs.target = await readlink(host);
  return obs;
}

/** The observed path reduced to the fields the expectation names, for an exact comparison. */
export function projectObserved(obs: ObservedPath, want: z.infer<typeof pathExpectation>): Record<string, unknown> {
  const out: Record<string, unknown> = { type: obs.type };
  if (want.mode !== undefined) out['mode'] = obs.mode;
  if (want.uid !== undefined) out['uid'] = obs.uid;
  if (want.gid !== undefined) out['gid'] = obs.gid;
  if (want.content !== undefined) out['content'] = obs.content;
  if (want.target !== undefined) out['target'] = obs.target;
  return out;
}

export function normalisedWant(want: z.infer<typeof pathExpectation>): Record<string, unknown> {
  const out: Record<string, unknown> = { type: want.type };
  if (want.mode !== undefined) out['mode'] = `0${Number.parseInt(want.mode, 8).toString(8).padStart(3, '0')}`;
  if (want.uid !== undefined) out['uid'] = want.uid;
  if (want.gid !== undefined) out['gid'] = want.gid;
  if (want.content !== undefined) out['content'] = want.content;
  if (want.target !== undefined) out['target'] = want.target;
  return out;
}

export async function cleanup(work: string): Promise<void> {
  await rm(work, { recursive: true, force: true });
}
