// Which URL a registry host is reached at. Docker Hub's API lives on registry-1.docker.io; everything
// else is the host as written. https always comes first; plain http is tried after it only where the
// user allowed it (`--insecure`, `--insecure-pull`, `--insecure-registry`) or, as go-containerregistry
// (and so kaniko) does, for loopback and private addresses.
import { DOCKER_HUB_REGISTRY } from '../oci/reference.js';

export function apiHost(registry: string): string {
  return registry === DOCKER_HUB_REGISTRY || registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** The host part without the port (`[::1]:5000` -> `::1`). */
function hostname(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

/** go-containerregistry's rule: localhost, loopback, RFC 1918 and `.local` names may speak plain http. */
export function isLocalRegistry(registry: string): boolean {
  const h = hostname(registry).toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost') || h.endsWith('.local') || h === '::1') return true;
  const m = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(h);
  if (m === null) return false;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}

/** The schemes to try, in order. */
export function schemesFor(registry: string, insecure: boolean): readonly ('https' | 'http')[] {
  return insecure || isLocalRegistry(registry) ? ['https', 'http'] : ['https'];
}
