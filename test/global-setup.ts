// vitest globalSetup: one loopback registry for the whole run, holding the base images tests build FROM.
// Tests read them with `inject('registry')` and `inject('images')`. The returned function is the teardown.
import type { TestProject } from 'vitest/node';
import { checkBaseImageTools, pushBaseImages, type BaseImages } from './support/base-images.js';
import { startRegistry } from './support/registry.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `127.0.0.1:PORT` of the shared plain-http test registry. */
    registry: string;
    images: BaseImages;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await checkBaseImageTools();
  const registry = await startRegistry();
  try {
    const images = await pushBaseImages(registry.host);
    project.provide('registry', registry.host);
    project.provide('images', images);
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return () => registry.stop();
}
