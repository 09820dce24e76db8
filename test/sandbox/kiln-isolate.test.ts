// native/kiln-isolate.c on this host (as root), the helper every isolated container-mode RUN goes
// through: what it hides, mounts, drops and kills. The executor-image tests run it in podman.
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolateArgv, isolateHelperPath, plainArgv, probeIsolation } from '../../src/sandbox/isolated-run.js';

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly status: string;
}

const helper = isolateHelperPath();
const isRoot = process.getuid?.() === 0;

/**
 * Runs the helper where the kernel refuses it a /proc of its own, as under podman and docker: in a
 * mount namespace whose /proc has a file masked (podman masks /proc/kcore, /proc/keys, ...) and no
 * other proc mount (another one, fully visible, would let a fresh /proc through).
 */
const MASKED_PROC = [
  'unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c',
  'for m in $(findmnt -rn -t proc -o TARGET); do [ "$m" = /proc ] || umount -l "$m"; done; mount --bind /dev/null /proc/uptime && exec "$@"', 'sh',
];

function isolate(args: readonly string[], onSpawn?: (pid: number) => void, wrap: readonly string[] = []): Promise<Result> {
  return new Promise((resolve, reject) => {
    const argv = [...wrap, helper ?? 'kiln-isolate', '--status-fd', '3', ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let status = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdio[3]?.on('data', (b: Buffer) => (status += b.toString()));
    child.once('error', reject);
    child.once('spawn', () => onSpawn?.(child.pid ?? 0));
    child.once('close', (code) => resolve({ code, stdout, stderr, status }));
  });
}

const sh = (script: string): string[] => ['--', '/bin/sh', '-c', script];

describe.skipIf(helper === undefined || !isRoot)('kiln-isolate', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-isolate-'));
    await mkdir(join(dir, 'kiln/cache'), { recursive: true });
    await writeFile(join(dir, 'kiln/config.json'), 'secret-config');
    await writeFile(join(dir, 'kiln/cache/entry'), 'cached');
    await writeFile(join(dir, 'token'), 'secret-token');
    await mkdir(join(dir, 'target'));
    await writeFile(join(dir, 'target/script'), '');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('covers a hidden dir with an empty read-only tmpfs and a hidden file with /dev/null', async () => {
    const r = await isolate(['--hide', join(dir, 'kiln'), '--hide', join(dir, 'token'), ...sh(`ls -A ${dir}/kiln; cat ${dir}/token; echo x > ${dir}/kiln/new || echo refused`)]);
    expect(r.code, r.stderr + r.status).toBe(0);
    expect(r.stdout).toBe('refused\n');
    expect(r.stderr).toMatch(/Read-only file system/);
    // Nothing of it happened outside the RUN's own mount namespace.
    expect(await readFile(join(dir, 'kiln/config.json'), 'utf8')).toBe('secret-config');
  });

  it('binds sources opened before the hiding, read-only when asked, and makes tmpfs mounts 1777', async () => {
    const r = await isolate([
      '--hide', join(dir, 'kiln'),
      '--bind', join(dir, 'kiln/cache'), join(dir, 'kiln/mnt/cache'),
      '--ro-bind', join(dir, 'token'), join(dir, 'target/script'),
      '--tmpfs', join(dir, 'target/tmp'), String(1 << 20),
      ...sh(`cat ${dir}/kiln/mnt/cache/entry; echo; cat ${dir}/target/script; echo; (echo x > ${dir}/target/script) 2>/dev/null || echo ro; stat -c %a ${dir}/target/tmp; df -k ${dir}/target/tmp | tail -1 | awk '{print $2}'`),
    ]);
    expect(r.code, r.stderr + r.status).toBe(0);
    expect(r.stdout).toBe('cached\nsecret-token\nro\n1777\n1024\n');
  });

  it('passes the exit status through, 128+N for a signal', async () => {
    expect((await isolate(sh('exit 42'))).code).toBe(42);
    expect((await isolate(sh('kill -9 $$'))).code).toBe(137);
  });

  it('reports a setup failure on the status fd with 125, and a missing command too', async () => {
    const bad = await isolate(['--bind', join(dir, 'missing'), join(dir, 'target/x'), ...sh('true')]);
    expect(bad.code).toBe(125);
    expect(bad.status).toMatch(/^kiln-isolate: mount source .*\/missing: No such file or directory\n$/);
    const none = await isolate(['--', join(dir, 'no-such-command')]);
    expect(none.code).toBe(125);
    expect(none.status).toMatch(/cannot run .*no-such-command: No such file or directory/);
  });

  it('kills what the command left running when it ends', async () => {
    const marker = `${Date.now() % 100000}.123`;
    const r = await isolate(sh(`sleep ${marker} >/dev/null 2>&1 & echo started`));
    expect(r.stdout).toBe('started\n');
    expect(() => execFileSync('pgrep', ['-f', `sleep ${marker}`])).toThrow();
  });

  it('stops the whole tree when it is sent SIGTERM', async () => {
    const marker = `${Date.now() % 100000}.456`;
    const r = await isolate(sh(`sleep ${marker} & sleep ${marker}`), (pid) => setTimeout(() => process.kill(pid, 'SIGTERM'), 300));
    expect(r.code).toBe(137);
    expect(() => execFileSync('pgrep', ['-f', `sleep ${marker}`])).toThrow();
  });

  it("runs root without CAP_SYS_ADMIN in its bounding set, a user with none, each with the given groups and nothing of kiln's", async () => {
    const root = await isolate(sh('grep -E "^Cap(Bnd|Eff):" /proc/self/status; id -G'));
    const bnd = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(root.stdout)?.[1] ?? '0'}`);
    expect(bnd & (1n << 21n)).toBe(0n); // CAP_SYS_ADMIN
    expect(bnd & (1n << 0n)).toBe(1n); // CAP_CHOWN kept
    expect(root.stdout.trim().split('\n').at(-1)).toBe('0');
    const user = await isolate(['--uid', '1000', '--gid', '1000', '--groups', '1000,27,33', ...sh('grep "^CapEff:" /proc/self/status; id -u; id -G')]);
    expect(user.stdout).toBe('CapEff:\t0000000000000000\n1000\n1000 27 33\n');
  });

  it('--plain (not isolated): sets the groups, gid, uid and directory in place, nothing else', async () => {
    const ns = execFileSync('readlink', ['/proc/self/ns/mnt', '/proc/self/ns/user', '/proc/self/ns/pid']).toString();
    const argv = plainArgv({
      argv: ['/bin/sh', '-c', 'pwd; id -u; id -g; id -G; grep "^CapEff:" /proc/self/status; readlink /proc/self/ns/mnt /proc/self/ns/user /proc/self/ns/pid'],
      env: [],
      workdir: '/tmp',
      user: { uid: 1000, gid: 1000, groups: [1000, 2000, 27] },
      stdout: process.stdout,
      stderr: process.stderr,
      network: 'default',
    });
    const r = await isolate(argv.slice(2));
    expect(r.code, r.stderr + r.status).toBe(0);
    // The command is this process (exec in place) in kiln's own namespaces; the kernel sorts the groups.
    expect(r.stdout).toBe(`/tmp\n1000\n1000\n1000 27 2000\nCapEff:\t0000000000000000\n${ns}`);
    // Root keeps kiln's capabilities, as a kaniko RUN does; it gets exactly the groups given.
    const root = await isolate(['--plain', '--uid', '0', '--gid', '0', '--groups', '0,10', ...sh('id -G; grep "^CapBnd:" /proc/self/status')]);
    expect(root.stdout).toBe(`0 10\n${execFileSync('grep', ['^CapBnd:', '/proc/self/status']).toString()}`);
    const bad = await isolate(['--plain', '--cwd', join(dir, 'missing'), ...sh('true')]);
    expect([bad.code, bad.status.trim()]).toEqual([125, `kiln-isolate: cannot enter the working directory ${join(dir, 'missing')}: No such file or directory`]);
    expect((await isolate(['--plain', '--hide', join(dir, 'kiln'), ...sh('true')])).status).toMatch(/--plain takes no/);
  });

  it('gives --net-none only a loopback that is up', async () => {
    const r = await isolate(['--net-none', ...sh('grep -c : /proc/net/dev; cat /sys/class/net/lo/operstate 2>/dev/null || ip link show lo 2>/dev/null | head -1')]);
    expect(r.code, r.stderr + r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('1');
  });

  it('probes with the paths a build hides, and runs what isolateArgv makes of a RunSpec', async () => {
    expect(await probeIsolation(helper ?? '', [join(dir, 'kiln')])).toEqual({ ok: true });
    const argv = isolateArgv(
      { argv: ['/bin/sh', '-c', `pwd; id -u; cat ${join(dir, 'kiln/mnt/in/entry')}`], env: [], workdir: '/tmp', user: { uid: 0, gid: 0 }, stdout: process.stdout, stderr: process.stderr, network: 'default' },
      [join(dir, 'kiln')],
      [{ kind: 'bind', source: join(dir, 'kiln/cache'), target: join(dir, 'kiln/mnt/in'), readOnly: true }],
    );
    const r = await isolate(argv.slice(2));
    expect(r.stdout).toBe('/tmp\n0\ncached');
  });

  // `read` is the shell's own: /proc/self is the shell, so its first field is the shell's pid there.
  const PIDS = 'read pid _ < /proc/self/stat; echo "$$ $pid"';

  it('runs the command as PID 2 of its own PID namespace, with a /proc of it, where one can be mounted', async () => {
    const r = await isolate(sh(PIDS));
    expect(r.code, r.stderr + r.status).toBe(0);
    expect(r.stdout).toBe('2 2\n');
  });

  describe('where the kernel refuses a /proc of its own', () => {
    it('runs without a PID namespace, so that $$ is the /proc entry of the RUN as in kaniko', async () => {
      const r = await isolate(sh(`${PIDS}; cat /proc/$$/comm`), undefined, MASKED_PROC);
      expect(r.code, r.stderr + r.status).toBe(0);
      const [shell, proc] = (r.stdout.split('\n')[0] ?? '').split(' ');
      expect(Number(shell)).toBeGreaterThan(2);
      expect(proc).toBe(shell);
      expect(r.stdout.split('\n')[1]).toBe('sh');
    });

    it('still kills what the command left running when it ends', async () => {
      const marker = `${Date.now() % 100000}.789`;
      const r = await isolate(sh(`(setsid sleep ${marker} >/dev/null 2>&1 &); sleep ${marker}1 >/dev/null 2>&1 & echo started`), undefined, MASKED_PROC);
      expect(r.stdout).toBe('started\n');
      expect(() => execFileSync('pgrep', ['-f', `sleep ${marker}`])).toThrow();
    });

    it('kills the tree when the command kills the helper above it, and when it is sent SIGTERM', async () => {
      const marker = `${Date.now() % 100000}.321`;
      const killed = await isolate(sh(`sleep ${marker} >/dev/null 2>&1 & kill -9 $PPID; sleep ${marker}`), undefined, MASKED_PROC);
      expect(killed.code).toBe(137);
      expect(() => execFileSync('pgrep', ['-f', `sleep ${marker}`])).toThrow();
      const term = await isolate(sh(`sleep ${marker} & sleep ${marker}`), (pid) => setTimeout(() => process.kill(pid, 'SIGTERM'), 300), MASKED_PROC);
      expect(term.code).toBe(137);
      expect(() => execFileSync('pgrep', ['-f', `sleep ${marker}`])).toThrow();
    });

    it('drops the same capabilities and sets the same identity', async () => {
      const root = await isolate(sh('grep "^CapBnd:" /proc/self/status'), undefined, MASKED_PROC);
      const bnd = BigInt(`0x${/CapBnd:\s+([0-9a-f]+)/.exec(root.stdout)?.[1] ?? '0'}`);
      expect(bnd & (1n << 21n)).toBe(0n); // CAP_SYS_ADMIN
      expect(bnd & (1n << 0n)).toBe(1n); // CAP_CHOWN kept
      const user = await isolate(['--uid', '1000', '--gid', '1000', '--groups', '1000,27', ...sh('grep "^CapEff:" /proc/self/status; id -u; id -G')], undefined, MASKED_PROC);
      expect(user.stdout).toBe('CapEff:\t0000000000000000\n1000\n1000 27\n');
    });

    it('hides and mounts as elsewhere, and probes fine', async () => {
      const r = await isolate(['--hide', join(dir, 'kiln'), '--tmpfs', join(dir, 'target/t'), '0', ...sh(`ls -A ${dir}/kiln; stat -c %a ${dir}/target/t`)], undefined, MASKED_PROC);
      expect(r.code, r.stderr + r.status).toBe(0);
      expect(r.stdout).toBe('1777\n');
      const probe = await isolate(['--probe', '--hide', join(dir, 'kiln')], undefined, MASKED_PROC);
      expect(probe.code, probe.status).toBe(0);
    });
  });
});
