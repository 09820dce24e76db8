// RUN --mount in the executor image, run by podman unprivileged: the cases sandbox mode passes
// (test/e2e/run-mount-cases.ts), here with every RUN isolated by kiln-isolate in namespaces of its own.
import { afterAll, beforeAll, describe, inject } from 'vitest';
import { describeRunMounts } from '../e2e/run-mount-cases.js';
import { executorImage } from '../support/executor-image.js';
import { imageLayoutBuilder } from '../support/image-layout-build.js';
import { podmanAvailable, startPodman, type Podman } from '../support/podman.js';

const available = await podmanAvailable();

describe.skipIf(!available)(`RUN --mount in the executor image${available ? '' : ' (skipped: podman and runc are not installed)'}`, { timeout: 300_000 }, () => {
  let podman: Podman;
  let imageId = '';
  beforeAll(async () => {
    podman = await startPodman();
    const built = await executorImage(inject('workDir'), inject('registry'), 'executor');
    imageId = await podman.load(built.tarPath);
  }, 900_000);
  afterAll(async () => podman?.cleanup());

  describeRunMounts((files, args, opts) => imageLayoutBuilder(podman, () => imageId)(files, args, opts), inject('images'), { inImage: true });
});
