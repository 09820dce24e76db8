// Loads a cloud vendor's module only when a build needs it. In the bundle (dist/bundle/kiln.cjs) each is a
// file of its own beside it (kiln-aws.cjs, kiln-gcp.cjs, kiln-azure.cjs: scripts/bundle.mjs), required
// on first use, so that the SDKs cost a build that uses no cloud nothing: neither start-up time (no
// source to read, compile or initialise) nor memory. From dist/ (tsc) or the tests, a dynamic import.
// The executor image ships them brotli-compressed (`kiln-aws.cjs.br`, ...: 2.9 MB become 0.6 MB of its
// unpacked size, which has a target; ~5 ms to decompress), run here as Node runs a CommonJS file.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { brotliDecompressSync } from 'node:zlib';

/** Set by scripts/bundle.mjs (esbuild `define`) in the bundle only; elsewhere an undeclared name. */
declare const __KILN_BUNDLED__: boolean | undefined;

export type AwsModule = typeof import('./aws.js');
export type GcpModule = typeof import('./gcp.js');
export type AzureModule = typeof import('./azure.js');

function bundled(): boolean {
  return typeof __KILN_BUNDLED__ === 'boolean' && __KILN_BUNDLED__;
}

type ModuleWrapper = (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;

function requireBeside<T>(file: string): T {
  const path = fileURLToPath(new URL(`./${file}`, import.meta.url));
  const req = createRequire(path);
  let packed: Buffer;
  try {
    packed = readFileSync(`${path}.br`);
  } catch {
    return req(path) as T;
  }
  const source = brotliDecompressSync(packed).toString('utf8');
  const module = { exports: {} };
  const wrapper = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, { filename: path }).runInThisContext() as ModuleWrapper;
  wrapper(module.exports, req, module, path, dirname(path));
  return module.exports as T;
}

export async function loadAws(): Promise<AwsModule> {
  return bundled() ? requireBeside<AwsModule>('kiln-aws.cjs') : import('./aws.js');
}

export async function loadGcp(): Promise<GcpModule> {
  return bundled() ? requireBeside<GcpModule>('kiln-gcp.cjs') : import('./gcp.js');
}

export async function loadAzure(): Promise<AzureModule> {
  return bundled() ? requireBeside<AzureModule>('kiln-azure.cjs') : import('./azure.js');
}
