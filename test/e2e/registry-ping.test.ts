// A build that pulls its base from the registry it pushes to pings that registry once: the pull and
// the push client share what `GET /v2/` found (src/registry/transport.ts, EndpointCache), and https and
// plain http are asked at once for a registry that may speak either. Seen through a proxy in front of
// the real registry, which records every request.
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../registry/fault-proxy.js';
import { executor, writeContext } from '../support/executor.js';

describe('registry pings', () => {
  const registry = inject('registry');
  const images = inject('images');
  let ctx: string;
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy(registry);
    // The suite's busybox, reached through the proxy.
    const base = images.busybox.replace(registry, proxy.host);
    ctx = await writeContext({ Dockerfile: [`FROM ${base}`, 'RUN echo pinged > /p.txt', ''].join('\n') });
  });

  afterAll(async () => {
    await proxy?.stop();
    await rm(ctx, { recursive: true, force: true });
  });

  it('asks GET /v2/ once for the base pulled from and the image pushed to one registry', async () => {
    const r = await executor(['--context', `dir://${ctx}`, '--destination', `${proxy.host}/e2e/ping:1`, '--insecure', '--insecure-pull', '-v', 'debug']);
    expect(r.code, r.stderr).toBe(0);
    const pings = proxy.requests.filter((q) => q.method === 'GET' && q.path === '/v2/');
    expect(pings, JSON.stringify(proxy.requests)).toHaveLength(1);
    expect(r.stderr.match(/registry \S+ speaks http\b/g)).toHaveLength(1);
    // Both clients did use the registry: the base's manifest and the pushed one.
    expect(proxy.requests.some((q) => q.method === 'GET' && q.path.includes('/manifests/'))).toBe(true);
    expect(proxy.requests.some((q) => q.method === 'PUT' && q.path === '/v2/e2e/ping/manifests/1')).toBe(true);
  });
});
