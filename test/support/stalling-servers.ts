// Peers that stop answering, for the bounded-wait tests: a TCP server that accepts and never says a
// word (a hung proxy), and an HTTP server whose handler decides per request how far it gets before it
// goes quiet. Both count what they received, so a test can see that kiln retried.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Socket } from 'node:net';

export interface SilentServer {
  /** `127.0.0.1:PORT`. */
  readonly host: string;
  /** Connections accepted so far. */
  connections(): number;
  stop(): Promise<void>;
}

export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((s) => {
    count++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    host: `127.0.0.1:${address.port}`,
    connections: () => count,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** What the handler does with a request: answer it, or leave it hanging (return without ending). */
export type StallingHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface StallingServer {
  readonly host: string;
  /** `METHOD path` of every request received. */
  readonly requests: string[];
  stop(): Promise<void>;
}

export async function startStallingServer(handler: StallingHandler): Promise<StallingServer> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method ?? '?'} ${req.url ?? '?'}`);
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    host: `127.0.0.1:${address.port}`,
    requests,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
