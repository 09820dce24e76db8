// RUN isolation in the executor image (issue 10), run by podman unprivileged as users run it: with the
// registry credentials at /kaniko/.docker/config.json, ~/.aws and a service-account token mounted as a
// Kubernetes pod mounts them, a RUN tries to read them, to overwrite /kaniko/executor and to leave a
// process behind. Under podman's default seccomp profile each RUN runs isolated by kiln-isolate; under
// a profile that blocks user namespaces as docker's default does, kiln falls back with one warning and
// refuses RUN --mount. What was built is read with umoci and skopeo on the host, never with kiln.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { readLayoutBuild, type LayoutBuild } from '../e2e/layout-build.js';
import { executorImage } from '../support/executor-image.js';
import { imageLayoutBuilder } from '../support/image-layout-build.js';
import { podmanAvailable, RUN_DEFAULTS, startPodman, type Podman } from '../support/podman.js';
import { LIST, PROBE_C, PROBE_MOUNT, REMOVE_ALL, startAgent } from '../support/ssh-agent-probe.js';

const run = promisify(execFile);

const CONFIG_SECRET = 'registry-password-5b1e0c';
const AWS_SECRET = 'aws-secret-key-93d7aa';
const TOKEN_SECRET = 'service-account-token-4f20b8';
const FLAG_SECRET = 'build-arg-secret-e61a07';


/**
 * podman's default seccomp profile changed as docker's default is: clone only without namespace
 * flags, clone3 ENOSYS (so the C library falls back to clone), unshare refused.
 */
async function profileWithoutUserNamespaces(dir: string): Promise<string> {
  const profile = JSON.parse(await readFile('/usr/share/containers/seccomp.json', 'utf8')) as { syscalls: { names: string[] }[] };
  const blocked = new Set(['clone', 'clone3', 'unshare']);
  profile.syscalls = profile.syscalls.map((s) => ({ ...s, names: s.names.filter((n) => !blocked.has(n)) })).filter((s) => s.names.length > 0);
  const NAMESPACE_FLAGS = 0x7e020000;
  profile.syscalls.push(
    { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] } as never,
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 } as never,
    { names: ['unshare'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 } as never,
  );
  const path = join(dir, 'seccomp-no-userns.json');
  await writeFile(path, JSON.stringify(profile));
  return path;
}

const available = await podmanAvailable();

