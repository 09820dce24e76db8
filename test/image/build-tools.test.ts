// Dockerfile.executor's build stage installs the root's production dependencies and, from
// image/build-tools, only the devDependencies that compile and bundle. Those must be the root's own
// versions, or the image would be built with a compiler or bundler the tests never ran.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../support/executor-image.js';

interface Manifest {
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

async function manifest(path: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(REPO, path), 'utf8')) as Manifest;
}

describe('the executor image build tools', () => {
  it('are pinned at the versions package.json pins, and are devDependencies there', async () => {
    const root = await manifest('package.json');
    const tools = (await manifest('image/build-tools/package.json')).dependencies ?? {};
    expect(Object.keys(tools).length).toBeGreaterThan(0);
    for (const [name, version] of Object.entries(tools)) expect(root.devDependencies?.[name], name).toBe(version);
  });

  it('include what `npm run build` runs: tsc and esbuild, with the types tsconfig.json names', async () => {
    const tools = (await manifest('image/build-tools/package.json')).dependencies ?? {};
    const tsconfig = JSON.parse(await readFile(join(REPO, 'tsconfig.json'), 'utf8')) as { compilerOptions?: { types?: string[] } };
    const needed = ['typescript', 'esbuild', ...(tsconfig.compilerOptions?.types ?? []).map((t) => `@types/${t}`)];
    for (const name of needed) expect(Object.keys(tools), name).toContain(name);
  });

  it('are installed from their own lockfile, which names the same versions', async () => {
    const lock = JSON.parse(await readFile(join(REPO, 'image/build-tools/package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string }>;
    };
    const tools = (await manifest('image/build-tools/package.json')).dependencies ?? {};
    for (const [name, version] of Object.entries(tools)) expect(lock.packages[`node_modules/${name}`]?.version, name).toBe(version);
  });
});
