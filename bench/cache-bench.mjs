// The layer cache in a CI-like rebuild: a fresh machine each time (no local state), the cache in the
// registry. kiln's `--cache --cache-repo` against buildah's `--layers --cache-from --cache-to` (the same
// idea in buildah: layers kept as images in a registry repo), each with a new store per build.
// The Dockerfile has slow RUN steps (the "dependencies") and a COPY of a file that changes before every
// timed build (the "code"): a rebuild should take the RUN layers from the cache and redo the COPY.
// Started by bench/run.sh after build-bench.mjs (whose busybox base it builds FROM):
//   node bench/cache-bench.mjs --registry HOST:PORT --work DIR
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { registry: { type: 'string' }, work: { type: 'string' } } });
const registry = args.registry ?? fail('--registry HOST:PORT is required');
const work = args.work ?? fail('--work DIR is required');
const rounds = Number(process.env.KILN_BENCH_ROUNDS ?? 3);

function fail(msg) {
  console.error(`cache-bench: ${msg}`);
  process.exit(1);
}

const ctx = join(work, 'cache-context');
rmSync(ctx, { recursive: true, force: true });
mkdirSync(ctx, { recursive: true });
writeFileSync(
  join(ctx, 'Dockerfile'),
  [
    `FROM ${registry}/bench/busybox:base`,
    // Three "dependency" steps: CPU and a few MB each, as an install would take.
    ...[1, 2, 3].map((i) => `RUN mkdir -p /opt && for n in $(seq 1 40); do head -c 250000 /dev/urandom | md5sum; done > /opt/deps${i}.txt && dd if=/dev/urandom of=/opt/deps${i}.bin bs=1M count=8 2>/dev/null`),
    'COPY app.txt /app/app.txt',
    '',
  ].join('\n'),
);

function timed(label, argv) {
  const started = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) {
    console.error(`${r.stdout}\n${r.stderr}`.split('\n').slice(-30).join('\n'));
    fail(`${label} failed (exit ${r.status})`);
  }
  return { wall, log: `${r.stderr}` };
}

function kiln(round, build) {
  const dest = `${registry}/bench/cache-kiln-${round}:${build}`;
  return timed(`kiln ${build}`, ['node', 'bin/executor.js', '--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull', '--cache', '--cache-repo', `${registry}/bench/cache-kiln-${round}-layers`]);
}

function buildah(round, build) {
  // A new store each time: what a CI job on a fresh machine has.
  const store = join(work, 'buildah-cache-store');
  rmSync(store, { recursive: true, force: true });
  const g = `--root ${store}/root --runroot ${store}/run --storage-driver vfs`;
  const dest = `${registry}/bench/cache-buildah-${round}:${build}`;
  const cache = `${registry}/bench/cache-buildah-${round}-layers`;
  const script = `buildah ${g} bud --isolation chroot --tls-verify=false --layers --cache-from ${cache} --cache-to ${cache} -q -t ${dest} ${ctx} && buildah ${g} push --tls-verify=false -q ${dest} docker://${dest}`;
  try {
    return timed(`buildah ${build}`, ['sh', '-c', script]);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const samples = { kiln: { cold: [], warm: [] }, buildah: { cold: [], warm: [] } };
const hits = { kiln: [], buildah: [] };
console.log(`cache-bench: ${rounds} rounds, cold build then rebuild after a code change, kiln and buildah in turn`);
for (let round = 1; round <= rounds; round++) {
  for (const [tool, run] of round % 2 === 1 ? [['kiln', kiln], ['buildah', buildah]] : [['buildah', buildah], ['kiln', kiln]]) {
    writeFileSync(join(ctx, 'app.txt'), `code of round ${round}, first build\n`);
    const cold = run(round, 'cold');
    writeFileSync(join(ctx, 'app.txt'), `code of round ${round}, changed\n`);
    const warm = run(round, 'warm');
    samples[tool].cold.push(cold.wall);
    samples[tool].warm.push(warm.wall);
    // Proof that the rebuild used the cache: kiln says so per step; buildah's -q prints nothing, so
    // its rebuild is checked by time only (and its cache repo's tags below).
    if (tool === 'kiln') hits.kiln.push((warm.log.match(/Using caching version of cmd: RUN/g) ?? []).length);
    console.log(`  round ${round} ${tool.padEnd(8)} cold ${cold.wall.toFixed(2).padStart(6)} s, rebuild ${warm.wall.toFixed(2).padStart(6)} s`);
  }
}
if (hits.kiln.some((n) => n !== 3)) fail(`kiln's rebuilds did not take all 3 RUNs from the cache: ${hits.kiln.join(', ')}`);
const tags = execFileSync('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry}/bench/cache-buildah-1-layers`]).toString();
const buildahCached = JSON.parse(tags).Tags.length;

const k = { cold: median(samples.kiln.cold), warm: median(samples.kiln.warm) };
const b = { cold: median(samples.buildah.cold), warm: median(samples.buildah.warm) };
const f2 = (n) => n.toFixed(2);
const text = [
  `layer cache in the registry, fresh store per build; ${rounds} rounds, medians (buildah's cache repo held ${buildahCached} entries)`,
  '',
  '| build | kiln s | buildah s | kiln/buildah |',
  '|---|---:|---:|---:|',
  `| cold (empty cache) | ${f2(k.cold)} | ${f2(b.cold)} | ${f2(k.cold / b.cold)} |`,
  `| rebuild after a code change (3 RUNs cached, COPY redone) | ${f2(k.warm)} | ${f2(b.warm)} | ${f2(k.warm / b.warm)} |`,
  '',
].join('\n');
console.log(`\n${text}`);
const out = join(REPO, 'bench', 'results');
mkdirSync(out, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
writeFileSync(join(out, `cache-${stamp}.md`), text);
writeFileSync(join(out, `cache-${stamp}.json`), JSON.stringify({ rounds, samples, hits, buildahCached }, null, 2));
console.log(`cache-bench: results in bench/results/cache-${stamp}.{md,json}`);
