// The CI examples of docs/executor-image.md (docs/examples/*), each run for real with kiln's image in
// podman, unprivileged, the way that CI system runs kaniko's: the Kubernetes Job's pod template and
// the Jenkins agent pod with `podman kube play`, GitLab's job script in the debug image with its
// entrypoint cleared, the Tekton step with its workspaces and results as volumes, the GitHub Actions
// step's `docker run` line, and kiln's layer cache and base-image cache (warmer) in the image. The
// examples are read from the docs' own files; only their placeholders are replaced here (image names,
// registry hosts, credentials), plus what podman 4.3 cannot do (said where it is done). What was
// pushed is read with skopeo and podman only, never with kiln's own code.
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { executorImage } from '../support/executor-image.js';
import { podmanAvailable, RUN_DEFAULTS, startPodman, type Podman, type PodmanResult } from '../support/podman.js';
import { startRegistry, type RunningRegistry } from '../support/registry.js';

const run = promisify(execFile);
const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/examples');

/** The placeholders the examples use, replaced by what this test runs. */
const PLACEHOLDER_IMAGE = 'registry.example.com/kiln/executor:';
const PLACEHOLDER_REGISTRY = 'registry.example.com';
/** base64("user:password"), the Job example's placeholder `auth`. */
const PLACEHOLDER_AUTH = 'dXNlcjpwYXNzd29yZA==';
/** Where the two images are tagged in podman, `:latest` (executor) and `:debug`. */
const LOCAL_IMAGE = 'localhost/kiln/executor:';
const EXECUTOR = `${LOCAL_IMAGE}latest`;
const DEBUG = `${LOCAL_IMAGE}debug`;
/** The pods' infra container's image, made in beforeAll (see `makePauseImage`). */
const PAUSE_IMAGE = 'localhost/kiln-test/pause:1';

const USER = 'ci-builder';
const PASSWORD = 'ci-secret-4711';
const CREDS = `${USER}:${PASSWORD}`;
const AUTH = Buffer.from(CREDS).toString('base64');

// --- The few Kubernetes, Tekton and GitHub Actions shapes the examples use (unknown keys kept). ---

const stringMap = z.record(z.string(), z.string());
const k8sObject = z.looseObject({ apiVersion: z.string(), kind: z.string(), metadata: z.looseObject({ name: z.string() }).optional() });
const keyToPath = z.looseObject({ key: z.string(), path: z.string() });
const volume = z.looseObject({
  name: z.string(),
  secret: z.looseObject({ secretName: z.string(), items: z.array(keyToPath).optional() }).optional(),
  configMap: z.looseObject({ name: z.string(), items: z.array(keyToPath).optional() }).optional(),
  persistentVolumeClaim: z.looseObject({ claimName: z.string() }).optional(),
});
const container = z.looseObject({
  name: z.string(),
  image: z.string(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  env: z.array(z.looseObject({ name: z.string(), value: z.string() })).optional(),
  volumeMounts: z.array(z.looseObject({ name: z.string(), mountPath: z.string() })).optional(),
});
const podSpec = z.looseObject({ containers: z.array(container), volumes: z.array(volume).optional(), restartPolicy: z.string().optional() });
type PodSpec = z.infer<typeof podSpec>;
const pod = k8sObject.extend({ kind: z.literal('Pod'), spec: podSpec });
type Pod = z.infer<typeof pod>;
const job = k8sObject.extend({ kind: z.literal('Job'), spec: z.looseObject({ backoffLimit: z.number(), template: z.looseObject({ spec: podSpec }) }) });
const secret = k8sObject.extend({ kind: z.literal('Secret'), metadata: z.looseObject({ name: z.string() }), data: stringMap.optional(), stringData: stringMap.optional() });
type Secret = z.infer<typeof secret>;
const configMap = k8sObject.extend({ kind: z.literal('ConfigMap'), metadata: z.looseObject({ name: z.string() }), data: stringMap });
type ConfigMap = z.infer<typeof configMap>;
const tektonTask = k8sObject.extend({
  kind: z.literal('Task'),
  spec: z.looseObject({
    params: z.array(z.looseObject({ name: z.string(), default: z.union([z.string(), z.array(z.string())]).optional() })),
    workspaces: z.array(z.looseObject({ name: z.string(), mountPath: z.string().optional(), optional: z.boolean().optional() })),
    results: z.array(z.looseObject({ name: z.string() })),
    steps: z.array(z.looseObject({ name: z.string(), image: z.string(), workingDir: z.string().optional(), args: z.array(z.string()).optional(), script: z.string().optional() })),
  }),
});
const gitlabJob = z.looseObject({ image: z.looseObject({ name: z.string(), entrypoint: z.array(z.string()) }), script: z.array(z.string()) });
const workflow = z.looseObject({
  jobs: z.record(z.string(), z.looseObject({ steps: z.array(z.looseObject({ name: z.string().optional(), run: z.string().optional(), env: stringMap.optional() })) })),
});

async function example(name: string): Promise<string> {
  return readFile(join(EXAMPLES, name), 'utf8');
}

/** Every document of a multi-document YAML file, as plain data. */
function yamlDocuments(text: string): unknown[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`bad YAML: ${d.errors.map((e) => e.message).join('; ')}`);
    return d.toJS() as unknown;
  });
}

