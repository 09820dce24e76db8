// `executor version` / `executor --version` (and the warmer's): kaniko's line first, `Kaniko version :
// <version>`, which scripts and bug reports grep, then what kiln adds: its commit and the Node.js it
// runs on. The version is package.json's; the commit is what scripts/bundle.mjs baked into the bundle
// (KILN_COMMIT, or `git rev-parse` of the tree it bundled), unknown for a build from dist/ alone.
import { readFileSync } from 'node:fs';

declare const __KILN_COMMIT__: string | undefined;

function packageVersion(): string {
  try {
    // dist/cli/version.js and dist/bundle/kiln.cjs both sit two levels below package.json.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The lines `version` prints, given the node version it runs on. */
export function versionText(nodeVersion: string): string {
  const commit = typeof __KILN_COMMIT__ === 'string' && __KILN_COMMIT__ !== '' ? __KILN_COMMIT__ : 'unknown';
  const version = packageVersion();
  return `Kaniko version : v${version}\nkiln v${version} (commit ${commit}) on Node.js ${nodeVersion}\n`;
}

/** Whether argv (after the program name) asks for the version: `version` or `--version` alone. */
export function asksForVersion(args: readonly string[]): boolean {
  return args.length === 1 && (args[0] === 'version' || args[0] === '--version');
}
