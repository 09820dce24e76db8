// kaniko's --context schemes beyond a local directory (pkg/buildcontext): tar://PATH, tar://stdin,
// git://HOST/REPO#REF#COMMIT (over GIT_PULL_METHOD, with GIT_USERNAME/GIT_PASSWORD), https:// archives,
// and --context-sub-path. Each build is read back with skopeo + umoci, never with kiln's own reader.
import { execFile } from 'node:child_process';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { executor, unpackWithUmoci, writeContext } from '../support/executor.js';
import { selfSignedCertificate } from '../support/registry.js';

const run = promisify(execFile);

/** Serves the files under `root` (a git repo's dumb HTTP protocol needs no more); optional Basic auth. */
function staticServer(root: string, auth?: string): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (auth !== undefined && req.headers.authorization !== `Basic ${Buffer.from(auth).toString('base64')}`) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const path = join(root, normalize(decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')));
    readFile(path).then(
      (body) => res.writeHead(200).end(body),
      () => res.writeHead(404).end(),
    );
  };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('build contexts other than a directory', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dockerfile = `FROM ${images.busybox}\nCOPY . /ctx/\nRUN cat /ctx/msg > /from-run\n`;
  let work: string;
  let servers: Server[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kiln-contexts-'));
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    servers = [];
    await rm(work, { recursive: true, force: true });
  });

  /** Builds with `args` and pushes to `repo`; returns the unpacked image's rootfs files of interest. */
  async function buildAndRead(repo: string, args: string[], opts: { env?: Record<string, string>; input?: Buffer } = {}): Promise<{ stderr: string; read: (p: string) => Promise<string>; ls: (p: string) => Promise<string[]> }> {
    const ref = `${registry}/e2e/contexts-${repo}:1`;
    const r = await executor([...args, '--destination', ref, '--insecure', '--insecure-pull'], opts);
    if (r.code !== 0) throw new Error(r.stderr);
    const img = await unpackWithUmoci(`docker://${ref}`);
    const read = (p: string): Promise<string> => readFile(join(img.rootfs, p), 'utf8');
    const ls = async (p: string): Promise<string[]> => (await readdir(join(img.rootfs, p))).sort();
    const out = { stderr: r.stderr, read: async (p: string) => read(p), ls: async (p: string) => ls(p) };
    // Read eagerly what tests ask for later: the unpacked dir goes with the test.
    afterAll(() => img.cleanup());
    return out;
  }

  it('tar://PATH: a gzip tar holding the Dockerfile and the files; .wh. names are plain files there', async () => {
    // The RUN reads the `.wh.` file from the rootfs: an image layer could not carry it as a file.
    const withWh = `FROM ${images.busybox}\nCOPY . /ctx/\nRUN cat /ctx/msg /ctx/sub/.wh.keep > /from-run\n`;
    const src = await writeContext({ Dockerfile: withWh, msg: 'from a tar\n', 'sub/.wh.keep': 'not a whiteout\n', 'sub/keep': 'kept\n' });
    const tgz = join(work, 'ctx.tar.gz');
    await run('tar', ['-czf', tgz, '-C', src, '.']);
    const img = await buildAndRead('tar', ['--context', `tar://${tgz}`]);
    expect(await img.read('from-run')).toBe('from a tar\nnot a whiteout\n');
    await rm(src, { recursive: true, force: true });
  });

  it('tar://stdin with --context-sub-path and a Dockerfile found inside that sub directory', async () => {
    const src = await writeContext({ 'app/Dockerfile': dockerfile, 'app/msg': 'from stdin\n', 'other/secret': 'not in the context\n' });
    const { stdout } = await run('tar', ['-cf', '-', '-C', src, '.'], { encoding: 'buffer', maxBuffer: 16 << 20 });
    const img = await buildAndRead('stdin', ['--context', 'tar://stdin', '--context-sub-path', 'app', '--dockerfile', 'Dockerfile'], { input: stdout });
    expect(await img.read('from-run')).toBe('from stdin\n');
    expect(await img.ls('ctx')).toEqual(['Dockerfile', 'msg']);
    await rm(src, { recursive: true, force: true });
  });

  it('a tar entry climbing out of the context is refused with the archive named, and nothing is written outside', async () => {
    const evil = join(work, 'evil');
    await run('mkdir', ['-p', join(evil, 'a')]);
    await writeFile(join(evil, 'a', 'x'), 'x');
    const tarPath = join(work, 'evil.tar');
    // GNU tar keeps `..` in names with -P; the entry would land in `work` beside the archive.
    await run('tar', ['-cPf', tarPath, '-C', evil, 'a/../../escaped']).catch(async () => {
      await writeFile(join(evil, 'escaped'), 'e');
      await run('tar', ['-cPf', tarPath, '-C', evil, '--transform', 's,^,../,', 'escaped']);
    });
    const r = await executor(['--context', `tar://${tarPath}`, '--no-push']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`build context ${tarPath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*climbs out`));
    await expect(stat(join(work, 'escaped'))).rejects.toThrow();
  });

  it('--context-sub-path may not leave the context, by name or through a symlink', async () => {
    const src = await writeContext({ 'Dockerfile': dockerfile, msg: 'm\n' });
    await symlink('/etc', join(src, 'out'));
    const byName = await executor(['--context', src, '--context-sub-path', '../..', '--no-push']);
    expect(byName.code).not.toBe(0);
    expect(byName.stderr).toContain('--context-sub-path "../.." leaves the build context');
    const byLink = await executor(['--context', src, '--context-sub-path', 'out', '--no-push']);
    expect(byLink.code).not.toBe(0);
    expect(byLink.stderr).toContain('leaves the build context through a symlink');
    await rm(src, { recursive: true, force: true });
  });

  it('git://: clones over GIT_PULL_METHOD=http with GIT_USERNAME/GIT_PASSWORD; #ref and #commit pick the tree; no credential is kept or printed', async () => {
    const repo = join(work, 'repo');
    const git = (...a: string[]): Promise<{ stdout: string }> => run('git', ['-C', repo, ...a]);
    await run('git', ['init', '-q', '-b', 'main', repo]);
    await git('config', 'user.email', 't@example.com');
    await git('config', 'user.name', 't');
    await writeFile(join(repo, 'Dockerfile'), dockerfile);
    await writeFile(join(repo, 'msg'), 'main one\n');
    await git('add', '.');
    await git('commit', '-q', '-m', 'one');
    const first = (await git('rev-parse', 'HEAD')).stdout.trim();
    await writeFile(join(repo, 'msg'), 'main two\n');
    await git('commit', '-q', '-am', 'two');
    await git('checkout', '-q', '-b', 'feature');
    await writeFile(join(repo, 'msg'), 'feature\n');
    await git('commit', '-q', '-am', 'feature');
    await git('update-ref', 'refs/pull/7/head', 'HEAD');
    await git('checkout', '-q', 'main');
    const bare = join(work, 'srv', 'org', 'app.git');
    await run('git', ['clone', '-q', '--bare', '--mirror', repo, bare]);
    await run('git', ['-C', bare, 'update-server-info']);
    const password = 'pa55-word-for-git';
    const server = createHttpServer(staticServer(join(work, 'srv'), `ci:${password}`));
    servers.push(server);
    const port = await listen(server);
    const env = { GIT_PULL_METHOD: 'http', GIT_USERNAME: 'ci', GIT_PASSWORD: password };
    const base = `git://127.0.0.1:${port}/org/app.git`;

    const head = await buildAndRead('git-head', ['--context', base], { env });
    expect(await head.read('from-run')).toBe('main two\n');
    expect(await head.ls('ctx')).toContain('.git');
    expect(await head.read('ctx/.git/config')).not.toContain(password);
    expect(head.stderr).not.toContain(password);

    const branch = await buildAndRead('git-branch', ['--context', `${base}#refs/heads/feature`], { env });
    expect(await branch.read('from-run')).toBe('feature\n');
    const pull = await buildAndRead('git-pull', ['--context', `${base}#refs/pull/7/head`], { env });
    expect(await pull.read('from-run')).toBe('feature\n');
    const commit = await buildAndRead('git-commit', ['--context', `${base}#refs/heads/main#${first}`], { env });
    expect(await commit.read('from-run')).toBe('main one\n');
    const flag = await buildAndRead('git-flag', ['--context', base, '--git', 'branch=feature,single-branch=true'], { env });
    expect(await flag.read('from-run')).toBe('feature\n');

    const denied = await executor(['--context', base, '--no-push'], { env: { ...env, GIT_PASSWORD: 'wrong-password' } });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/^error building image: git clone .*127\.0\.0\.1.*$/m);
    expect(denied.stderr).not.toContain('wrong-password');
  });

  it('https://: a tar.gz streamed from an HTTPS server (its CA through NODE_EXTRA_CA_CERTS); an HTTP error names the URL without its query', async () => {
    const certDir = await mkdtemp(join(work, 'tls-'));
    const { certPath, keyPath } = await selfSignedCertificate(certDir);
    const files = join(work, 'www');
    const src = await writeContext({ Dockerfile: dockerfile, msg: 'over https\n' });
    await run('mkdir', ['-p', files]);
    await run('tar', ['-czf', join(files, 'ctx.tar.gz'), '-C', src, '.']);
    const server = createHttpsServer({ cert: await readFile(certPath), key: await readFile(keyPath) }, staticServer(files));
    servers.push(server);
    const port = await listen(server);
    const env = { NODE_EXTRA_CA_CERTS: certPath };
    const img = await buildAndRead('https', ['--context', `https://127.0.0.1:${port}/ctx.tar.gz`], { env });
    expect(await img.read('from-run')).toBe('over https\n');
    const missing = await executor(['--context', `https://127.0.0.1:${port}/nope.tar.gz?X-Signature=abcdef`, '--no-push'], { env });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`build context https://127.0.0.1:${port}/nope.tar.gz?...: HTTP 404`);
    expect(missing.stderr).not.toContain('abcdef');
    await rm(src, { recursive: true, force: true });
  });

  it('--dockerfile http://URL: the Dockerfile is fetched, the context stays the directory; a 404 names the URL', async () => {
    const www = await writeContext({ 'Dockerfile.remote': dockerfile });
    const server = createHttpServer(staticServer(www));
    servers.push(server);
    const port = await listen(server);
    const ctx = await writeContext({ msg: 'remote dockerfile\n' });
    const img = await buildAndRead('remote-df', ['--context', ctx, '--dockerfile', `http://127.0.0.1:${port}/Dockerfile.remote`]);
    expect(await img.read('from-run')).toBe('remote dockerfile\n');
    const missing = await executor(['--context', ctx, '--dockerfile', `http://127.0.0.1:${port}/nope`, '--no-push']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain(`error building image: Dockerfile http://127.0.0.1:${port}/nope: HTTP 404`);
    await rm(www, { recursive: true, force: true });
    await rm(ctx, { recursive: true, force: true });
  });

  it('s3:// without credentials fails in one line (cloud-contexts.test.ts has the rest), and --dockerfile - together with tar://stdin', async () => {
    const s3 = await executor(['--context', 's3://bucket/ctx.tar.gz', '--no-push'], { env: { AWS_EC2_METADATA_DISABLED: 'true', HOME: work } });
    expect(s3.code).not.toBe(0);
    expect(s3.stderr.trim().split('\n').pop()).toMatch(/^error building image: build context s3:\/\/bucket\/ctx\.tar\.gz: no AWS credentials found/);
    const both = await executor(['--context', 'tar://stdin', '--dockerfile', '-', '--no-push']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain('both read standard input');
  });
});
