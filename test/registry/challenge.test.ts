import { describe, expect, it } from 'vitest';
import { parseChallenges, preferredChallenge } from '../../src/registry/challenge.js';
import { isLocalRegistry, schemesFor } from '../../src/registry/endpoint.js';

describe('WWW-Authenticate parsing', () => {
  it('reads a Bearer challenge with quoted realm, service and scope', () => {
    expect(
      parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"'),
    ).toEqual([
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:samalba/my-app:pull,push' },
      },
    ]);
  });

  it('reads several challenges, unquoted values and escapes, preferring Bearer', () => {
    const h = 'Basic realm="a \\"quoted\\" realm", Bearer realm=https://x/token, error="insufficient_scope"';
    expect(parseChallenges(h)).toEqual([
      { scheme: 'basic', params: { realm: 'a "quoted" realm' } },
      { scheme: 'bearer', params: { realm: 'https://x/token', error: 'insufficient_scope' } },
    ]);
    expect(preferredChallenge(h)?.scheme).toBe('bearer');
    expect(preferredChallenge('Basic realm="Registry Realm"')?.params['realm']).toBe('Registry Realm');
    expect(preferredChallenge(null)).toBeUndefined();
  });
});

describe('scheme choice', () => {
  it('tries plain http only for insecure or local registries', () => {
    expect(schemesFor('registry.example.com', false)).toEqual(['https']);
    expect(schemesFor('registry.example.com', true)).toEqual(['https', 'http']);
    for (const h of ['localhost:5000', '127.0.0.1:5000', '10.1.2.3', '192.168.1.5:80', '172.20.0.1', '[::1]:5000', 'box.local']) {
      expect(isLocalRegistry(h)).toBe(true);
    }
    for (const h of ['172.32.0.1', '8.8.8.8:5000', 'gcr.io', 'index.docker.io']) expect(isLocalRegistry(h)).toBe(false);
  });
});
