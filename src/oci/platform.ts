import { UsageError } from '../errors.js';
import type { Platform } from './schemas.js';

/** Parses `os/arch[/variant]` (as `--custom-platform` and `FROM --platform` take it). */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || (parts.length === 3 && !variant)) {
    throw new UsageError(`invalid platform ${JSON.stringify(s)}: want os/arch[/variant]`);
  }
  return normalizePlatform(variant === undefined ? { os, architecture } : { os, architecture, variant });
}

/** Applies containerd's normalisation: amd64 aliases, arm64's default variant v8, arm's v7. */
export function normalizePlatform(p: Platform): Platform {
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant;
  if (architecture === 'x86_64' || architecture === 'x86-64') architecture = 'amd64';
  if (architecture === 'aarch64') architecture = 'arm64';
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'armhf') {
    architecture = 'arm';
    variant = 'v7';
  }
  if (architecture === 'armel') {
    architecture = 'arm';
    variant = 'v6';
  }
  if (architecture === 'arm' && variant === undefined) variant = 'v7';
  const out: Platform = { os: p.os.toLowerCase(), architecture };
  if (variant !== undefined) out.variant = variant;
  if (p['os.version'] !== undefined) out['os.version'] = p['os.version'];
  return out;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

/** Whether a candidate (from an index entry) satisfies the wanted platform. */
export function platformMatches(wanted: Platform, candidate: Platform): boolean {
  const w = normalizePlatform(wanted);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return false;
  if (w.variant !== undefined && w.variant !== c.variant) return false;
  return true;
}

/** The platform of the machine we run on, in OCI terms. `arch` and `osName` come from the caller (process.*). */
export function hostPlatform(nodeArch: string, nodePlatform: string): Platform {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return normalizePlatform({ os: nodePlatform === 'win32' ? 'windows' : nodePlatform, architecture: archMap[nodeArch] ?? nodeArch });
}
