// A peer that accepts and then never answers (a hung proxy, a half-dead load balancer) must fail the
// build in bounded time, with one line naming the host and what kiln waited for, after the retries
// the retry flags ask for, and with nothing pushed. Small --connect-timeout/--idle-timeout values keep
// these quick; the bound asserted is only "fails instead of hanging".
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EXECUTOR, executor, tagExists, writeContext } from '../support/executor.js';
import { startSilentServer, startStallingServer, type SilentServer, type StallingServer } from '../support/stalling-servers.js';

const WAITS = ['--connect-timeout', '300ms', '--idle-timeout', '500ms'];

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: '));
}

describe('bounded waits', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dirs: string[] = [];
  let silent: SilentServer;
  /** A registry whose manifest response sends its headers and the first bytes, then stalls. */
  let stallingBody: StallingServer;
  /** A registry whose token realm is the silent server. */
  let silentRealm: StallingServer;
  /** A web server for ADD whose file stalls after its headers. */
  let stallingFile: StallingServer;
  /** A git smart-http server that reads the request and never answers it. */
  let silentGit: StallingServer;

  beforeAll(async () => {
    silent = await startSilentServer();
    stallingBody = await startStallingServer((req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Content-Length': '4000' });
      res.write('{"schemaVersion":2,');
    });
    silentRealm = await startStallingServer((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${silent.host}/token",service="test"` }).end('{}');
    });
    stallingFile = await startStallingServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '100000' });
      res.write(Buffer.alloc(1000, 'x'));
    });
    silentGit = await startStallingServer(() => undefined);
  });
  afterAll(async () => {
    await Promise.all([silent.stop(), stallingBody.stop(), silentRealm.stop(), stallingFile.stop(), silentGit.stop()]);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  const build = async (dockerfile: string, dest: string, extra: string[] = []) => {
    const ctx = await writeContext({ Dockerfile: dockerfile });
    dirs.push(ctx);
    return executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', ...WAITS, ...extra]);
  };

  it('a registry that accepts and never answers fails the FROM, retried, naming the host', async () => {
    const dest = `${registry}/e2e/waits-silent:1`;
    const before = silent.connections();
    const r = await build(`FROM ${silent.host}/x/y:1\n`, dest, ['--image-download-retry', '1']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(silent.host);
    // https first: the TLS handshake never completes, which is what the line reports.
    expect(lines[0]).toMatch(/waited for TCP connect and TLS handshake|waited for response headers/);
    // Two attempts (one retry), each trying https and then plain http.
    expect(silent.connections() - before).toBeGreaterThanOrEqual(4);
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('a manifest body that stalls after its headers fails with the idle wait named', async () => {
    const dest = `${registry}/e2e/waits-body:1`;
    const r = await build(`FROM ${stallingBody.host}/x/y:1\n`, dest, ['--image-download-retry', '1']);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(stallingBody.host);
    expect(lines[0]).toContain('waited for the rest of the response body; --idle-timeout');
    // Retried: two GETs of the manifest.
    expect(stallingBody.requests.filter((q) => q.includes('/manifests/'))).toHaveLength(2);
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('a token server that never answers fails with its host named', async () => {
    const dest = `${registry}/e2e/waits-token:1`;
    const r = await build(`FROM ${silentRealm.host}/x/y:1\n`, dest);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`no response from ${silent.host}`);
    expect(lines[0]).toContain('waited for response headers');
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('an ADD URL whose body stalls fails the ADD line', async () => {
    const dest = `${registry}/e2e/waits-add:1`;
    const r = await build(`FROM ${images.busybox}\nADD http://${stallingFile.host}/f.bin /f.bin\n`, dest);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('ADD http://');
    expect(lines[0]).toContain(`no data from ${stallingFile.host}`);
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('an https context on a host that never answers fails naming it', async () => {
    const r = await executor(['--context', `https://${silent.host}/ctx.tar.gz`, '--no-push', ...WAITS]);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`no connection to ${silent.host}`);
  }, 60_000);

  it('a destination that never answers fails the push naming the destination', async () => {
    const dest = `${silent.host}/x/pushed:1`;
    const ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nENV A=1\n` });
    dirs.push(ctx);
    const r = await executor(['--context', ctx, '--destination', dest, '--insecure', '--insecure-pull', '--skip-push-permission-check', ...WAITS]);
    expect(r.code).toBe(1);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^error building image: failed to push to destination ${dest.replace(/\./g, '\\.')}: registry ${silent.host.replace(/\./g, '\\.')}: `));
  }, 60_000);

  it('a bad duration is refused before anything runs', async () => {
    const r = await executor(['--context', '/nonexistent', '--no-push', '--idle-timeout', 'soon']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid --idle-timeout "soon"');
  });

  // git has no connect timeout of its own; the idle bound goes to curl as http.lowSpeedTime.
  it('a git context whose server never answers fails with the idle wait named', async () => {
    const started = Date.now();
    const r = await executor(['--context', `git://${silentGit.host}/repo.git`, '--no-push', '--idle-timeout', '2s'], { env: { GIT_PULL_METHOD: 'http' } });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`git clone -- http://${silentGit.host}/repo.git`);
    expect(lines[0]).toMatch(/Operation too slow\. Less than 1 bytes\/sec transferred the last 2 seconds \(--idle-timeout\)$/);
  }, 60_000);

  it('an ADD of a git URL whose server never answers fails the ADD line with the idle wait named', async () => {
    const dest = `${registry}/e2e/waits-add-git:1`;
    const started = Date.now();
    const r = await build(`FROM ${images.busybox}\nADD http://${silentGit.host}/repo.git /src/\n`, dest, ['--idle-timeout', '2s']);
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    const lines = errorLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`ADD http://${silentGit.host}/repo.git`);
    expect(lines[0]).toMatch(/Operation too slow.*\(--idle-timeout\)$/);
    expect(await tagExists(dest)).toBe(false);
  }, 60_000);

  it('the warmer takes --connect-timeout and --idle-timeout: a registry that never answers fails it in bounded time', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'kiln-warm-waits-'));
    dirs.push(cache);
    const started = Date.now();
    const r = await new Promise<{ code: number; stderr: string }>((done, fail) => {
      const child = spawn(process.execPath, [EXECUTOR.replace(/executor\.js$/, 'warmer.js'), '--cache-dir', cache, '--image', `${silent.host}/x/y:1`, '--insecure-pull', ...WAITS], {
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root', DOCKER_CONFIG: '/nonexistent' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.once('error', fail);
      child.once('close', (code) => done({ code: code ?? -1, stderr }));
    });
    // The silent server holds each attempt for the whole wait: seconds with these flags, 30 s by default.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(silent.host);
    expect(r.stderr).toMatch(/waited for TCP connect and TLS handshake|waited for response headers/);
    expect(r.stderr).toContain('Failed warming cache: Failed to warm any of the given images');
    const bad = await warmerStderr('--connect-timeout', 'soon');
    expect(bad).toContain('invalid --connect-timeout "soon"');
  }, 60_000);
});

/** The warmer's stderr for one bad flag value (it fails before doing anything). */
async function warmerStderr(flag: string, value: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [EXECUTOR.replace(/executor\.js$/, 'warmer.js'), '--image', 'x', flag, value], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('close', () => done(stderr));
  });
}
