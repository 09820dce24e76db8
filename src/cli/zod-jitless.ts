// zod's one setting for kiln, made before any schema exists: main.ts imports this module first, and
// ES modules run in import order, so every schema module that follows sees it.
//
// Why jitless: zod 4 compiles each object schema into a function (new Function) on its first parse,
// which pays back over thousands of parses of one schema. A build parses each schema a handful of
// times (the flags once, a few manifests and configs), so it only ever pays the compiling: the
// interpreted path is ~7 ms less CPU per start (measured on the bundle, 21 runs interleaved), the
// same checks and the same errors. The setting is zod's own process-wide config; kiln sets it here
// only, at the entry point.
import { z } from 'zod';

z.config({ jitless: true });
