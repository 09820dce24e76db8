// A small HTTP proxy in front of a real docker-registry that injects faults: the registry behind it is
// real, only the answers the test names are replaced. Every request is recorded with whether it
// carried credentials.
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly authorized: boolean;
  readonly contentLength: number | undefined;
}

/** A canned answer instead of the registry's. */
export interface FaultAnswer {
  readonly status: number;
  /** Close the connection instead of answering (a registry that died on the request). */
  readonly drop?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** Decides, per request (numbered from 0), whether to answer it instead of the registry. */
export type Fault = (req: ProxiedRequest, n: number) => FaultAnswer | undefined;

export interface FaultProxy {
  /** `127.0.0.1:PORT` to use in references. */
  readonly host: string;
  readonly requests: ProxiedRequest[];
  fault: Fault | undefined;
  stop(): Promise<void>;
}

export async function startFaultProxy(target: string, fault?: Fault): Promise<FaultProxy> {
  const requests: ProxiedRequest[] = [];
  const colon = target.lastIndexOf(':');
  const proxy: { fault: Fault | undefined } = { fault };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const cl = req.headers['content-length'];
    const rec: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      authorized: req.headers.authorization !== undefined,
      contentLength: cl === undefined ? undefined : Number(cl),
    };
    const n = requests.length;
    requests.push(rec);
    const answer = proxy.fault?.(rec, n);
    if (answer?.drop === true) {
      req.socket.destroy();
      return;
    }
    if (answer !== undefined) {
      req.resume();
      res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
      res.end(answer.body ?? '');
      return;
    }
    const upstream = httpRequest(
      { host: target.slice(0, colon), port: Number(target.slice(colon + 1)), method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    get fault() {
      return proxy.fault;
    },
    set fault(f: Fault | undefined) {
      proxy.fault = f;
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A distribution-spec error body. */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ errors: [{ code, message }] });
}
