import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { parseReference } from '../../src/oci/reference.js';
import { mappedReferences, parseRegistryMap } from '../../src/registry/registry-map.js';

describe("kaniko's --registry-map and --registry-mirror", () => {
  it('parses ;-separated pairs, keeps repeated keys in order, and folds mirrors in as index.docker.io maps', () => {
    const map = parseRegistryMap(['index.docker.io=mirror.a;gcr.io=127.0.0.1', '', 'docker.io=harbor.example.com/proxy/'], ['mirror.gcr.io']);
    expect([...map]).toEqual([
      ['index.docker.io', ['mirror.a', 'harbor.example.com/proxy/', 'mirror.gcr.io']],
      ['gcr.io', ['127.0.0.1']],
    ]);
    expect(() => parseRegistryMap(['quay.io'])).toThrow(UsageError);
    expect(() => parseRegistryMap(['quay.io'])).toThrow('invalid --registry-map "quay.io": want original=mirror');
  });

  it('rewrites the registry and prefixes the repository, library/ included, leaving tag and digest', () => {
    const map = parseRegistryMap(['index.docker.io=harbor.example.com/proxy;index.docker.io=https://mirror.gcr.io;quay.io=10.0.0.1:5000']);
    const hub = mappedReferences(parseReference('alpine:3.20'), map);
    expect(hub.map((r) => `${r.registry}/${r.repository}:${r.tag}`)).toEqual([
      'harbor.example.com/proxy/library/alpine:3.20',
      'mirror.gcr.io/library/alpine:3.20',
    ]);
    const d = `sha256:${'a'.repeat(64)}`;
    expect(mappedReferences(parseReference(`quay.io/org/app@${d}`), map)).toMatchObject([{ registry: '10.0.0.1:5000', repository: 'org/app', digest: d }]);
    expect(mappedReferences(parseReference('ghcr.io/org/app:1'), map)).toEqual([]);
  });
});