/** `text` with every occurrence of each key replaced, each key required to occur (so that a renamed placeholder fails loudly). */
function substitute(text: string, replacements: readonly (readonly [string, string])[]): string {
  let out = text;
  for (const [from, to] of replacements) {
    expect(out, `the example names ${from}`).toContain(from);
    out = out.replaceAll(from, to);
  }
  return out;
}

/** Single-quoted for sh. */
const shq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

const available = await podmanAvailable();

describe.skipIf(!available)(`the CI examples of docs/executor-image.md, run with kiln's image in podman${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 400_000 }, () => {
  const shared = inject('registry');
  const images = inject('images');
  const workDir = inject('workDir');
  let podman: Podman;
  let work: string;
  /** The htpasswd registry the examples push to; its `auths` entry is in `dockerConfigDir`. */
  let authReg: RunningRegistry;
  /** A plain registry with an access log, for the warmer test. */
  let loggedReg: RunningRegistry;
  let dockerConfigDir: string;
  /** CONTAINERS_CONF for `podman kube play`: the support config plus the pause image. */
  let kubeConf: string;

  const tempDir = async (name: string): Promise<string> => {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    return dir;
  };

  /** A directory with these files (paths may have `/`). */
  const context = async (name: string, files: Record<string, string>): Promise<string> => {
    const dir = await tempDir(name);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    return dir;
  };

  /** `podman ARGS` with the kube config (for `kube play`, whose pods need the pause image). */
  const podmanKube = (args: readonly string[]): Promise<PodmanResult> =>
    new Promise((resolvePromise, reject) => {
      const child = spawn('podman', [...podman.globalArgs, ...args], { env: { ...podman.env, CONTAINERS_CONF: kubeConf }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    });

  /** `podman kube play` of these documents; throws with podman's output when it fails. */
  const kubePlay = async (name: string, docs: readonly unknown[]): Promise<void> => {
    const file = join(work, `${name}.kube.yaml`);
    await writeFile(file, docs.map((d) => stringifyYaml(d)).join('---\n'));
    const r = await podmanKube(['kube', 'play', '--quiet', file]);
    if (r.code !== 0) throw new Error(`podman kube play ${name} exited ${r.code}: ${r.stderr}${r.stdout}`);
  };

  /** Waits for a container to exit: its exit code and its log (kiln logs to stderr). */
  const waitFor = async (ctr: string): Promise<{ code: number; log: string }> => {
    const code = Number((await podman.ok(['wait', ctr])).trim());
    const logs = await podman.exec(['logs', ctr]);
    return { code, log: logs.stdout + logs.stderr };
  };

  /** The registry's manifest digest of `ref`, from skopeo (never kiln). */
  const registryDigest = async (ref: string, creds?: string): Promise<string> => {
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', ...(creds === undefined ? [] : ['--creds', creds]), `docker://${ref}`]);
    return (JSON.parse(stdout) as { Digest: string }).Digest;
  };

  /** Pulls `ref` with podman and runs it (its CMD, or `argv` with /bin/sh as entrypoint): stdout. */
  const runBuilt = async (ref: string, creds: string | undefined, argv: readonly string[] = []): Promise<string> => {
    await podman.ok(['pull', '-q', '--tls-verify=false', ...(creds === undefined ? [] : ['--creds', creds]), ref]);
    return podman.ok(['run', '--rm', ...(argv.length > 0 ? ['--entrypoint', '/bin/sh'] : []), ref, ...(argv.length > 0 ? ['-c', ...argv] : [])]);
  };

  /** What a build must never leave in its image: the runtime's mounts and kiln's own dir. */
  const LEAK_CHECK = 'for p in /kaniko /root/.aws /workspace/Dockerfile /busybox; do if test -e "$p"; then echo "$p is in the image"; fi; done';

  /**
   * podman 4.3.1's secret volumes are unusable: a `secret:` volume without `optional:` makes kube
   * play panic (nil dereference in VolumeFromSecret), and with it each `data` value is written to the
   * file still base64-encoded while `stringData` is dropped (the same with a secret made by
   * `podman secret create NAME secret.yaml`). The closest that works is what podman does with a ConfigMap: the same keys as files in a
   * volume of the same name. So each Secret becomes a ConfigMap with its decoded data, and each
   * `secret:` volume a `configMap:` volume with the same items.
   */
  const secretAsConfigMap = (s: Secret): ConfigMap => {
    const data: Record<string, string> = { ...(s.stringData ?? {}) };
    for (const [k, v] of Object.entries(s.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
    return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: s.metadata.name }, data };
  };

  /** The pod spec as this podman runs it: host network (loopback registries), images loaded not pulled, secrets as ConfigMaps. */
  const forPodman = (spec: PodSpec): PodSpec => ({
    ...spec,
    hostNetwork: true,
    containers: spec.containers.map((c) => ({ ...c, imagePullPolicy: 'Never' })),
    volumes: (spec.volumes ?? []).map(({ secret: s, ...v }) => (s === undefined ? v : { ...v, configMap: { name: s.secretName, ...(s.items !== undefined ? { items: s.items } : {}) } })),
  });

  /** A podman volume for a PersistentVolumeClaim of this name (kube play mounts the volume named by claimName), holding `files`. */
  const claimVolume = async (claim: string, files: Record<string, string>): Promise<void> => {
    await podman.ok(['volume', 'create', claim]);
    const mountpoint = (await podman.ok(['volume', 'inspect', '--format', '{{.Mountpoint}}', claim])).trim();
    for (const [path, content] of Object.entries(files)) await writeFile(join(mountpoint, path), content);
  };

  /**
   * The pods' infra (pause) image. Without one configured, podman builds it from catatonit, which
   * Debian's podman only recommends and install-deps.sh does not install; so a busybox whose shell
   * sleeps until SIGTERM, committed by podman itself.
   */
  const makePauseImage = async (): Promise<void> => {
    await podman.ok(['pull', '-q', '--tls-verify=false', images.busybox]);
    await podman.ok(['create', '--name', 'kiln-test-pause-base', images.busybox, 'true']);
    await podman.ok([
      'commit', '-q',
      '--change', 'ENTRYPOINT ["/bin/sh", "-c", "trap \\"exit 0\\" TERM; while :; do sleep 1; done"]',
      '--change', 'CMD []',
      'kiln-test-pause-base', PAUSE_IMAGE,
    ]);
    await podman.ok(['rm', 'kiln-test-pause-base']);
    kubeConf = join(work, 'containers-kube.conf');
    const base = await readFile(podman.env['CONTAINERS_CONF'] ?? '', 'utf8');
    await writeFile(kubeConf, `${base}\n[engine]\ninfra_image = "${PAUSE_IMAGE}"\n`);
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-ci-test-'));
    podman = await startPodman();
    [authReg, loggedReg] = await Promise.all([startRegistry({ auth: { kind: 'htpasswd', users: { [USER]: PASSWORD } } }), startRegistry({ accessLog: true })]);
    dockerConfigDir = await context('docker-config', { 'config.json': JSON.stringify({ auths: { [authReg.host]: { auth: AUTH } } }) });
    const [executor, debug] = await Promise.all([executorImage(workDir, shared, 'executor'), executorImage(workDir, shared, 'debug')]);
    await podman.ok(['tag', await podman.load(executor.tarPath), EXECUTOR]);
    await podman.ok(['tag', await podman.load(debug.tarPath), DEBUG]);
    await makePauseImage();
    // Built once per run: several minutes the first time (shared with the other image tests).
  }, 900_000);

  afterAll(async () => {
    await podman?.cleanup();
    await authReg?.stop();
    await loggedReg?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  it('Kubernetes: the Job\'s pod template runs in `podman kube play` with config.json from a ConfigMap, ~/.aws from a Secret and the context from a claim; the image is pushed and right', async () => {
    const text = substitute(await example('kubernetes-job.yaml'), [
      [PLACEHOLDER_IMAGE, LOCAL_IMAGE],
      [PLACEHOLDER_REGISTRY, authReg.host],
      [PLACEHOLDER_AUTH, AUTH],
    ]);
    const docs = yamlDocuments(text);
    const dockerConfig = configMap.parse(docs.find((d) => k8sObject.parse(d).kind === 'ConfigMap'));
    const awsSecret = secret.parse(docs.find((d) => k8sObject.parse(d).kind === 'Secret'));
    const buildJob = job.parse(docs.find((d) => k8sObject.parse(d).kind === 'Job'));
    // What kaniko's template has, and what makes it a one-shot build.
    const spec = buildJob.spec.template.spec;
    expect(spec.restartPolicy).toBe('Never');
    expect(buildJob.spec.backoffLimit).toBeGreaterThan(0);
    const kiln = spec.containers[0];
    expect(kiln?.env).toEqual(expect.arrayContaining([{ name: 'DOCKER_CONFIG', value: '/kaniko/.docker' }, expect.objectContaining({ name: 'AWS_REGION' })]));
    expect(kiln?.volumeMounts?.map((m) => m.mountPath)).toEqual(expect.arrayContaining(['/kaniko/.docker/', '/root/.aws/', '/workspace']));
    const destination = kiln?.args?.find((a) => a.startsWith('--destination='))?.slice('--destination='.length) ?? '';
    expect(destination).toBe(`${authReg.host}/team/app:1.0`);

    // The claim's volume holds the context: a RUN that looks for the mounted AWS credentials (visible
    // to RUN in kaniko; hidden from it in kiln, whose RUN runs isolated: kiln itself still reads them
    // for S3 and ECR), a COPY from the context.
    const claim = spec.volumes?.find((v) => v.persistentVolumeClaim !== undefined)?.persistentVolumeClaim?.claimName ?? '';
    await claimVolume(claim, {
      Dockerfile: [`FROM ${images.busybox}`, 'RUN (grep aws_access_key_id /root/.aws/credentials 2>/dev/null || echo hidden from RUN) > /aws-seen', 'COPY app.txt /app.txt', 'CMD ["cat", "/app.txt", "/aws-seen"]', ''].join('\n'),
      'app.txt': 'built by a Kubernetes Job\n',
    });
    const name = buildJob.metadata?.name ?? 'kiln-build';
    await kubePlay('job', [dockerConfig, secretAsConfigMap(awsSecret), { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: forPodman(spec) }]);
    const { code, log } = await waitFor(`${name}-${kiln?.name ?? ''}`);
    expect(code, log).toBe(0);
    expect(log).toContain(`Pushing image to ${destination}`);

    const digest = await registryDigest(destination, CREDS);
    expect(log).toContain(`Pushed ${authReg.host}/team/app@${digest}`);
    expect(await runBuilt(destination, CREDS)).toBe('built by a Kubernetes Job\nhidden from RUN\n');
    // Neither the secret nor the config map nor the context ended up in a layer.
    expect(await runBuilt(destination, CREDS, [LEAK_CHECK])).toBe('');
  });

  describe('GitLab CI', () => {
    const ciVars = (projectDir: string, registryImage: string, tag: string): string[] =>
      Object.entries({
        CI_REGISTRY: authReg.host,
        CI_REGISTRY_USER: USER,
        CI_REGISTRY_PASSWORD: PASSWORD,
        CI_REGISTRY_IMAGE: registryImage,
        CI_COMMIT_TAG: tag,
        CI_PROJECT_DIR: projectDir,
      }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);

    const gitlabExample = async (): Promise<z.infer<typeof gitlabJob>> => {
      const text = substitute(await example('gitlab-ci.yml'), [[PLACEHOLDER_IMAGE, LOCAL_IMAGE]]);
      const jobs = z.record(z.string(), z.unknown()).parse(parseYaml(text));
      return gitlabJob.parse(jobs['build-image']);
    };

    /** The job's `script:` in its image, entrypoint cleared, as the runner runs it: `sh` with set -e, the CI variables set, the project dir a volume. */
    const runScript = async (image: string, entrypoint: readonly string[], lines: readonly string[], projectDir: string, registryImage: string, tag: string): Promise<PodmanResult> => {
      const src = await context(`gitlab-${tag}`, {
        Dockerfile: [`FROM ${images.busybox}`, 'RUN echo "built by kiln in GitLab CI" > /marker', 'COPY note.txt /note.txt', 'CMD ["cat", "/marker", "/note.txt"]', ''].join('\n'),
        'note.txt': `tag ${tag}\n`,
      });
      return podman.exec([
        ...RUN_DEFAULTS,
        '--entrypoint', entrypoint.join(' '),
        ...ciVars(projectDir, registryImage, tag),
        '-v', `${src}:${projectDir}`,
        '-w', projectDir,
        image,
        '/busybox/sh', '-c', ['set -e', ...lines].join('\n'),
      ]);
    };

    it('the job\'s script runs in the debug image with `entrypoint: [""]`: config.json from CI_REGISTRY*, the image pushed for the tag, busybox still working after kiln replaced `/`', async () => {
      const gl = await gitlabExample();
      expect(gl.image.name).toBe(DEBUG);
      expect(gl.image.entrypoint).toEqual(['']);
      const projectDir = '/builds/group/project';
      const registryImage = `${authReg.host}/group/project`;
      // After the job's own lines (the last of which already runs busybox's cat after the build), what
      // an after_script would do: busybox from /busybox, on a `/` that is now the built image's (the
      // RUN's /marker is there), the project dir and /kaniko still in place.
      const after = ['echo "after: $(/busybox/cat /marker)"', '/busybox/ls /kaniko/executor /kaniko/.docker/config.json "${CI_PROJECT_DIR}/image-digest"'];
      const r = await runScript(gl.image.name, gl.image.entrypoint, [...gl.script, ...after], projectDir, registryImage, 'v1.2.3');
      expect(r.code, r.stderr).toBe(0);
      const digest = await registryDigest(`${registryImage}:v1.2.3`, CREDS);
      expect(r.stdout).toContain(`pushed ${registryImage}:v1.2.3@${digest}\n`);
      expect(r.stdout).toContain('after: built by kiln in GitLab CI\n');
      expect(r.stdout).toContain('/kaniko/.docker/config.json\n');
      expect(await runBuilt(`${registryImage}:v1.2.3`, CREDS)).toBe('built by kiln in GitLab CI\ntag v1.2.3\n');
      expect(await runBuilt(`${registryImage}:v1.2.3`, CREDS, [LEAK_CHECK])).toBe('');
    });

    it('without the config.json line, kiln logs in with CI_REGISTRY_USER and CI_REGISTRY_PASSWORD itself', async () => {
      const gl = await gitlabExample();
      const build = gl.script.filter((l) => l.startsWith('/kaniko/executor'));
      expect(build).toHaveLength(1);
      const projectDir = '/builds/group/other';
      const registryImage = `${authReg.host}/group/other`;
      const r = await runScript(gl.image.name, gl.image.entrypoint, ['test ! -e /kaniko/.docker/config.json', ...build], projectDir, registryImage, 'v2.0.0');
      expect(r.code, r.stderr).toBe(0);
      expect(await runBuilt(`${registryImage}:v2.0.0`, CREDS)).toBe('built by kiln in GitLab CI\ntag v2.0.0\n');
    });
  });

  it('Jenkins: the agent pod keeps the debug image alive with /busybox/cat on a tty; both `sh` steps are exec\'d into it, one after the other, and both build and push', async () => {
    const jenkinsfile = substitute(await example('Jenkinsfile'), [
      [PLACEHOLDER_IMAGE, LOCAL_IMAGE],
      [PLACEHOLDER_REGISTRY, authReg.host],
    ]);
    const podYaml = /yaml '''\n([\s\S]*?)'''/.exec(jenkinsfile)?.[1];
    expect(podYaml).toBeDefined();
    const agent = pod.parse(parseYaml(podYaml ?? ''));
    const steps = [...jenkinsfile.matchAll(/^\s*sh '([^']*)'\s*$/gm)].map((m) => m[1] ?? '');
    expect(steps).toHaveLength(2);
    const kiln = agent.spec.containers.find((c) => c.name === 'kiln');
    expect(kiln?.command).toEqual(['/busybox/cat']);
    expect(kiln?.['tty']).toBe(true);

    // The Kubernetes plugin mounts the agent's workspace volume in every container at /home/jenkins/agent
    // and runs each `sh` step there, with WORKSPACE and BUILD_NUMBER set. The second image builds FROM the first.
    const workspace = '/home/jenkins/agent/workspace/app';
    const agentDir = await context('jenkins-agent', {
      'workspace/app/Dockerfile': [`FROM ${images.busybox}`, 'RUN echo app > /built.txt', 'CMD ["cat", "/built.txt"]', ''].join('\n'),
      'workspace/app/tools/Dockerfile': [`FROM ${authReg.host}/team/app:7`, 'RUN echo tools >> /built.txt', ''].join('\n'),
    });
    const regcred: Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: agent.spec.volumes?.find((v) => v.secret !== undefined)?.secret?.secretName ?? '' },
      type: 'kubernetes.io/dockerconfigjson',
      stringData: { '.dockerconfigjson': await readFile(join(dockerConfigDir, 'config.json'), 'utf8') },
    };
    const spec = forPodman(agent.spec);
    const withWorkspace: Pod = {
      ...agent,
      metadata: { name: 'jenkins-agent' },
      spec: {
        ...spec,
        containers: spec.containers.map((c) => ({ ...c, volumeMounts: [...(c.volumeMounts ?? []), { name: 'workspace-volume', mountPath: '/home/jenkins/agent' }] })),
        volumes: [...(spec.volumes ?? []), { name: 'workspace-volume', hostPath: { path: agentDir } }],
      },
    };
    await kubePlay('jenkins', [secretAsConfigMap(regcred), withWorkspace]);
    const ctr = 'jenkins-agent-kiln';
    for (const [i, step] of steps.entries()) {
      const r = await podman.exec(['exec', '-w', workspace, '-e', `WORKSPACE=${workspace}`, '-e', 'BUILD_NUMBER=7', ctr, '/busybox/sh', '-c', step]);
      expect(r.code, `step ${i + 1}: ${r.stderr}`).toBe(0);
    }
    // Still alive for a third step after both builds replaced its `/`.
    expect(await podman.ok(['exec', '-w', workspace, ctr, '/busybox/sh', '-c', 'cat /built.txt'])).toBe('app\ntools\n');
    await podman.ok(['pod', 'rm', '--force', '--time', '0', 'jenkins-agent']);
    expect(await runBuilt(`${authReg.host}/team/app:7`, CREDS)).toBe('app\n');
    expect(await runBuilt(`${authReg.host}/team/app-tools:7`, CREDS)).toBe('app\ntools\n');
  });

  it('Tekton: the build step\'s args, with params, workspaces and results resolved, push the image; the IMAGE_DIGEST result is the registry\'s digest, and the write-url step writes IMAGE_URL', async () => {
    const task = tektonTask.parse(parseYaml(substitute(await example('tekton-task.yaml'), [[PLACEHOLDER_IMAGE, LOCAL_IMAGE]])));
    const image = `${authReg.host}/team/tekton:1`;
    const params: Record<string, string | readonly string[]> = {};
    for (const p of task.spec.params) if (p.default !== undefined) params[p.name] = p.default;
    params['IMAGE'] = image;
    params['EXTRA_ARGS'] = ['--label=org.example.built-by=tekton', '--build-arg=MESSAGE=from a Tekton step'];
    const vars: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) if (typeof v === 'string') vars[`params.${k}`] = v;
    for (const w of task.spec.workspaces) vars[`workspaces.${w.name}.path`] = w.mountPath ?? `/workspace/${w.name}`;
    for (const r of task.spec.results) vars[`results.${r.name}.path`] = `/tekton/results/${r.name}`;
    const resolveVar = (s: string): string =>
      s.replace(/\$\(([^)]+)\)/g, (_m, name: string) => {
        const v = vars[name];
        if (v === undefined) throw new Error(`the Task uses $(${name}), which this test does not resolve`);
        return v;
      });
    const resolveArgs = (args: readonly string[]): string[] =>
      args.flatMap((a) => {
        const array = /^\$\(params\.([A-Z_]+)\[\*\]\)$/.exec(a)?.[1];
        if (array === undefined) return [resolveVar(a)];
        const v = params[array];
        if (v === undefined || typeof v === 'string') throw new Error(`$(params.${array}[*]) is no array param`);
        return [...v];
      });

    const source = await context('tekton-source', {
      Dockerfile: [`FROM ${images.busybox}`, 'ARG MESSAGE', 'RUN echo "$MESSAGE" > /message', 'CMD ["cat", "/message"]', ''].join('\n'),
    });
    const results = await tempDir('tekton-results');
    const scripts = await tempDir('tekton-scripts');
    const mounts = ['-v', `${source}:${vars['workspaces.source.path'] ?? ''}`, '-v', `${dockerConfigDir}:${vars['workspaces.dockerconfig.path'] ?? ''}:ro`, '-v', `${results}:/tekton/results`, '-v', `${scripts}:/tekton/scripts:ro`];

    const [build, writeUrl] = task.spec.steps;
    expect(build?.image).toBe(EXECUTOR);
    // A step with args and no command runs its image's entrypoint; Tekton's steps run as root here (runAsUser: 0).
    const r = await podman.exec([...RUN_DEFAULTS, ...mounts, '--user', '0', '-w', resolveVar(build?.workingDir ?? ''), build?.image ?? '', ...resolveArgs(build?.args ?? [])]);
    expect(r.code, r.stderr).toBe(0);
    const digestResult = await readFile(join(results, 'IMAGE_DIGEST'), 'utf8');
    expect(digestResult).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digestResult).toBe(await registryDigest(image, CREDS));
    const config = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', '--creds', CREDS, `docker://${image}`])).stdout) as { Labels?: Record<string, string> };
    expect(config.Labels?.['org.example.built-by']).toBe('tekton');
    expect(await runBuilt(image, CREDS)).toBe('from a Tekton step\n');

    // A `script` step: Tekton writes the script to a file and runs it (its #! names the interpreter).
    expect(writeUrl?.image).toBe(DEBUG);
    await writeFile(join(scripts, 'write-url'), resolveVar(writeUrl?.script ?? ''));
    await chmod(join(scripts, 'write-url'), 0o755);
    const w = await podman.exec([...RUN_DEFAULTS, ...mounts, '--entrypoint', '/tekton/scripts/write-url', writeUrl?.image ?? '']);
    expect(w.code, w.stderr).toBe(0);
    expect(await readFile(join(results, 'IMAGE_URL'), 'utf8')).toBe(image);
  });

  it('GitHub Actions: the step\'s `docker run` line (docker being podman here) builds the checkout with the login\'s config.json and sets the digest output', async () => {
    const flow = workflow.parse(parseYaml(substitute(await example('github-actions.yml'), [[PLACEHOLDER_IMAGE, LOCAL_IMAGE]])));
    const step = Object.values(flow.jobs).flatMap((j) => j.steps).find((s) => s.name === 'Build and push with kiln');
    expect(step?.run).toContain('docker run --rm');
    const imageExpr = step?.env?.['IMAGE'] ?? '';
    expect(imageExpr).toBe('ghcr.io/${{ github.repository }}');
    // The expression GitHub evaluates, and the registry: a mixed-case repository, which the step lowers.
    const image = imageExpr.replace('${{ github.repository }}', 'Octo-Org/Hello-App').replace('ghcr.io', authReg.host);
    const sha = 'a'.repeat(40);

    const checkout = await context('github-workspace', {
      Dockerfile: [`FROM ${images.busybox}`, 'COPY hello.txt /hello.txt', 'CMD ["cat", "/hello.txt"]', ''].join('\n'),
      'hello.txt': 'built in GitHub Actions\n',
    });
    const home = await context('github-home', { '.docker/config.json': await readFile(join(dockerConfigDir, 'config.json'), 'utf8') });
    const output = join(work, 'github-output');
    await writeFile(output, '');
    // `docker`: podman with this test's storage, on the host network (the runner's docker would
    // publish to the registry's real address; here the registry is on loopback).
    const bin = await tempDir('github-bin');
    const globals = podman.globalArgs.map(shq).join(' ');
    await writeFile(join(bin, 'docker'), `#!/bin/sh\n[ "$1" = run ] || { echo "docker $1: not in this test" >&2; exit 99; }\nshift\nexec podman ${globals} run --network=host "$@"\n`);
    await chmod(join(bin, 'docker'), 0o755);

    let result: { code: number; stderr: string };
    try {
      // GitHub runs `run:` with `bash -e {0}`.
      await run('bash', ['-e', '-c', step?.run ?? ''], {
        env: { ...podman.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}`, HOME: home, GITHUB_WORKSPACE: checkout, GITHUB_SHA: sha, GITHUB_OUTPUT: output, IMAGE: image },
        maxBuffer: 16 << 20,
      });
      result = { code: 0, stderr: '' };
    } catch (err) {
      const e = err as { code?: number; stderr?: string; message: string };
      result = { code: e.code ?? -1, stderr: e.stderr ?? e.message };
    }
    expect(result.code, result.stderr).toBe(0);
    const ref = `${authReg.host}/octo-org/hello-app:${sha}`;
    expect(await readFile(output, 'utf8')).toBe(`digest=${await registryDigest(ref, CREDS)}\n`);
    expect(await runBuilt(ref, CREDS)).toBe('built in GitHub Actions\n');
  });

  describe('caches in the image', () => {
    it('a multi-stage build (COPY --from a builder stage) with --cache=true --cache-copy-layers=true --cache-repo, twice: the second takes every RUN and COPY from the cache and gives the same layers', async () => {
      const src = await context('multi-stage', {
        Dockerfile: [
          `FROM ${images.busybox} AS builder`,
          'RUN mkdir /out && echo "compiled in the builder stage" > /out/artifact',
          `FROM ${images.busybox}`,
          'COPY --from=builder /out/artifact /app/artifact',
          'RUN cat /app/artifact > /app/report && echo "checked in the final stage" >> /app/report',
          'CMD ["cat", "/app/report"]',
          '',
        ].join('\n'),
      });
      const cacheRepo = `${shared}/kiln-ci-${Date.now().toString(36)}/cache`;
      const build = (tag: string): Promise<PodmanResult> =>
        podman.exec([...RUN_DEFAULTS, '-v', `${src}:/workspace`, EXECUTOR, '--context', 'dir:///workspace', '--destination', `${shared}/kiln-ci/multi-stage:${tag}`, '--cache=true', '--cache-copy-layers=true', `--cache-repo=${cacheRepo}`]);
      const first = await build('1');
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toContain('No cached layer found for cmd RUN mkdir /out');
      expect(first.stderr).not.toContain('Using caching version of cmd');
      const second = await build('2');
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain('Using caching version of cmd: RUN mkdir /out && echo "compiled in the builder stage" > /out/artifact');
      expect(second.stderr).toContain('Using caching version of cmd: COPY --from=builder /out/artifact /app/artifact');
      expect(second.stderr).toContain('Using caching version of cmd: RUN cat /app/artifact > /app/report');
      expect(second.stderr).not.toContain('No cached layer found');
      const layers = async (tag: string): Promise<string[]> =>
        (JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${shared}/kiln-ci/multi-stage:${tag}`])).stdout) as { Layers: string[] }).Layers;
      // Without --cache-copy-layers the COPY would run again, and the /app it creates would get the
      // second build's time (as in kaniko): its layer would differ.
      const [one, two] = await Promise.all([layers('1'), layers('2')]);
      expect(one.length).toBeGreaterThan(1);
      expect(two).toEqual(one);
      expect(await runBuilt(`${shared}/kiln-ci/multi-stage:2`, undefined)).toBe('compiled in the builder stage\nchecked in the final stage\n');
    });

    it('the warmer fills a /cache volume; the executor with --cache-dir=/cache then builds FROM that image without fetching its layers', async () => {
      const base = `${loggedReg.host}/kiln-ci/warm-base:1`;
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${images.busybox}`, `docker://${base}`]);
      const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${base}`])).stdout) as { layers: { digest: string }[] };
      const digest = await registryDigest(base);
      const cache = await tempDir('warm-cache');

      const warm = await podman.exec([...RUN_DEFAULTS, '--entrypoint', '/kaniko/warmer', '-v', `${cache}:/cache`, EXECUTOR, '--cache-dir=/cache', `--image=${base}`]);
      expect(warm.code, warm.stderr).toBe(0);
      expect((await readdir(cache)).sort()).toEqual([digest, `${digest}.json`]);

      const src = await context('warm-build', { Dockerfile: [`FROM ${base}`, 'RUN echo "from the warmed base" > /warm', 'CMD ["cat", "/warm"]', ''].join('\n') });
      const mark = loggedReg.requests().length;
      const dest = `${shared}/kiln-ci/from-cache-dir:1`;
      const r = await podman.exec([...RUN_DEFAULTS, '-v', `${cache}:/cache`, '-v', `${src}:/workspace`, EXECUTOR, '--context', 'dir:///workspace', '--destination', dest, '--cache-dir=/cache']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`Found ${digest} in local cache`);
      await new Promise((res) => setTimeout(res, 200)); // the access log comes through a pipe
      const requests = loggedReg.requests().slice(mark);
      // The log is live (the build asked for the manifest, as kiln does to learn the digest) and has no layer GET.
      expect(requests.map((q) => `${q.method} ${q.path}`)).toContain('GET /v2/kiln-ci/warm-base/manifests/1');
      expect(requests.filter((q) => q.method === 'GET' && manifest.layers.some((l) => q.path.endsWith(l.digest)))).toEqual([]);
      // The cache dir is a volume: kiln neither emptied nor changed it.
      expect((await readdir(cache)).sort()).toEqual([digest, `${digest}.json`]);
      expect(await runBuilt(dest, undefined)).toBe('from the warmed base\n');
    });
  });
});
