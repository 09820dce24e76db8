import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretMask } from '../../src/log/logger.js';
import { dockerConfigKeychain, loadDockerConfigKeychain } from '../../src/registry/keychain.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('docker config.json keychain', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiln-keychain-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is anonymous when the directory has no config.json', async () => {
    const kc = await loadDockerConfigKeychain(dir, new SecretMask());
    expect(await kc.resolve('gcr.io')).toEqual({ kind: 'anonymous' });
  });

  it('matches URL and bare-host keys, Docker Hub aliases, and every entry form', async () => {
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass') },
          'https://my.registry:5000/v2/': { username: 'u2', password: 'p2-secret' },
          'ghcr.io': { identitytoken: 'refresh-tok-123' },
          'quay.io': { registrytoken: 'reg-tok-456' },
        },
      }),
    );
    const mask = new SecretMask();
    const kc = await loadDockerConfigKeychain(dir, mask);
    const hub = { kind: 'basic', username: 'hubuser', password: 'hubpass' };
    expect(await kc.resolve('index.docker.io')).toEqual(hub);
    expect(await kc.resolve('docker.io')).toEqual(hub);
    expect(await kc.resolve('my.registry:5000')).toEqual({ kind: 'basic', username: 'u2', password: 'p2-secret' });
    expect(await kc.resolve('ghcr.io')).toEqual({ kind: 'identity-token', token: 'refresh-tok-123' });
    expect(await kc.resolve('quay.io')).toEqual({ kind: 'registry-token', token: 'reg-tok-456' });
    expect(await kc.resolve('other.io')).toEqual({ kind: 'anonymous' });
    expect(mask.apply('hubpass p2-secret refresh-tok-123 reg-tok-456')).toBe('******** ******** ******** ********');
  });

  it('finds `docker.io` keys for Docker Hub references', async () => {
    const kc = dockerConfigKeychain({ auths: { 'docker.io': { auth: b64('a:bbbb') } } }, new SecretMask());
    expect(await kc.resolve('index.docker.io')).toEqual({ kind: 'basic', username: 'a', password: 'bbbb' });
  });

  it('rejects an invalid config.json rather than pulling anonymously', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { x: { auth: 5 } } }));
    await expect(loadDockerConfigKeychain(dir, new SecretMask())).rejects.toThrow(/config\.json: invalid document at auths\.x\.auth/);
  });

  it('asks a credential helper from credHelpers with the host on stdin', async () => {
    const helper = join(dir, 'docker-credential-kilntest');
    await writeFile(
      helper,
      '#!/bin/sh\nread host\nif [ "$host" = "helped.io" ]; then echo \'{"ServerURL":"helped.io","Username":"hu","Secret":"helper-secret"}\'; else echo "credentials not found" >&2; exit 1; fi\n',
    );
    await chmod(helper, 0o755);
    const mask = new SecretMask();
    // The real runner finds helpers on PATH (this test file runs in its own process).
    const oldPath = process.env['PATH'];
    process.env['PATH'] = `${dir}:${oldPath ?? ''}`;
    const kc = dockerConfigKeychain({ credHelpers: { 'helped.io': 'kilntest' }, credsStore: 'kilntest' }, mask);
    try {
      expect(await kc.resolve('helped.io')).toEqual({ kind: 'basic', username: 'hu', password: 'helper-secret' });
      expect(mask.apply('x helper-secret')).toBe('x ********');
      // The store knows nothing of other.io: the helper exits 1 and the registry is anonymous.
      expect(await kc.resolve('other.io')).toEqual({ kind: 'anonymous' });
    } finally {
      process.env['PATH'] = oldPath;
    }
  });

  it('names a missing credential helper without echoing anything it printed', async () => {
    const kc = dockerConfigKeychain({ credHelpers: { 'x.io': 'does-not-exist-kiln' } }, new SecretMask());
    await expect(kc.resolve('x.io')).rejects.toThrow('credential helper docker-credential-does-not-exist-kiln failed: not found in PATH');
  });
});
