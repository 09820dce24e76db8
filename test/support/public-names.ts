// Loopback stand-ins under public host names (login.microsoftonline.com, NAME.azurecr.io,
// oauth2.googleapis.com, ...), for the cloud logins whose SDKs go to a fixed address over TLS whatever
// a setting says. One https server on ADDRESS:443 answers every name (a certificate with all of them,
// from a CA made here with openssl), dispatching on the Host header; the kiln process under test runs
// in a private mount namespace whose /etc/hosts (bind-mounted from a file of this helper's) maps
// those names to ADDRESS, so nothing else on the machine sees them. It trusts the CA through
// NODE_EXTRA_CA_CERTS, which every TLS client in Node (the SDKs', fetch) adds to its roots.
// Each test file takes a loopback address of its own (127.0.0.0/8 is all loopback), so that two files
// running at once both have their port 443.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Answers one request to a public name; `body` is the whole request body. */
export type NameHandler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void | Promise<void>;

export interface PublicNames {
  /** The CA's certificate: NODE_EXTRA_CA_CERTS, and `--registry-certificate HOST=` where wanted. */
  readonly caPath: string;
  /** The hosts file the kiln process sees as /etc/hosts. */
  readonly hostsPath: string;
  /** Every request seen, `METHOD host/path` (query included), in order. */
  readonly seen: string[];
  stop(): Promise<void>;
}

/**
 * Why this machine cannot run kiln under private names (not root, no unshare, no mount in a new mount
 * namespace, port 443 of `address` taken), or undefined when it can.
 */
export async function privateHostsUnavailable(address: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root: binding port 443 and mounting over /etc/hosts need it';
  try {
    await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts']);
  } catch (err) {
    return `unshare --mount cannot bind-mount /etc/hosts here: ${(err as Error).message.split('\n')[0] ?? ''}`;
  }
  const probe = createServer();
  try {
    await new Promise<void>((ok, fail) => {
      probe.once('error', fail);
      probe.listen(443, address, ok);
    });
  } catch (err) {
    return `cannot listen on ${address}:443: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  } finally {
    await new Promise((ok) => probe.close(ok));
  }
  return undefined;
}

/** argv run with /etc/hosts replaced by `hostsPath`, in a mount namespace of its own. */
export function withPrivateHosts(hostsPath: string, argv: readonly string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hostsPath, ...argv];
}

/** A CA, and a server certificate it signed for `names`, in `dir`. */
async function certificateFor(dir: string, names: readonly string[]): Promise<{ caPath: string; certPath: string; keyPath: string }> {
  const p = (f: string): string => join(dir, f);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca-key.pem'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=kiln public-names test CA']);
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('key.pem'), '-out', p('cert.csr'), '-subj', `/CN=${names[0] ?? 'localhost'}`]);
  await writeFile(p('cert.ext'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  await run('openssl', ['x509', '-req', '-in', p('cert.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca-key.pem'), '-CAcreateserial', '-out', p('cert.pem'), '-days', '2', '-extfile', p('cert.ext')]);
  return { caPath: p('ca.pem'), certPath: p('cert.pem'), keyPath: p('key.pem') };
}

/** Serves `handlers` (host name -> handler) on `address`:443 over TLS, and writes the hosts file for them. */
export async function startPublicNames(address: string, handlers: Readonly<Record<string, NameHandler>>): Promise<PublicNames> {
  const names = Object.keys(handlers);
  const dir = await mkdtemp(join(tmpdir(), 'kiln-public-names-'));
  const { caPath, certPath, keyPath } = await certificateFor(dir, names);
  const hostsPath = join(dir, 'hosts');
  await writeFile(hostsPath, ['127.0.0.1 localhost', ...names.map((n) => `${address} ${n}`), ''].join('\n'));
  const seen: string[] = [];
  const server: Server = createServer({ cert: await readFile(certPath), key: await readFile(keyPath) }, (req, res) => {
    const host = (req.headers.host ?? '').replace(/:443$/, '');
    seen.push(`${req.method ?? 'GET'} ${host}${req.url ?? '/'}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const handler = handlers[host];
      if (handler === undefined) {
        res.writeHead(421, { 'content-type': 'text/plain' }).end(`no stand-in for ${host}\n`);
        return;
      }
      Promise.resolve(handler(req, Buffer.concat(chunks), res)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`stand-in for ${host} failed: ${(err as Error).message}\n`);
      });
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(443, address, ok);
  });
  return {
    caPath,
    hostsPath,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