describe.skipIf(!available)(`RUN isolation in the executor image${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 300_000 }, () => {
  const images = inject('images');
  let podman: Podman;
  let executorId = '';
  let debugId = '';
  let work: string;
  let credentialMounts: string[];
  let noUserns: string[];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-isolation-'));
    podman = await startPodman();
    const [executor, debug] = await Promise.all([
      executorImage(inject('workDir'), inject('registry'), 'executor'),
      executorImage(inject('workDir'), inject('registry'), 'debug'),
    ]);
    executorId = await podman.load(executor.tarPath);
    debugId = await podman.load(debug.tarPath);
    // Mounted as users mount them: a config.json from a Secret, ~/.aws from another, the pod's token.
    const config = join(work, 'config.json');
    // The RUN would see the login as config.json holds it: base64 of user:password.
    await writeFile(config, JSON.stringify({ auths: { 'registry.example': { auth: Buffer.from(`user:${CONFIG_SECRET}`).toString('base64') } } }));
    const aws = await mkdtemp(join(work, 'aws-'));
    await writeFile(join(aws, 'credentials'), `[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = ${AWS_SECRET}\n`);
    const sa = await mkdtemp(join(work, 'sa-'));
    await writeFile(join(sa, 'token'), TOKEN_SECRET);
    credentialMounts = [
      '-v', `${config}:/kaniko/.docker/config.json:ro`,
      '-v', `${aws}:/root/.aws:ro`,
      '-v', `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
    ];
    noUserns = ['--security-opt', `seccomp=${await profileWithoutUserNamespaces(work)}`];
  }, 900_000);

  afterAll(async () => {
    await podman?.cleanup();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  // What a hostile Dockerfile tries; each RUN writes what it saw into the image.
  const HOSTILE = [
    `FROM ${images.busybox}`,
    'RUN (cat /kaniko/.docker/config.json 2>&1; cat /root/.aws/credentials 2>&1; cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>&1; true) > /seen-credentials',
    'RUN (ls -A /kaniko 2>&1; true) > /seen-kaniko',
    'RUN (echo evil > /kaniko/executor) 2>/dev/null; echo $? > /write-status',
    // kiln's environment (KILN_EXECUTOR_IMAGE=1 is in it, never in a RUN's own) and command line: the
    // loader's arguments (/kaniko/executor starts node through it), then node's title, `executor` and
    // the flags without the values that may be secrets.
    "RUN (for p in $(ps -o pid,args | awk '/(^| )executor --/ {print $1}'); do cat /proc/$p/environ; done; true) > /seen-environ 2>&1",
    "RUN (for p in $(ps -o pid,args | awk '/(^| )executor --/ {print $1}'); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done; true) > /seen-cmdline 2>&1",
    // The shell's own pid as /proc shows it (`read` is a builtin: /proc/self is the shell).
    'RUN read pid _ < /proc/self/stat; echo "$$ $pid $(cat /proc/$$/comm)" > /pids',
    'RUN (sleep 600 >/dev/null 2>&1 &) ; echo started > /started',
    'RUN (ps -o args | grep -c "^sleep 600" ; true) > /left-behind',
  ];

  /**
   * The debug image's shell runs the executor the way GitLab CI does, and checks /kaniko/executor's
   * bytes before and after: a RUN must not have changed kiln itself.
   */
  async function hostileBuild(runOpts: readonly string[], args: readonly string[] = []): Promise<LayoutBuild & { executorUnchanged: boolean }> {
    const ctx = await mkdtemp(join(work, 'ctx-'));
    await writeFile(join(ctx, 'Dockerfile'), [...HOSTILE, ''].join('\n'));
    const out = await mkdtemp(join(work, 'out-'));
    const script = [
      'before=$(sha256sum /kaniko/executor)',
      '/kaniko/executor "$@"; rc=$?',
      '[ "$before" = "$(sha256sum /kaniko/executor)" ] && echo EXECUTOR-UNCHANGED',
      'exit $rc',
    ].join('\n');
    const r = await podman.exec([
      ...RUN_DEFAULTS, ...runOpts, ...credentialMounts,
      '-v', `${ctx}:/workspace`, '-v', `${out}:/out`,
      '--entrypoint', '/busybox/sh', debugId, '-c', script, 'sh',
      '--context', 'dir:///workspace', '--no-push', '--insecure-pull', '--oci-layout-path', '/out/layout',
      // A value meant for no RUN of this Dockerfile (not declared): only kiln's command line holds it.
      '--build-arg', `UNUSED_TOKEN=${FLAG_SECRET}`, ...args,
    ]);
    const b = await readLayoutBuild(r, { ctx, out, layout: join(out, 'layout'), ownsCtx: true });
    return { ...b, executorUnchanged: r.stdout.includes('EXECUTOR-UNCHANGED') };
  }

  describe("under podman's default profile, every RUN is isolated", () => {
    let b: LayoutBuild & { executorUnchanged: boolean };
    beforeAll(async () => {
      b = await hostileBuild([]);
    });
    afterAll(async () => b?.cleanup());

    it('builds without a warning', () => {
      expect(b.code, b.stderr).toBe(0);
      expect(b.stderr).not.toMatch(/^WARN.*isolation/m);
    });

    it('cannot read the registry credentials, ~/.aws or the service-account token', async () => {
      const seen = await b.file('seen-credentials');
      expect(seen).not.toContain(Buffer.from(`user:${CONFIG_SECRET}`).toString('base64'));
      expect(seen).not.toContain(AWS_SECRET);
      expect(seen).not.toContain(TOKEN_SECRET);
      expect(seen.match(/No such file or directory/g)).toHaveLength(3);
      for (const secret of [Buffer.from(`user:${CONFIG_SECRET}`).toString('base64'), AWS_SECRET, TOKEN_SECRET]) expect(await b.blobsContain(secret)).toBe(false);
    });

    it('sees an empty /kaniko and cannot write kiln itself', async () => {
      expect(await b.file('seen-kaniko')).toBe('');
      expect(await b.file('write-status')).not.toBe('0\n');
      expect(b.executorUnchanged).toBe(true);
    });

    it("cannot read kiln's environment through /proc", async () => {
      // kiln was found, and its environ refused (the RUN's user namespace holds no CAP_SYS_PTRACE over it).
      expect(await b.file('seen-environ')).toMatch(/Permission denied/);
      expect(await b.file('seen-environ')).not.toContain('KILN_EXECUTOR_IMAGE=1');
    });

    it('leaves no process behind when the RUN ends', async () => {
      expect(await b.file('started')).toBe('started\n');
      expect(await b.file('left-behind')).toBe('0\n');
    });

    it("sees kiln's command line without the values that may be secrets", async () => {
      const seen = await b.file('seen-cmdline');
      expect(seen).toMatch(/(^| )executor .*--build-arg UNUSED_TOKEN=\*\*\*/m);
      expect(seen).not.toContain(FLAG_SECRET);
    });

    it('where /proc cannot be remounted (podman masks it), $$ is the RUN\'s own /proc entry, as in kaniko', async () => {
      const [shell, proc, comm] = (await b.file('pids')).trim().split(' ');
      expect(Number(shell)).toBeGreaterThan(2);
      expect(proc).toBe(shell);
      expect(comm).toBe('sh');
    });
  });

  it("a RUN mount's stub under podman's /run leaves /run out of the layer; a RUN writing there records it", async () => {
    const files = {
      Dockerfile: [
        `FROM ${images.busybox}`,
        'RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-len',
        'RUN --mount=type=tmpfs,target=/run/scratch echo x > /run/scratch/x && echo tmpfs > /tmpfs-used',
        'RUN --mount=type=secret,id=tok mkdir /run/foo && echo bar > /run/foo/bar',
        '',
      ].join('\n'),
      tok: 'stub-secret-value',
    };
    const r = await imageLayoutBuilder(podman, () => executorId)(files, ['--secret', 'id=tok,src=/workspace/tok']);
    try {
      expect(r.code, r.stderr).toBe(0);
      expect(await r.file('secret-len')).toBe('17\n');
      const layers = await r.layerEntries();
      // The base's layer, then one per RUN.
      expect(layers.slice(1)).toEqual([['secret-len'], ['tmpfs-used'], ['run/', 'run/foo/', 'run/foo/bar']]);
    } finally {
      await r.cleanup();
    }
  });

  describe('under a profile that blocks user namespaces, kiln falls back', () => {
    let b: LayoutBuild & { executorUnchanged: boolean };
    beforeAll(async () => {
      b = await hostileBuild(noUserns);
    });
    afterAll(async () => b?.cleanup());

    it('with one warning that says what a RUN can reach, and builds', () => {
      expect(b.code, b.stderr).toBe(0);
      const warnings = b.stderr.split('\n').filter((l) => /^WARN.*RUN isolation is not available/.test(l));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('/kaniko');
      expect(warnings[0]).toContain('--run-isolation=off');
    });

    it('as kaniko does: the RUN reads what is mounted in the container (the exposure the warning names)', async () => {
      const seen = await b.file('seen-credentials');
      expect(seen).toContain(Buffer.from(`user:${CONFIG_SECRET}`).toString('base64'));
      expect(seen).toContain(AWS_SECRET);
      expect(seen).toContain(TOKEN_SECRET);
      expect(await b.file('seen-environ')).toContain('KILN_EXECUTOR_IMAGE=1');
      // Not kiln's flags' secret values: its command line is its title (src/cli/process-title.ts).
      expect(await b.file('seen-cmdline')).toMatch(/(^| )executor .*--build-arg UNUSED_TOKEN=\*\*\*/m);
      expect(await b.file('seen-cmdline')).not.toContain(FLAG_SECRET);
    });

    it('refuses RUN --mount with one line naming the line and why', async () => {
      const r = await imageLayoutBuilder(podman, () => executorId, noUserns)({ Dockerfile: `FROM ${images.busybox}\nRUN echo ok\nRUN --mount=type=tmpfs,target=/t true\n` });
      await r.cleanup();
      expect(r.code).toBe(1);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('error building image: '));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(/Dockerfile:3 RUN --mount=type=tmpfs,target=\/t true: RUN --mount needs RUN isolation, which is not available here: cannot create a user namespace/);
      expect(r.image).toBeUndefined();
    });

    it('--run-isolation=required fails before any RUN runs, and writes nothing', async () => {
      const r = await imageLayoutBuilder(podman, () => executorId, noUserns)({ Dockerfile: `FROM ${images.busybox}\nRUN echo ran-$((40+2))\n` }, ['--run-isolation=required']);
      await r.cleanup();
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).not.toContain('ran-42');
      expect(r.stderr).toMatch(/^error building image: --run-isolation=required, but this container does not allow RUN isolation: cannot create a user namespace/m);
      expect(r.image).toBeUndefined();
    });
  });

  it('builds the same image isolated, not isolated (--run-isolation=off) and fallen back: owners, modes, setuid, hardlinks, symlinks', async () => {
    const files = {
      Dockerfile: [
        `FROM ${images.busybox}`,
        'RUN mkdir -p /app/bin && echo owned > /app/owned && chown 1000:1000 /app/owned && chmod 640 /app/owned',
        'RUN cp /bin/busybox /app/bin/tool && chmod 4755 /app/bin/tool && ln /app/bin/tool /app/bin/hard && ln -s tool /app/bin/soft',
        'RUN rm /etc/group && mkdir -m 1777 /app/tmp && touch -d "2001-02-03 04:05:06" /app/tmp',
        'USER 1000:1000',
        'RUN echo "$(id -u):$(id -g)" > /tmp/who',
        '',
      ].join('\n'),
    };
    const args = ['--reproducible'];
    const digests: string[] = [];
    for (const [runOpts, extra] of [[[], []], [[], ['--run-isolation=off']], [noUserns, []]] as const) {
      const r = await imageLayoutBuilder(podman, () => executorId, runOpts)(files, [...args, ...extra]);
      try {
        expect(r.code, r.stderr).toBe(0);
        expect(await r.file('tmp/who')).toBe('1000:1000\n');
        const index = JSON.parse(await readFile(join(r.layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
        digests.push(index.manifests[0]?.digest ?? '');
      } finally {
        await r.cleanup();
      }
    }
    expect(digests[0]).toMatch(/^sha256:/);
    expect(new Set(digests).size).toBe(1);
  });

  it('RUN --mount=type=ssh reaches the --ssh agent mounted into the container, read-only as in sandbox mode', async () => {
    const dir = await mkdtemp(join(work, 'ssh-'));
    await chmod(dir, 0o755);
    const comment = `kiln-image-key-${process.pid}`;
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', join(dir, 'id')]);
    const sock = join(dir, 'agent.sock');
    const agent = await startAgent(sock);
    try {
      await run('ssh-add', ['-q', join(dir, 'id')], { env: { SSH_AUTH_SOCK: sock } });
      const ctx = await mkdtemp(join(dir, 'ctx-'));
      await writeFile(join(ctx, 'Dockerfile'), `FROM ${images.busybox}\nRUN ${PROBE_MOUNT} --mount=type=ssh /probe ${LIST} > /identities && /probe ${REMOVE_ALL} > /remove-all\n`);
      await writeFile(join(dir, 'probe.c'), PROBE_C);
      await run('gcc', ['-static', '-O1', '-o', join(ctx, 'agent-probe'), join(dir, 'probe.c')]);
      const r = await imageLayoutBuilder(podman, () => executorId)({}, ['--ssh', `default=${sock}`], { ctx });
      try {
        expect(r.code, r.stderr).toBe(0);
        const ids = await r.file('identities');
        expect(ids.startsWith('type=12\n')).toBe(true); // SSH2_AGENT_IDENTITIES_ANSWER
        expect(ids).toContain(comment);
        expect(await r.file('remove-all')).toBe('type=5\n'); // SSH_AGENT_FAILURE: the relay is read-only
      } finally {
        await r.cleanup();
      }
    } finally {
      agent.kill();
    }
  });

  it("an isolated RUN gets the user's supplementary groups from /etc/group, as BuildKit gives them", async () => {
    const files = { Dockerfile: [`FROM ${images.busybox}`, 'RUN echo extra:x:2000:app >> /etc/group', 'USER app', 'RUN id -G > /tmp/groups', ''].join('\n') };
    const r = await imageLayoutBuilder(podman, () => executorId)(files);
    try {
      expect(r.code, r.stderr).toBe(0);
      expect((await r.file('tmp/groups')).trim().split(' ')).toContain('2000');
    } finally {
      await r.cleanup();
    }
  });
});
