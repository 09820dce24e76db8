// Starts Debian's docker-registry (distribution v2) on a free loopback port, storage in a temp dir.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { get as httpsGet } from 'node:https';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHtpasswd } from './htpasswd.js';

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, as used in image references. */
  readonly host: string;
  /** `http://127.0.0.1:PORT` (or https). */
  readonly url: string;
  readonly dir: string;
  /** Request lines (`POST /v2/x/blobs/uploads/ 202`) seen so far; only with `accessLog: true`. */
  requests(): readonly AccessLogEntry[];
  /** Stops the process but keeps its storage, as a crash or a restart would. */
  kill(): Promise<void>;
  /** Starts it again on the same address with the same storage (after `kill`). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface AccessLogEntry {
  readonly method: string;
  readonly path: string;
  readonly status: number;
}

/** `auth: htpasswd:` with bcrypt entries for these users. */
export interface HtpasswdAuth {
  readonly kind: 'htpasswd';
  readonly users: Readonly<Record<string, string>>;
}

/** `auth: token:` trusting tokens signed by the certificate at `rootCertBundle` (see token-server.ts). */
export interface TokenAuth {
  readonly kind: 'token';
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly rootCertBundle: string;
}

export interface RegistryOptions {
  /** Extra top-level YAML sections (e.g. an `auth:` block), appended verbatim. */
  readonly extraConfig?: string;
  /** `http:` sub-keys appended under `http:` (e.g. `tls:` settings), indented by the caller by 2 spaces. */
  readonly extraHttp?: string;
  readonly scheme?: 'http' | 'https';
  readonly auth?: HtpasswdAuth | TokenAuth;
  /** Serve https with this certificate and key (implies `scheme: 'https'`). */
  readonly tls?: { readonly certPath: string; readonly keyPath: string };
  /** Capture the access log, for tests that count requests (`requests()`). */
  readonly accessLog?: boolean;
  /** `tls.clientcas`: require client certificates signed by these CAs (mutual TLS). */
  readonly clientCas?: readonly string[];
}

async function authConfig(auth: HtpasswdAuth | TokenAuth, dir: string): Promise<string> {
  switch (auth.kind) {
    case 'htpasswd': {
      const path = join(dir, 'htpasswd');
      await writeHtpasswd(path, auth.users);
      return ['auth:', '  htpasswd:', '    realm: kiln-test', `    path: ${path}`].join('\n');
    }
    case 'token':
      return [
        'auth:',
        '  token:',
        `    realm: ${auth.realm}`,
        `    service: ${auth.service}`,
        `    issuer: ${auth.issuer}`,
        `    rootcertbundle: ${auth.rootCertBundle}`,
      ].join('\n');
  }
}

// Apache combined format, as distribution's access log writes it.
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** GET over https without verifying the (test, self-signed) certificate; resolves the status. */
function probeTls(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl, for `tls:`. */
export async function selfSignedCertificate(dir: string): Promise<{ certPath: string; keyPath: string }> {
  const certPath = join(dir, 'tls-cert.pem');
  const keyPath = join(dir, 'tls-key.pem');
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return { certPath, keyPath };
}

export interface TestPki {
  /** The CA that signed both certificates, for `--registry-certificate`. */
  readonly caPath: string;
  /** Server certificate for 127.0.0.1 and localhost. */
  readonly server: { readonly certPath: string; readonly keyPath: string };
  /** Client certificate for mutual TLS (`--registry-client-cert`). */
  readonly client: { readonly certPath: string; readonly keyPath: string };
}

/** A private CA with a server and a client certificate, made with openssl in `dir`. */
export async function testPki(dir: string): Promise<TestPki> {
  const run = promisify(execFile);
  const p = (name: string): string => join(dir, name);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca-key.pem'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=kiln test CA']);
  const issue = async (name: string, subj: string, ext: string): Promise<void> => {
    await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${name}-key.pem`), '-out', p(`${name}.csr`), '-subj', subj]);
    await writeFile(p(`${name}.ext`), ext);
    await run('openssl', [
      'x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca-key.pem'), '-CAcreateserial',
      '-out', p(`${name}.pem`), '-days', '2', '-extfile', p(`${name}.ext`),
    ]);
  };
  await issue('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  await issue('client', '/CN=kiln-client', 'extendedKeyUsage=clientAuth\n');
  return {
    caPath: p('ca.pem'),
    server: { certPath: p('server.pem'), keyPath: p('server-key.pem') },
    client: { certPath: p('client.pem'), keyPath: p('client-key.pem') },
  };
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const scheme = opts.tls !== undefined ? 'https' : (opts.scheme ?? 'http');
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    `    disabled: ${opts.accessLog === true ? 'false' : 'true'}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    ...(opts.tls !== undefined ? ['  tls:', `    certificate: ${opts.tls.certPath}`, `    key: ${opts.tls.keyPath}`] : []),
    ...(opts.tls !== undefined && opts.clientCas !== undefined ? ['    clientcas:', ...opts.clientCas.map((c) => `      - ${c}`)] : []),
    ...(opts.extraHttp !== undefined ? [opts.extraHttp] : []),
    ...(opts.auth !== undefined ? [await authConfig(opts.auth, dir)] : []),
    ...(opts.extraConfig !== undefined ? [opts.extraConfig] : []),
    '',
  ].join('\n');
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, config);
  const accessLog: AccessLogEntry[] = [];
  const url = `${scheme}://${host}`;
  let current = await spawnRegistry(configPath, host, url, scheme, opts.accessLog === true, accessLog);
  return {
    host,
    url,
    dir,
    requests: () => [...accessLog],
    kill: () => current.kill(),
    async restart() {
      await current.kill();
      current = await spawnRegistry(configPath, host, url, scheme, opts.accessLog === true, accessLog);
    },
    async stop() {
      await current.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

interface RegistryProcess {
  kill(): Promise<void>;
}

async function spawnRegistry(
  configPath: string,
  host: string,
  url: string,
  scheme: string,
  withAccessLog: boolean,
  accessLog: AccessLogEntry[],
): Promise<RegistryProcess> {
  const child: ChildProcess = spawn('docker-registry', ['serve', configPath], {
    stdio: ['ignore', withAccessLog ? 'pipe' : 'ignore', 'pipe'],
  });
  let pending = '';
  child.stdout?.on('data', (b: Buffer) => {
    const lines = (pending + b.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const m = ACCESS_LINE.exec(line);
      if (m !== null) accessLog.push({ method: m[1] ?? '', path: m[2] ?? '', status: Number(m[3]) });
    }
  });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      const status = scheme === 'https' ? await probeTls(`${url}/v2/`) : (await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) })).status;
      if (status === 200 || status === 401) break;
    } catch {
      // not listening yet (or, with mutual TLS, listening but refusing us: the port check below says which)
      if (scheme === 'https' && (await listening(host))) break;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
    },
  };
}

/** Whether something accepts TCP connections at `host` (`127.0.0.1:PORT`). */
function listening(host: string): Promise<boolean> {
  const colon = host.lastIndexOf(':');
  return new Promise((resolve) => {
    const sock = connect({ host: host.slice(0, colon), port: Number(host.slice(colon + 1)) });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
