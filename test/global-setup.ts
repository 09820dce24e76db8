// vitest globalSetup: one loopback registry for the whole run, holding the base images tests build FROM.
// Tests read them with `inject('registry')` and `inject('images')`. The returned function is the teardown.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { checkBaseImageTools, pushBaseImages, type BaseImages } from './support/base-images.js';
import { startRegistry } from './support/registry.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `127.0.0.1:PORT` of the shared plain-http test registry. */
    registry: string;
    images: BaseImages;
    /** A directory for the whole run, shared by the test files (e.g. the executor image they all run), removed after. */
    workDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await checkBaseImageTools();
  const registry = await startRegistry();
  const workDir = await mkdtemp(join(tmpdir(), 'kiln-test-run-'));
  const teardown = async (): Promise<void> => {
    await registry.stop();
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    const images = await pushBaseImages(registry.host);
    project.provide('registry', registry.host);
    project.provide('images', images);
    project.provide('workDir', workDir);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
