// One kiln registry operation in a fresh process, for bench/registry-bench.mjs, which bundles this file
// with esbuild first (as `npm run build` bundles the executor): kiln is timed as it ships, one file to
// load, not ~100 modules. Prints the milliseconds spent after start-up.
//   node registry-child.cjs push SPEC.json REF | pull REF DIR | pull-layout REF DIR
import { readFileSync } from 'node:fs';
import { FileLayer } from '../dist/blob/layer-file.js';
import { SecretMask } from '../dist/log/logger.js';
import { assembleImage } from '../dist/oci/assemble.js';
import { parseReference } from '../dist/oci/reference.js';
import { RegistryClient } from '../dist/registry/client.js';
import { anonymousKeychain } from '../dist/registry/keychain.js';
import { writeOciLayout } from '../dist/sinks/layout-sink.js';
import { pushImage } from '../dist/sinks/registry-sink.js';
import { pullImage } from '../dist/sources/registry-source.js';
import { prefetchLayers, spoolingImage } from '../dist/sources/registry-spool.js';

const ctx = () => ({
  log: { debug() {}, info() {}, warn(m) { process.stderr.write(`${m}\n`); }, error(m) { process.stderr.write(`${m}\n`); } },
  signal: new AbortController().signal,
});

// CommonJS once bundled: no top-level await.
async function main() {
  const [op, a, b] = process.argv.slice(2);
  const started = process.hrtime.bigint();
  const client = new RegistryClient({ ctx: ctx(), keychain: anonymousKeychain, mask: new SecretMask(), retries: 0 });
  const concurrency = process.env.KILN_BENCH_CONCURRENCY ? { concurrency: Number(process.env.KILN_BENCH_CONCURRENCY) } : {};
  const platform = { os: 'linux', architecture: 'amd64' };
  if (op === 'push') {
    // The benchmark image, rebuilt from its spec: same bytes, same digests.
    const spec = JSON.parse(readFileSync(a, 'utf8'));
    const image = assembleImage({ family: 'oci', config: spec.config, layers: spec.layers.map((l) => new FileLayer(l)) });
    await pushImage(client, image, [parseReference(b)], ctx(), { concurrency: 3, ...concurrency });
  } else if (op === 'pull') {
    // What a build does with a base image before unpacking it: spool every layer, verified, to disk.
    const img = await pullImage(client, parseReference(a), { platform });
    await prefetchLayers(spoolingImage(img, { dir: b, ctx: ctx(), ...concurrency }));
  } else if (op === 'pull-layout') {
    const img = await pullImage(client, parseReference(a), { platform });
    await writeOciLayout(img, b, { ctx: ctx(), refName: 'img' });
  } else {
    throw new Error(`unknown operation ${op}`);
  }
  client.close();
  process.stdout.write(`${Number(process.hrtime.bigint() - started) / 1e6}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
