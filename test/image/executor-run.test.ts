// kiln's executor image run the way users run kaniko's: `docker run` (here podman, unprivileged) with
// the context and credentials as volumes, in Tekton's and Shipwright's setups, failing builds, and
// the runtime's own mounts. What it built is read with skopeo, umoci, tar and podman only, never with
// kiln's own code.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executorImage } from '../support/executor-image.js';
import { PUSH_CHECK_HEADLINE } from '../support/executor.js';
import { podmanAvailable, RUN_DEFAULTS, startPodman, type Podman, type PodmanResult } from '../support/podman.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';

const run = promisify(execFile);

const USER = 'user';
const PASSWORD = 'pass';
const CREDS = `${USER}:${PASSWORD}`;

/** The capabilities Shipwright's kaniko strategy leaves the build container (all others dropped). */
const SHIPWRIGHT_CAPS = 'CHOWN,DAC_OVERRIDE,FOWNER,SETGID,SETUID,SETFCAP,KILL';

interface LayerEntry {
  /** `tar -tv`'s mode column, e.g. `-rwsr-xr-x`. */
  readonly mode: string;
  /** `uid/gid` (numeric). */
  readonly owner: string;
  /** Relative, without `./` or a trailing `/`. */
  readonly path: string;
}

interface SkopeoResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** `skopeo ARGS` without throwing, so that a test can assert on why it failed. */
async function skopeo(args: readonly string[]): Promise<SkopeoResult> {
  try {
    const { stdout, stderr } = await run('skopeo', [...args], { maxBuffer: 64 << 20 });
    return { ok: true, stdout, stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

function credsArgs(creds: string | undefined): string[] {
  return creds === undefined ? [] : ['--creds', creds];
}

/** `skopeo inspect` of a pushed tag: its manifest digest and layer digests; throws if it is not there. */
async function inspectTag(ref: string, creds?: string): Promise<{ Digest: string; Layers: string[] }> {
  const r = await skopeo(['inspect', '--tls-verify=false', ...credsArgs(creds), `docker://${ref}`]);
  if (!r.ok) throw new Error(`skopeo inspect ${ref} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { Digest: string; Layers: string[] };
}

/**
 * Asserts the registry has no manifest under the tag. The failure must be "manifest unknown": a
 * refused login or an unreachable registry would also make skopeo fail, and prove nothing.
 */
async function expectNoTag(ref: string, creds?: string): Promise<void> {
  const r = await skopeo(['inspect', '--raw', '--tls-verify=false', ...credsArgs(creds), `docker://${ref}`]);
  expect(r.ok, `${ref} exists: ${r.stdout}`).toBe(false);
  expect(r.stderr).toMatch(/manifest unknown/i);
}

/** The layer digests of the image tagged `img` in an OCI layout, in order (skopeo wrote it). */
async function layoutLayers(layout: string): Promise<string[]> {
  const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const digest = index.manifests[0]?.digest;
  if (digest === undefined) throw new Error(`${layout}/index.json lists no manifest`);
  const manifest = JSON.parse(await readFile(blob(digest), 'utf8')) as { layers: { digest: string }[] };
  return manifest.layers.map((l) => l.digest);
}

/** Every entry of one layer blob of an OCI layout, as GNU tar lists it (it detects the compression). */
async function layerEntries(layout: string, digest: string): Promise<LayerEntry[]> {
  const blob = join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const { stdout } = await run('tar', ['--numeric-owner', '-tvf', blob], { maxBuffer: 64 << 20 });
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      // "-rw-r--r-- 0/0 3 2026-12-02 05:01 hi.txt" (a link adds " -> target" or " link to ...").
      const f = line.split(/\s+/);
      const name = f.slice(5).join(' ').split(/ -> | link to /)[0] ?? '';
      return { mode: f[0] ?? '', owner: f[1] ?? '', path: name.replace(/^\.\//, '').replace(/\/$/, '') };
    })
    .filter((e) => e.path !== '' && e.path !== '.');
}

/**
 * The entries of the layers an image has on top of its base, read from an OCI layout skopeo copies
 * `source` (a `docker://` or `docker-archive:` reference) into. `baseLayers` is how many the base has;
 * the caller has checked the built image starts with exactly those. `creds`: the registry's login.
 */
async function addedLayerEntries(source: string, baseLayers: number, work: string, creds?: string): Promise<LayerEntry[][]> {
  const layout = await mkdtemp(join(work, 'layout-'));
  try {
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', ...(creds === undefined ? [] : ['--src-creds', creds]), source, `oci:${layout}:img`], { maxBuffer: 16 << 20 });
    const layers = await layoutLayers(layout);
    return await Promise.all(layers.slice(baseLayers).map((d) => layerEntries(layout, d)));
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
}

/** The lines of `text` starting with kaniko's failure prefix, which CI log scrapers look for. */
function errorLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('error building image: '));
}

const available = await podmanAvailable();

describe.skipIf(!available)(`kiln's executor image, run in podman as kaniko's is${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 300_000 }, () => {
  const registry = inject('registry');
  const images = inject('images');
  const workDir = inject('workDir');
  let podman: Podman;
  let imageId: string;
  let authRegistry: RunningRegistry;
  let work: string;
  let baseLayers: string[];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-executor-run-'));
    podman = await startPodman();
    authRegistry = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER]: PASSWORD } } });
    // Built once per run (several minutes the first time, shared with the other image tests).
    const built = await executorImage(workDir, registry, 'executor');
    imageId = await podman.load(built.tarPath);
    baseLayers = (await inspectTag(images.busybox)).Layers;
  }, 900_000);

  afterAll(async () => {
    await podman?.cleanup();
    await authRegistry?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  /** A fresh build context dir holding `Dockerfile` (these lines) and `files`. */
  async function context(dockerfile: readonly string[], files: Record<string, string> = {}): Promise<string> {
    const dir = await mkdtemp(join(work, 'ctx-'));
    await writeFile(join(dir, 'Dockerfile'), [...dockerfile, ''].join('\n'));
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    return dir;
  }

  /** An empty host dir to mount as a volume (the container writes into it as root). */
  async function volume(): Promise<string> {
    return mkdtemp(join(work, 'vol-'));
  }

  /**
   * `podman run --rm --network=host [runOpts] -v CTX:/workspace IMAGE --dockerfile Dockerfile
   * --context dir:///workspace [args]`: the line from kaniko's README, with the context as a volume.
   */
  function executor(ctx: string, runOpts: readonly string[], args: readonly string[]): Promise<PodmanResult> {
    return podman.exec([...RUN_DEFAULTS, ...runOpts, '-v', `${ctx}:/workspace`, imageId, '--dockerfile', 'Dockerfile', '--context', 'dir:///workspace', ...args]);
  }

  /** Asserts the built image is its base plus `added` layers, and returns what those layers hold. */
  async function checkAdded(source: string, builtLayers: readonly string[], added: number, creds?: string): Promise<LayerEntry[][]> {
    expect(builtLayers).toHaveLength(baseLayers.length + added);
    expect(builtLayers.slice(0, baseLayers.length)).toEqual(baseLayers);
    const entries = await addedLayerEntries(source, baseLayers.length, work, creds);
    expect(entries).toHaveLength(added);
    return entries;
  }

  describe('the `docker run` line with a config.json mounted for a registry that requires a login', () => {
    const dockerfile = (): string[] => [`FROM ${images.busybox}`, 'RUN echo "built with credentials" > /built.txt', 'COPY note.txt /note.txt', 'CMD ["cat", "/built.txt", "/note.txt"]'];

    it('pushes; skopeo sees the tag, podman pulls it with the same login and its CMD prints what the build wrote', async () => {
      const ctx = await context(dockerfile(), { 'note.txt': 'from the context\n' });
      const config = join(await volume(), 'config.json');
      // What `docker login` writes: base64 of user:password under the registry's host.
      await writeFile(config, JSON.stringify({ auths: { [authRegistry.host]: { auth: Buffer.from(CREDS).toString('base64') } } }));
      const destination = `${authRegistry.host}/executor-run/login:1`;

      const r = await executor(ctx, ['-v', `${config}:/kaniko/.docker/config.json:ro`], ['--destination', destination]);
      expect(r.code, r.stderr).toBe(0);
      expect(errorLines(r.stderr)).toEqual([]);

      // Without a login, the registry refuses to show it (so the push above did use the config).
      const anonymous = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${destination}`]);
      expect(anonymous.ok).toBe(false);
      expect(anonymous.stderr).toMatch(/unauthorized|authentication required/i);
      const pushed = await inspectTag(destination, CREDS);
      expect(pushed.Digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      const [runLayer, copyLayer] = await checkAdded(`docker://${destination}`, pushed.Layers, 2, CREDS);
      expect(runLayer?.map((e) => e.path)).toEqual(['built.txt']);
      expect(copyLayer?.map((e) => e.path)).toEqual(['note.txt']);

      await podman.ok(['pull', '-q', '--tls-verify=false', '--creds', CREDS, destination]);
      const pulledDigest = (await podman.ok(['image', 'inspect', '--format', '{{.Digest}}', destination])).trim();
      expect(pulledDigest).toBe(pushed.Digest);
      expect(await podman.ok(['run', '--rm', destination])).toBe('built with credentials\nfrom the context\n');
    });

    it("without the config mounted, exits 1 with kaniko's one push-permission line before building, and pushes nothing", async () => {
      const ctx = await context(dockerfile(), { 'note.txt': 'from the context\n' });
      const destination = `${authRegistry.host}/executor-run/no-login:1`;

      const r = await executor(ctx, [], ['--destination', destination]);
      expect(r.code, r.stderr).toBe(1);
      expect(errorLines(r.stderr), r.stderr).toEqual([]);
      // kaniko's own line for a refused push check (pipelines grep it), then the destination quoted.
      const lines = r.stderr.split('\n').filter((l) => l.startsWith(`${PUSH_CHECK_HEADLINE}: `));
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toContain(`: checking push permission for "${destination}": `);
      // Names the destination and the registry's answer, so that the user knows to log in.
      expect(lines[0]).toContain(destination);
      expect(lines[0]).toMatch(/401|unauthorized/i);
      // kaniko checks that it may push before it builds: no RUN ran.
      expect(r.stderr).not.toContain('Running:');

      await expectNoTag(destination, CREDS);
      // Not even a blob or an upload under the repository (the registry's storage, read directly).
      expect(existsSync(join(authRegistry.dir, 'data/docker/registry/v2/repositories/executor-run/no-login'))).toBe(false);
    });
  });

  it('a RUN that exits 42 makes the container exit 42 and pushes nothing', async () => {
    const ctx = await context([`FROM ${images.busybox}`, 'RUN echo before > /before.txt', 'RUN echo failing; exit 42', 'CMD ["cat", "/before.txt"]']);
    const destination = `${registry}/executor-run/exit42:1`;

    const r = await executor(ctx, [], ['--destination', destination]);
    expect(r.code, r.stderr).toBe(42);
    // The RUN's own output reaches the container's output, and the failure names the command and its status.
    expect(r.stdout).toContain('failing');
    const lines = errorLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain('exit 42');
    expect(lines[0]).toMatch(/exit status 42/);
    await expectNoTag(destination);
  });

  describe('a bad Dockerfile exits 1 with one `error building image:` line naming its line', () => {
    const cases: readonly { name: string; line: string; says: RegExp }[] = [
      { name: 'an unknown instruction', line: 'FROBNICATE the widgets', says: /unknown instruction: FROBNICATE/i },
      { name: 'COPY with only one argument', line: 'COPY onlyone', says: /COPY requires at least two arguments/i },
      // kaniko takes an unknown stage name for an image to pull: the line fails however that pull fails.
      { name: 'COPY --from a stage that does not exist', line: 'COPY --from=nosuchstage /a /b', says: /--from=nosuchstage/ },
    ];

    it.each(cases)('$name', async ({ line, says }) => {
      const ctx = await context([`FROM ${images.busybox}`, 'RUN echo ok > /ok.txt', line, 'CMD ["true"]']);
      const destination = `${registry}/executor-run/bad-dockerfile:${Math.random().toString(36).slice(2, 10)}`;

      const r = await executor(ctx, [], ['--destination', destination]);
      expect(r.code, r.stderr).toBe(1);
      const lines = errorLines(r.stderr);
      expect(lines, r.stderr).toHaveLength(1);
      // The bad line is the Dockerfile's third.
      expect(lines[0]).toContain(`Dockerfile:3 ${line}`);
      expect(lines[0]).toMatch(says);
      await expectNoTag(destination);
    });
  });

  it('Tekton: --digest-file in a results volume holds exactly the digest the registry has for the tag', async () => {
    const ctx = await context([`FROM ${images.busybox}`, 'RUN echo tekton > /tekton.txt']);
    const results = await volume();
    const destination = `${registry}/executor-run/tekton:1`;

    const r = await executor(ctx, ['-v', `${results}:/tekton/results`], ['--destination', destination, '--digest-file=/tekton/results/IMAGE_DIGEST']);
    expect(r.code, r.stderr).toBe(0);

    const written = await readFile(join(results, 'IMAGE_DIGEST'), 'utf8');
    const pushed = await inspectTag(destination);
    // Exactly the digest, no newline: Tekton passes the result's bytes on as they are.
    expect(written).toBe(pushed.Digest);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${destination}`]);
    expect(raw.ok, raw.stderr).toBe(true);
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(written);
  });

  it('Shipwright: with all capabilities dropped but its seven, --no-push --tar-path keeps chown and setuid in the layers', async () => {
    const ctx = await context([
      `FROM ${images.busybox}`,
      'RUN echo owned > /owned.txt && chown 1000:1000 /owned.txt && chmod 640 /owned.txt',
      'RUN cp /bin/busybox /suid-tool && chmod 4755 /suid-tool',
      'CMD ["stat", "-c", "%u:%g %a %n", "/owned.txt", "/suid-tool"]',
    ]);
    const output = await volume();
    const destination = `${registry}/executor-run/shipwright:1`;

    const r = await executor(ctx, ['--cap-drop=all', `--cap-add=${SHIPWRIGHT_CAPS}`, '-v', `${output}:/output`], [
      '--destination', destination, '--no-push', '--tar-path', '/output/image.tar',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const tarball = join(output, 'image.tar');
    expect(existsSync(tarball)).toBe(true);
    await expectNoTag(destination);

    // podman loads the tarball under the destination's name (its RepoTags), and the image runs.
    const loaded = await podman.ok(['load', '-q', '-i', tarball]);
    expect(loaded).toContain(destination);
    expect(await podman.ok(['run', '--rm', destination])).toBe('1000:1000 640 /owned.txt\n0:0 4755 /suid-tool\n');

    // The layers themselves, as tar lists them: one per RUN, owner and mode as the RUNs set them.
    const archiveLayers = (JSON.parse(await podman.ok(['image', 'inspect', destination])) as { RootFS: { Layers: string[] } }[])[0]?.RootFS.Layers ?? [];
    expect(archiveLayers).toHaveLength(baseLayers.length + 2);
    const [chownLayer, suidLayer] = await addedLayerEntries(`docker-archive:${tarball}`, baseLayers.length, work);
    expect(chownLayer).toEqual([{ mode: '-rw-r-----', owner: '1000/1000', path: 'owned.txt' }]);
    expect(suidLayer).toEqual([{ mode: '-rwsr-xr-x', owner: '0/0', path: 'suid-tool' }]);

    // And as umoci unpacks them.
    const layout = join(work, 'shipwright-layout');
    const bundle = join(work, 'shipwright-bundle');
    await run('skopeo', ['copy', '--quiet', `docker-archive:${tarball}`, `oci:${layout}:img`], { maxBuffer: 16 << 20 });
    await run('umoci', ['unpack', '--image', `${layout}:img`, bundle]);
    const owned = await lstat(join(bundle, 'rootfs/owned.txt'));
    expect([owned.uid, owned.gid, owned.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    const suid = await lstat(join(bundle, 'rootfs/suid-tool'));
    expect([suid.uid, suid.gid, suid.mode & 0o7777]).toEqual([0, 0, 0o4755]);
  });

  it("keeps the runtime's mounts out of every layer while a RUN resolves names, writes /dev/null and reads /proc", async () => {
    // The RUN also writes into every mount, which is what would put them in a layer if kiln snapshotted them.
    const ctx = await context([
      `FROM ${images.busybox}`,
      [
        'RUN mkdir /probe',
        // `localhost` resolves through the /etc/hosts the runtime mounted; the registry answers /v2/ with `{}`.
        `wget -q -O /probe/v2.txt http://localhost:${registry.split(':')[1] ?? ''}/v2/`,
        'echo discarded > /dev/null',
        "grep '^Name:' /proc/self/status > /probe/status.txt",
        'echo "10.9.9.9 added-by-run" >> /etc/hosts',
        'echo "nameserver 10.9.9.9" >> /etc/resolv.conf',
        'echo changed-by-run > /etc/hostname',
        'echo changed-by-run >> /run/.containerenv',
        'echo from-run > /data/written.txt',
        'echo from-run > /workspace/written.txt',
      ].join(' && '),
      'CMD ["cat", "/probe/v2.txt", "/probe/status.txt"]',
    ]);
    const data = await volume();
    await writeFile(join(data, 'keep.txt'), 'volume data\n');
    const destination = `${registry}/executor-run/mounts:1`;

    const r = await executor(ctx, ['-v', `${data}:/data`], ['--destination', destination]);
    expect(r.code, r.stderr).toBe(0);
    // The RUN wrote through to the volumes, which kept what they had.
    expect(await readFile(join(data, 'written.txt'), 'utf8')).toBe('from-run\n');
    expect(await readFile(join(data, 'keep.txt'), 'utf8')).toBe('volume data\n');
    expect(await readFile(join(ctx, 'written.txt'), 'utf8')).toBe('from-run\n');

    const pushed = await inspectTag(destination);
    const [runLayer] = await checkAdded(`docker://${destination}`, pushed.Layers, 1);
    const paths = (runLayer ?? []).map((e) => e.path);
    for (const mount of ['etc/hosts', 'etc/resolv.conf', 'etc/hostname', 'run/.containerenv', 'data', 'workspace']) {
      expect(paths.filter((p) => p === mount || p.startsWith(`${mount}/`)), mount).toEqual([]);
    }
    for (const forbidden of [/^(proc|sys|dev|kaniko)(\/|$)/, /(^|\/)\.wh\./]) expect(paths.filter((p) => forbidden.test(p))).toEqual([]);
    // Exactly the RUN's own files: nothing else of `/` changed as far as the image is concerned.
    expect([...paths].sort()).toEqual(['probe', 'probe/status.txt', 'probe/v2.txt']);

    await podman.ok(['pull', '-q', '--tls-verify=false', destination]);
    // `{}` has no newline of its own: the registry's body, byte for byte.
    expect(await podman.ok(['run', '--rm', destination])).toBe('{}Name:\tgrep\n');
  });
});
