// ADD <git URL> after the Dockerfile reference ("Adding files from a Git repository") and BuildKit: a
// repository served over git's dumb HTTP protocol by a tiny loopback server (no network), added at its
// HEAD, a branch, an annotated tag, a commit (full and abbreviated), with `:subdir` and the query form,
// with and without `--keep-git-dir`, with --chown/--chmod, and from a repository that wants the
// GIT_AUTH_TOKEN secret. Each result is read back with skopeo + umoci.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readFile, rm, writeFile, mkdir, chmod } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildToLayout, type LayoutBuild } from './layout-build.js';

const run = promisify(execFile);
const images = inject('images');
const TOKEN = 'tok-3f9a1c7e55d2';

/** Serves the files under `root` (all git's dumb HTTP protocol needs); `/private/` wants the token. */
function staticServer(root: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    if (url.startsWith('/private/') && req.headers.authorization !== `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    readFile(join(root, normalize(url))).then(
      (body) => res.writeHead(200).end(body),
      () => res.writeHead(404).end(),
    );
  };
}

async function mode(b: LayoutBuild, p: string): Promise<string> {
  const st = await lstat(join(b.image?.rootfs ?? '/nonexistent', p));
  return `${st.uid}:${st.gid}:${(st.mode & 0o7777).toString(8)}`;
}

describe('ADD of a git repository', () => {
  let work: string;
  let server: Server;
  let daemon: ChildProcess | undefined;
  let daemonUrl: string;
  let base: string;
  let first: string;
  let feature: string;
  let b: LayoutBuild;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-add-git-'));
    const repo = join(work, 'repo');
    const git = async (...a: string[]): Promise<string> => (await run('git', ['-C', repo, ...a])).stdout.trim();
    await run('git', ['init', '-q', '-b', 'main', repo]);
    await git('config', 'user.email', 't@example.com');
    await git('config', 'user.name', 't');
    await mkdir(join(repo, 'sub'));
    await mkdir(join(repo, 'bin'));
    await writeFile(join(repo, 'msg'), 'one\n');
    await writeFile(join(repo, 'sub/inner.txt'), 'inner one\n');
    await writeFile(join(repo, 'bin/run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(join(repo, 'bin/run.sh'), 0o755);
    await git('add', '.');
    await git('commit', '-q', '-m', 'one');
    first = await git('rev-parse', 'HEAD');
    await git('tag', '-a', 'v1', '-m', 'release one');
    await writeFile(join(repo, 'msg'), 'two\n');
    await git('commit', '-q', '-am', 'two');
    await git('checkout', '-q', '-b', 'feature');
    await writeFile(join(repo, 'msg'), 'feature\n');
    await writeFile(join(repo, 'sub/inner.txt'), 'inner feature\n');
    await git('commit', '-q', '-am', 'feature');
    feature = await git('rev-parse', 'HEAD');
    await git('checkout', '-q', 'main');
    for (const name of ['app.git', 'private/app.git']) {
      const bare = join(work, 'srv', name);
      await run('git', ['clone', '-q', '--bare', repo, bare]);
      await run('git', ['-C', bare, 'update-server-info']);
    }
    server = createServer(staticServer(join(work, 'srv')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // git's own daemon speaks the smart protocol, where clones are shallow.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const daemonPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    daemon = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${join(work, 'srv')}`, '--listen=127.0.0.1', `--port=${daemonPort}`, join(work, 'srv')], { stdio: 'ignore' });
    daemonUrl = `git://127.0.0.1:${daemonPort}/app.git`;
    for (let i = 0; i < 50; i++) {
      if (await run('git', ['ls-remote', daemonUrl]).then(() => true, () => false)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const url = `${base}/app.git`;
    b = await buildToLayout(
      {
        Dockerfile: [
          `FROM ${images.busybox}`,
          `ADD ${url} /head`,
          `ADD ${url}#feature /branch/`,
          `ADD ${url}#v1 /tag`,
          `ADD --checksum=${first} ${url}#${first} /commit`,
          `ADD ${url}#${first.slice(0, 7)} /short`,
          `ADD ${url}#main:sub /subdir`,
          `ADD ${url}?ref=feature&subdir=sub /query`,
          `ADD --keep-git-dir ${url}#feature /kept`,
          `ADD --link --chown=1000:1001 --chmod=750 ${url} /owned`,
          `ADD ${base}/private/app.git#v1 /private`,
          `ADD --keep-git-dir ${daemonUrl}#feature /daemon`,
          `ADD ${daemonUrl}#${first} /daemon-commit`,
          '',
        ].join('\n'),
      },
      ['--secret', 'id=GIT_AUTH_TOKEN,env=KILN_TEST_GIT_TOKEN'],
      { env: { KILN_TEST_GIT_TOKEN: TOKEN } },
    );
  });

  afterAll(async () => {
    await b?.cleanup();
    await new Promise((resolve) => server?.close(resolve));
    daemon?.kill();
    await rm(work, { recursive: true, force: true });
  });

  it('builds, without printing the token', async () => {
    expect(b.stderr).not.toContain('error building image');
    expect(b.code).toBe(0);
    expect(b.stderr + b.stdout).not.toContain(TOKEN);
    expect(await b.blobsContain(TOKEN)).toBe(false);
  });

  it('copies the repository\'s contents at HEAD into the destination, without .git', async () => {
    expect(await b.file('head/msg')).toBe('two\n');
    expect(await b.file('head/sub/inner.txt')).toBe('inner one\n');
    expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'head/.git'))).toBe(false);
    expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'head/app'))).toBe(false);
    expect(await mode(b, 'head/msg')).toBe('0:0:644');
    expect(await mode(b, 'head/bin/run.sh')).toBe('0:0:755');
    expect(await mode(b, 'head/sub')).toBe('0:0:755');
  });

  it('checks out a branch, an annotated tag, a commit (with --checksum) and an abbreviated commit', async () => {
    expect(await b.file('branch/msg')).toBe('feature\n');
    expect(await b.file('tag/msg')).toBe('one\n');
    expect(await b.file('commit/msg')).toBe('one\n');
    expect(await b.file('short/msg')).toBe('one\n');
  });

  it('copies only the sub directory named by #ref:subdir or ?subdir=', async () => {
    expect(await b.file('subdir/inner.txt')).toBe('inner one\n');
    expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'subdir/msg'))).toBe(false);
    expect(await b.file('query/inner.txt')).toBe('inner feature\n');
  });

  it('keeps a working .git with --keep-git-dir, with no credentials in it', async () => {
    const kept = join(b.image?.rootfs ?? '/nonexistent', 'kept');
    expect(existsSync(join(kept, '.git'))).toBe(true);
    const { stdout } = await run('git', ['-c', `safe.directory=${kept}`, '-C', kept, 'rev-parse', 'HEAD']);
    expect(stdout.trim()).toBe(feature);
    expect(await b.file('kept/.git/config')).not.toContain('extraHeader');
  });

  it('clones shallow over the smart protocol (git://), by branch and by commit', async () => {
    expect(await b.file('daemon/msg')).toBe('feature\n');
    expect(existsSync(join(b.image?.rootfs ?? '/nonexistent', 'daemon/.git/shallow'))).toBe(true);
    expect(await b.file('daemon-commit/msg')).toBe('one\n');
  });

  it('applies --chown and --chmod to the files, and --chown only to the destination directory it creates', async () => {
    expect(await mode(b, 'owned/msg')).toBe('1000:1001:750');
    expect(await mode(b, 'owned/sub/inner.txt')).toBe('1000:1001:750');
    // BuildKit's copier (fsutil copy.go) creates a missing destination with MkdirAll(dest, 0755, chown)
    // and copies no file info onto it afterwards: the owner is --chown's, the mode 0755, not --chmod's.
    expect(await mode(b, 'owned')).toBe('1000:1001:755');
  });

  it('authenticates with the GIT_AUTH_TOKEN secret', async () => {
    expect(await b.file('private/msg')).toBe('one\n');
  });

  it('records the source as written in the history', async () => {
    const history = (await b.config()).history?.map((h) => h.created_by ?? '') ?? [];
    expect(history).toContain(`ADD ${base}/app.git#feature /branch/`);
  });

  it('fails clearly: a missing ref, a missing subdir, a wrong checksum, an unreachable repository, an ssh URL', async () => {
    const url = `${base}/app.git`;
    const cases: Array<[string, RegExp]> = [
      [`ADD ${url}#nope /x`, new RegExp(`^error building image: Dockerfile:2 ADD .*: git clone ${url}: ref "nope" not found`, 'm')],
      [`ADD ${url}#main:nosuch /x`, new RegExp(`^error building image: Dockerfile:2 ADD .*: git clone ${url}: subdir "nosuch" not found$`, 'm')],
      [`ADD --checksum=${feature} ${url}#v1 /x`, new RegExp(`^error building image: Dockerfile:2 ADD .*: expected checksum to match ${feature}, got [0-9a-f]{40} or ${first}$`, 'm')],
      [`ADD ${base}/missing.git /x`, new RegExp(`^error building image: Dockerfile:2 ADD .*: git clone ${base}/missing.git: (fatal|error): .*$`, 'm')],
      [`ADD ${base}/private/app.git /x`, new RegExp(`^error building image: Dockerfile:2 ADD .*: git clone ${base}/private/app.git: (fatal|error): .*$`, 'm')],
      ['ADD git@github.com:moby/buildkit.git#v0.10.1 /x', /^error building image: Dockerfile:2 ADD git@github.com:moby\/buildkit.git#v0.10.1 \/x: git@github.com:moby\/buildkit.git: ssh git sources are not supported in ADD \(no SSH agent is used there\); use an https:\/\/ URL$/m],
    ];
    const results = await Promise.all(cases.map(([line]) => buildToLayout({ Dockerfile: `FROM ${images.busybox}\n${line}\n` })));
    for (const [i, r] of results.entries()) {
      await r.cleanup();
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(cases[i]?.[1] ?? /never/);
    }
  });
});
