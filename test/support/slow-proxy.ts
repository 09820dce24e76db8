// A TCP proxy that passes bytes on at a fixed rate each way: a registry on a slow link, so downloads
// and uploads last long enough for their progress to be seen.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SlowProxy {
  /** `127.0.0.1:PORT`: use it in image references instead of the registry's host. */
  readonly host: string;
  stop(): Promise<void>;
}

/** At most `bytesPerSecond` per connection and direction, in slices every 50 ms. */
function throttle(bytesPerSecond: number): Transform {
  const slice = Math.max(1, Math.floor(bytesPerSecond / 20));
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      void (async () => {
        for (let at = 0; at < chunk.length; at += slice) {
          this.push(chunk.subarray(at, at + slice));
          await sleep(50);
        }
        cb();
      })();
    },
  });
}

export async function startSlowProxy(target: string, bytesPerSecond: number): Promise<SlowProxy> {
  const [targetHost, targetPort] = target.split(':');
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(targetPort), targetHost ?? '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(throttle(bytesPerSecond)).pipe(upstream);
    upstream.pipe(throttle(bytesPerSecond)).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
