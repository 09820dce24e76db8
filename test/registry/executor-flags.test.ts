// The registry flags of the executor, run as a user would (bin/executor.js), against real registries:
// the push-permission check, a credential helper on PATH, kaniko's GitLab helper, registry mirrors and
// maps, and a TLS registry with a private CA and client certificates.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRegistry, testPki, type RunningRegistry, type TestPki } from '../support/registry.js';
import { executor, writeContext } from '../support/executor.js';
import { skopeo } from './fixtures.js';

const USER = 'alice';
const PASSWORD = 'alice-registry-password';

/** The failure lines: kaniko's `error building image: `, or its own line for a refused push check. */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error building image: ') || l.startsWith('error checking push permissions -- '));
}

describe('executor registry flags', () => {
  const registry = inject('registry');
  const images = inject('images');
  const dirs: string[] = [];
  let guarded: RunningRegistry;
  let context: string;
  const temp = async (): Promise<string> => {
    const d = await mkdtemp(join(tmpdir(), 'kiln-exec-flags-'));
    dirs.push(d);
    return d;
  };
  const dockerConfig = async (config: object): Promise<string> => {
    const d = await temp();
    await writeFile(join(d, 'config.json'), JSON.stringify(config));
    return d;
  };
  const exists = (ref: string, creds?: string): Promise<boolean> =>
    skopeo('inspect', '--tls-verify=false', ...(creds !== undefined ? [`--creds=${creds}`] : []), '--raw', `docker://${ref}`).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    guarded = await startRegistry({ auth: { kind: 'htpasswd', users: { [USER]: PASSWORD } } });
    context = await writeContext({ Dockerfile: 'FROM scratch\nCOPY f.txt /\n', 'f.txt': 'registry flags\n' });
    dirs.push(context);
  });
  afterAll(async () => {
    await guarded?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('fails on wrong credentials in one line naming the destination, before any stage starts or base layer is fetched', async () => {
    const cfg = await dockerConfig({ auths: { [guarded.host]: { auth: Buffer.from(`${USER}:wrong-password-42`).toString('base64') } } });
    const ctx = await writeContext({ Dockerfile: `FROM ${images.busybox}\nRUN echo hi > /x\n` });
    dirs.push(ctx);
    const dest = `${guarded.host}/e2e/perm:1`;
    const started = Date.now();
    const r = await executor(['--context', ctx, '--destination', dest], { env: { DOCKER_CONFIG: cfg } });
    expect(Date.now() - started).toBeLessThan(10_000); // in practice well under a second of registry work
    expect(r.code).toBe(1);
    // kaniko's line, word for word up to the cause: not "error building image".
    expect(errorLines(r.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^error checking push permissions -- make sure you entered the correct tag name, and that you are authenticated correctly, and try again: checking push permission for "${dest}": POST http://${guarded.host}/v2/e2e/perm/blobs/uploads/: 401 Unauthorized: UNAUTHORIZED`,
        ),
      ),
    ]);
    // Base manifests are fetched while the check runs; nothing is built or downloaded beyond them.
    expect(r.stderr).not.toContain('Building stage');
    expect(r.stderr).not.toContain('Unpacking rootfs');
    expect(r.stderr + r.stdout).not.toContain('wrong-password-42');
    expect(await exists(dest, `${USER}:${PASSWORD}`)).toBe(false);
  });

  it('pushes with credentials from a docker-credential-test helper found on PATH', async () => {
    const bin = await temp();
    const helper = join(bin, 'docker-credential-test');
    await writeFile(
      helper,
      `#!/bin/sh\n[ "$1" = get ] || exit 2\nread server\nif [ "$server" = "${guarded.host}" ]; then printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASSWORD}"}' "$server"; else echo "credentials not found in native keychain" >&2; exit 1; fi\n`,
    );
    await chmod(helper, 0o755);
    const cfg = await dockerConfig({ credHelpers: { [guarded.host]: 'test' } });
    const dest = `${guarded.host}/e2e/helper:1`;
    const r = await executor(['--context', context, '--destination', dest, '--verbosity', 'debug'], {
      env: { DOCKER_CONFIG: cfg, PATH: `${bin}:${process.env['PATH'] ?? '/usr/bin:/bin'}` },
    });
    expect(errorLines(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain(PASSWORD);
    expect(await exists(dest, `${USER}:${PASSWORD}`)).toBe(true);
  });

  it("pushes with GitLab CI's CI_REGISTRY_USER and CI_REGISTRY_PASSWORD for the CI_REGISTRY host", async () => {
    const dest = `${guarded.host}/e2e/gitlab:1`;
    const r = await executor(['--context', context, '--destination', dest, '--verbosity', 'debug'], {
      env: { CI_REGISTRY: guarded.host, CI_REGISTRY_USER: USER, CI_REGISTRY_PASSWORD: PASSWORD },
    });
    expect(errorLines(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain(PASSWORD);
    expect(await exists(dest, `${USER}:${PASSWORD}`)).toBe(true);
  });

  it('pulls a Docker Hub reference from --registry-mirror, and honours --skip-default-registry-fallback', async () => {
    // images.busybox is REGISTRY/test/busybox:latest, so the Hub name test/busybox is on the "mirror".
    const ctx = await writeContext({ Dockerfile: 'FROM test/busybox\nLABEL mirrored=yes\n' });
    dirs.push(ctx);
    const dest = `${registry}/e2e/mirrored:1`;
    const r = await executor(['--context', ctx, '--destination', dest, '--registry-mirror', registry]);
    expect(errorLines(r.stderr)).toEqual([]);
    expect(r.stderr).toContain(`Retrieving image ${registry}/test/busybox:latest from mapped registry ${registry}`);
    expect(images.busybox).toBe(`${registry}/test/busybox:latest`);
    expect(await exists(dest)).toBe(true);

    const missing = await writeContext({ Dockerfile: 'FROM test/not-there:1\nLABEL x=y\n' });
    dirs.push(missing);
    const m = await executor([
      '--context', missing, '--no-push', '--registry-map', `index.docker.io=${registry}/nested;quay.io=${registry}`, '--skip-default-registry-fallback',
    ]);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(`Failed to retrieve image ${registry}/nested/test/not-there:1 from remapped registry ${registry}`);
    expect(errorLines(m.stderr)).toEqual([
      expect.stringContaining('image not found on any configured mapped registries for index.docker.io/test/not-there:1'),
    ]);
    expect(m.stderr).not.toContain('registry-1.docker.io');
  });

  describe('a TLS registry with a private CA that wants client certificates', () => {
    let pki: TestPki;
    let tls: RunningRegistry;
    beforeAll(async () => {
      pki = await testPki(await temp());
      tls = await startRegistry({ tls: pki.server, clientCas: [pki.caPath] });
    });
    afterAll(async () => {
      await tls?.stop();
    });

    it('pushes with --registry-certificate and --registry-client-cert', async () => {
      const dest = `${tls.host}/e2e/mtls:1`;
      const r = await executor([
        '--context', context, '--destination', dest,
        '--registry-certificate', `${tls.host}=${pki.caPath}`,
        '--registry-client-cert', `${tls.host}=${pki.client.certPath},${pki.client.keyPath}`,
      ]);
      expect(errorLines(r.stderr)).toEqual([]);
      expect(r.code).toBe(0);
      const raw = await skopeo('inspect', '--raw', `--cert-dir=${await certDir(pki)}`, `docker://${dest}`);
      expect(raw.length).toBeGreaterThan(0);
      // --skip-tls-verify-registry stands in for the CA (the client certificate is still needed).
      const skip = await executor([
        '--context', context, '--destination', `${tls.host}/e2e/mtls:skip`, '--skip-tls-verify-registry', tls.host,
        '--registry-client-cert', `${tls.host}=${pki.client.certPath},${pki.client.keyPath}`,
      ]);
      expect(errorLines(skip.stderr)).toEqual([]);
      expect(skip.code).toBe(0);
    });

    it('fails in one line without the CA, and without the client certificate', async () => {
      const noCa = await executor(['--context', context, '--destination', `${tls.host}/e2e/mtls:2`]);
      expect(noCa.code).toBe(1);
      expect(errorLines(noCa.stderr)).toEqual([expect.stringMatching(new RegExp(`unable to reach registry ${tls.host}: .*--registry-certificate`))]);
      const noClient = await executor(['--context', context, '--destination', `${tls.host}/e2e/mtls:2`, '--registry-certificate', `${tls.host}=${pki.caPath}`]);
      expect(noClient.code).toBe(1);
      expect(errorLines(noClient.stderr)).toHaveLength(1);
      expect(errorLines(noClient.stderr)[0]).toContain(tls.host);
      const badPath = await executor(['--context', context, '--destination', `${tls.host}/e2e/mtls:2`, '--registry-certificate', `${tls.host}=/nonexistent/ca.pem`]);
      expect(errorLines(badPath.stderr)).toEqual([`error building image: --registry-certificate ${tls.host}=/nonexistent/ca.pem: ENOENT`]);
    });
  });

  /** skopeo's --cert-dir layout: ca.crt, client.cert, client.key. */
  async function certDir(pki: TestPki): Promise<string> {
    const d = await temp();
    const { copyFile } = await import('node:fs/promises');
    await copyFile(pki.caPath, join(d, 'ca.crt'));
    await copyFile(pki.client.certPath, join(d, 'client.cert'));
    await copyFile(pki.client.keyPath, join(d, 'client.key'));
    return d;
  }
});
