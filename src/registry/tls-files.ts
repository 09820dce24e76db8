// Reads the per-registry TLS files of `--registry-certificate registry=ca.pem` and
// `--registry-client-cert registry=cert.pem,key.pem` once, before the build, so a wrong path fails in
// a second with the flag that named it rather than at the first request.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.js';
import type { RegistryTls } from './transport.js';

export interface ClientCertificatePaths {
  readonly cert: string;
  readonly key: string;
}

export async function loadRegistryTls(
  caPaths: ReadonlyMap<string, string>,
  clientCerts: ReadonlyMap<string, ClientCertificatePaths>,
): Promise<ReadonlyMap<string, RegistryTls>> {
  const out = new Map<string, { ca?: Buffer; cert?: Buffer; key?: Buffer }>();
  const entry = (host: string): { ca?: Buffer; cert?: Buffer; key?: Buffer } => {
    let e = out.get(host);
    if (e === undefined) {
      e = {};
      out.set(host, e);
    }
    return e;
  };
  for (const [host, path] of caPaths) entry(host).ca = await readPem('--registry-certificate', host, path);
  for (const [host, paths] of clientCerts) {
    const e = entry(host);
    e.cert = await readPem('--registry-client-cert', host, paths.cert);
    e.key = await readPem('--registry-client-cert', host, paths.key);
  }
  return out;
}

async function readPem(flag: string, host: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new UsageError(`${flag} ${host}=${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}
