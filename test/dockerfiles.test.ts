// The Dockerfile conformance corpus (test/dockerfiles/), first half; see test/support/dockerfile-corpus.ts.
import { defineCorpusShard } from './support/corpus-suite.js';

defineCorpusShard(0, 2);
