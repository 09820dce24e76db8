// RUN --mount=type=ssh with --ssh, against BuildKit's behaviour: a real ssh-agent (openssh-client) on
// the host, and inside the sandbox a small static program that speaks the agent protocol (busybox has
// no Unix-socket client): it sends one request of the given type and prints the reply's type and body.
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeContext } from '../support/executor.js';
import { LIST, PROBE_C, PROBE_MOUNT, REMOVE_ALL, startAgent } from '../support/ssh-agent-probe.js';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

const run = promisify(execFile);
const images = inject('images');

describe('RUN --mount=type=ssh', () => {
  let dir: string;
  let agent: ChildProcess | undefined;
  let sock: string;
  let ctx: string;
  let b: LayoutBuild;
  let work: string;
  const comment = `kiln-test-key-${process.pid}`;
  const otherComment = `kiln-other-key-${process.pid}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-ssh-'));
    await chmod(dir, 0o755);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', join(dir, 'id')]);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', otherComment, '-f', join(dir, 'other')]);
    sock = join(dir, 'agent.sock');
    agent = await startAgent(sock);
    await run('ssh-add', ['-q', join(dir, 'id')], { env: { SSH_AUTH_SOCK: sock } });

    ctx = await writeContext({
      Dockerfile: [
        `FROM ${images.busybox}`,
        // The default id, at the default target; listing works, changing the agent is refused.
        `RUN ${PROBE_MOUNT} --mount=type=ssh /probe ${LIST} > /identities && /probe ${REMOVE_ALL} > /remove-all && /probe ${LIST} > /identities-after && echo "$SSH_AUTH_SOCK" > /sock-env && stat -c "%u:%g:%a %F" "$SSH_AUTH_SOCK" > /sock-stat`,
        'RUN echo "${SSH_AUTH_SOCK-unset}" > /no-mount-env && (test -e /run/buildkit && echo present || echo gone) > /no-mount-socket',
        // id= picks the agent (kiln's own, holding a key file); target= moves the socket.
        `RUN ${PROBE_MOUNT} --mount=type=ssh,id=other,target=/tmp/agent.sock,mode=0660 /probe ${LIST} > /other-identities && echo "$SSH_AUTH_SOCK" > /other-env && stat -c "%a" /tmp/agent.sock > /other-mode`,
        // An agent not given and not required is skipped; SSH_AUTH_SOCK still names the first ssh mount.
        'RUN --mount=type=ssh,id=absent --mount=type=ssh (test -e /run/buildkit/ssh_agent.0 && echo present || echo absent) > /absent && test -S /run/buildkit/ssh_agent.1 && echo "$SSH_AUTH_SOCK" > /absent-env',
        'USER app',
        `RUN ${PROBE_MOUNT} --mount=type=ssh,uid=1000,gid=1000 /probe ${LIST} > /tmp/app-identities`,
        // As in BuildKit, the socket is root's (0600) unless uid= says otherwise.
        `RUN ${PROBE_MOUNT} --mount=type=ssh sh -c '/probe ${LIST}; echo "rc=$?"' > /tmp/app-default 2>&1`,
        '',
      ].join('\n'),
    });
    await chmod(ctx, 0o755); // the non-root USER's RUN binds the probe from it
    await writeFile(join(dir, 'probe.c'), PROBE_C);
    await run('gcc', ['-static', '-O1', '-o', join(ctx, 'agent-probe'), join(dir, 'probe.c')]);
    work = await mkdtemp(join(tmpdir(), 'kiln-ssh-work-'));
    await chmod(work, 0o755);
    b = await buildToLayout({}, ['--ssh', `default=${sock}`, '--ssh', `other=${join(dir, 'other')}`, '--work-dir', work], { ctx });
  }, 60_000);

  afterAll(async () => {
    await b?.cleanup();
    agent?.kill();
    await rm(ctx, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('builds', () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
  });

  it('reaches the --ssh agent from inside the sandbox at /run/buildkit/ssh_agent.0', async () => {
    const ids = await b.file('identities');
    expect(ids.startsWith('type=12\n')).toBe(true); // SSH2_AGENT_IDENTITIES_ANSWER
    expect(ids).toContain(comment);
    expect(await b.file('sock-env')).toBe('/run/buildkit/ssh_agent.0\n');
    expect(await b.file('sock-stat')).toBe('0:0:600 socket\n');
  });

  it('relays a read-only agent: a RUN cannot remove its keys', async () => {
    expect(await b.file('remove-all')).toBe('type=5\n'); // SSH_AGENT_FAILURE
    expect(await b.file('identities-after')).toContain(comment);
    const { stdout } = await run('ssh-add', ['-l'], { env: { SSH_AUTH_SOCK: sock } });
    expect(stdout).toContain(comment);
  });

  it('selects the agent by id, at the given target and mode; key files get an agent of their own', async () => {
    const ids = await b.file('other-identities');
    expect(ids).toContain(otherComment);
    expect(ids).not.toContain(comment);
    expect(await b.file('other-env')).toBe('/tmp/agent.sock\n');
    expect(await b.file('other-mode')).toBe('660\n');
  });

  it('gives a RUN without the mount no SSH_AUTH_SOCK and no socket', async () => {
    expect(await b.file('no-mount-env')).toBe('unset\n');
    expect(await b.file('no-mount-socket')).toBe('gone\n');
  });

  it('skips an agent that was not given and not required', async () => {
    expect(await b.file('absent')).toBe('absent\n');
    expect(await b.file('absent-env')).toBe('/run/buildkit/ssh_agent.0\n');
  });

  it('lets a non-root USER use a socket it owns, and not root\'s', async () => {
    expect(await b.file('tmp/app-identities')).toContain(comment);
    expect(await b.file('tmp/app-default')).toMatch(/Permission denied[\s\S]*rc=2/);
  });

  it('keeps the socket and the directories made for it out of every layer', () => {
    const root = b.image?.rootfs ?? '/nonexistent';
    expect(existsSync(join(root, 'run'))).toBe(false);
    expect(existsSync(join(root, 'tmp/agent.sock'))).toBe(false);
    expect(existsSync(join(root, 'probe'))).toBe(false);
  });

  it('closes the per-RUN sockets and stops its own agent', async () => {
    expect(await readdir(join(work, 'run-mounts'))).toEqual([]);
    expect(existsSync(join(work, 'ssh-agents'))).toBe(false);
    const { stdout } = await run('ps', ['-eo', 'args']);
    expect(stdout).not.toContain(join(work, 'ssh-agents'));
  });

  it('fails a required agent that was not given, naming the line', async () => {
    const bad = await buildToLayout({ Dockerfile: `FROM ${images.busybox}\nRUN --mount=type=ssh,required=true true\n` });
    await bad.cleanup();
    expect(bad.code).toBe(1);
    const line = bad.stderr.split('\n').find((l) => l.includes('forwarded'));
    expect(line).toMatch(/Dockerfile:2 RUN --mount=type=ssh,required=true true: no SSH key "default" forwarded from the client/);
  });

  it('refuses an --ssh path that is neither a socket nor a key file before building', async () => {
    const bad = await buildToLayout({ Dockerfile: `FROM ${images.busybox}\nRUN true\n` }, ['--ssh', `default=${join(dir, 'missing.sock')}`]);
    await bad.cleanup();
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--ssh default=.*missing\.sock: cannot use/);
  });
});
