// RUN --mount and RUN --network in sandbox mode: the cases of run-mount-cases.ts, built on this host.
import { inject } from 'vitest';
import { buildToLayout } from './layout-build.js';
import { describeRunMounts } from './run-mount-cases.js';

describeRunMounts(buildToLayout, inject('images'), { inImage: false });
