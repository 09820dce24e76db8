// kaniko's registry rewriting for pulls. `--registry-map original=mirror[/prefix][;...]` (repeatable,
// also `KANIKO_REGISTRY_MAP`) lists, per original registry, registries to try first, in order;
// `--registry-mirror host` (repeatable, also `KANIKO_REGISTRY_MIRROR`) is kaniko's shorthand for
// `--registry-map index.docker.io=host`. After the mapped registries the original is tried, unless
// `--skip-default-registry-fallback`. Pushes are never rewritten.
import { UsageError } from '../errors.js';
import { DOCKER_HUB_REGISTRY, type Reference } from '../oci/reference.js';

/** Original registry (as in references: `index.docker.io` for Docker Hub) -> where to look first. */
export type RegistryMap = ReadonlyMap<string, readonly string[]>;

/** The registry key as references spell it: Docker Hub's aliases become `index.docker.io`. */
function registryKey(s: string): string {
  const k = s.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/+$/, '');
  return k === 'docker.io' || k === 'registry-1.docker.io' ? DOCKER_HUB_REGISTRY : k;
}

/**
 * Parses `--registry-map` values as kaniko does: each value holds `key=value` pairs separated by `;`,
 * and a key may repeat (its mappings are tried in the order given). Empty values are ignored, so
 * `--registry-map=$UNSET` works in pipelines.
 */
export function parseRegistryMap(values: readonly string[], mirrors: readonly string[] = []): RegistryMap {
  const out = new Map<string, string[]>();
  const add = (key: string, value: string): void => {
    out.set(key, [...(out.get(key) ?? []), value]);
  };
  for (const value of values) {
    for (const pair of value.split(';')) {
      const p = pair.trim();
      if (p === '') continue;
      const eq = p.indexOf('=');
      if (eq <= 0 || eq === p.length - 1) throw new UsageError(`invalid --registry-map ${JSON.stringify(p)}: want original=mirror`);
      add(registryKey(p.slice(0, eq)), p.slice(eq + 1).trim());
    }
  }
  for (const m of mirrors) if (m.trim() !== '') add(DOCKER_HUB_REGISTRY, m.trim());
  return out;
}

/** `mirror.example.com/sub/dir` -> `mirror.example.com` and repository prefix `sub/dir/`. */
function splitMapping(mapping: string): { registry: string; prefix: string } {
  const m = mapping.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = m.indexOf('/');
  if (slash < 0) return { registry: m, prefix: '' };
  const prefix = m.slice(slash + 1).replace(/\/*$/, '');
  return { registry: m.slice(0, slash), prefix: prefix === '' ? '' : `${prefix}/` };
}

/** The references to try before `ref` itself, in order (none when its registry is not mapped). */
export function mappedReferences(ref: Reference, map: RegistryMap): Reference[] {
  return (map.get(ref.registry) ?? []).map((mapping) => {
    const { registry, prefix } = splitMapping(mapping);
    return { ...ref, registry, repository: `${prefix}${ref.repository}` };
  });
}
