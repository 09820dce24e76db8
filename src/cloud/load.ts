// Loads a cloud vendor's module only when a build needs it. In the bundle (dist/bundle/kiln.cjs) each is a
// file of its own beside it (kiln-aws.cjs, kiln-gcp.cjs, kiln-azure.cjs: scripts/bundle.mjs), required
// on first use, so that the SDKs cost a build that uses no cloud nothing: neither start-up time (no
// source to read, compile or initialise) nor memory. From dist/ (tsc) or the tests, a dynamic import.
import { createRequire } from 'node:module';

/** Set by scripts/bundle.mjs (esbuild `define`) in the bundle only; elsewhere an undeclared name. */
declare const __KILN_BUNDLED__: boolean | undefined;

export type AwsModule = typeof import('./aws.js');
export type GcpModule = typeof import('./gcp.js');
export type AzureModule = typeof import('./azure.js');

function bundled(): boolean {
  return typeof __KILN_BUNDLED__ === 'boolean' && __KILN_BUNDLED__;
}

function requireBeside<T>(file: string): T {
  return createRequire(import.meta.url)(`./${file}`) as T;
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
