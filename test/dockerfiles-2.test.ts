// The Dockerfile conformance corpus (test/dockerfiles/), second half: a second file so vitest's two
// workers share the builds.
import { defineCorpusShard } from './support/corpus-suite.js';

defineCorpusShard(1, 2);
