// Soak and fault run (issue 14, item 5): many kiln builds against one docker-registry and one layer-cache
// repo while the registry is killed (SIGKILL) and restarted at random moments. Not part of `npm test`:
//   npm run bench:soak         (compiles kiln, then runs this file)
//   node bench/soak.mjs [--work DIR] [--keep]
// Reports builds that succeeded, failed cleanly (non-zero exit, one `error building image:` line and
// nothing else alarming on stderr), failed otherwise (a stack trace, a second error line, a hang), and
// tags that hold a wrong or partial image. Every tag in the registry is read back afterwards: manifest,
// config and every layer fetched, sizes and digests checked, each layer's uncompressed digest against
// the config's diff_ids, and for a build's own tag the files the build wrote and the digest kiln
// reported. Then what is left: files in the builds' TMPDIR, kiln-rootfs mounts or mounts under the work
// dir, processes carrying the run's marker in their environment (kiln or anything a RUN started).
// Environment: KILN_SOAK_SERIAL=50 (builds one after another), KILN_SOAK_PARALLEL=50 (builds 6 at a
// time), KILN_SOAK_JOBS=6, KILN_SOAK_SEED (the chaos schedule's seed), KILN_SOAK_TIMEOUT_S=300,
// KILN_SOAK_RETRY_FLAGS (default `--push-retry 4 --image-download-retry 4`; empty: kaniko's no retries).
// Run as root: kiln's sandbox mode needs it, as in the test suite.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { makeBases } from './bases.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { work: { type: 'string' }, keep: { type: 'boolean' } } });
const work = resolve(args.work ?? join('/tmp', `kiln-soak-${process.pid}`));
const SERIAL = Number(process.env.KILN_SOAK_SERIAL ?? 50);
const PARALLEL = Number(process.env.KILN_SOAK_PARALLEL ?? 50);
const JOBS = Number(process.env.KILN_SOAK_JOBS ?? 6);
const TIMEOUT_MS = Number(process.env.KILN_SOAK_TIMEOUT_S ?? 300) * 1000;
const SEED = Number(process.env.KILN_SOAK_SEED ?? Date.now() % 1_000_000);
// Every process of this run (kiln and whatever its RUNs start) carries this in its environment.
// kiln backs off 0.2, 0.4, 0.8, 1.6 s: four retries outlast most of the registry's 0.2-3 s outages.
const RETRY_FLAGS = (process.env.KILN_SOAK_RETRY_FLAGS ?? '--push-retry 4 --image-download-retry 4').split(' ').filter((s) => s !== '');
const MARKER = `kiln-soak-${randomBytes(6).toString('hex')}`;

const log = (msg) => console.log(`soak: ${msg}`);

// A small seeded PRNG (mulberry32): the same seed gives the same chaos schedule.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(SEED);
const between = (lo, hi) => lo + (hi - lo) * rand();

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// ---- the registry: one data dir, one port, killed and started again -----------------------------------
class Registry {
  constructor(dir, port) {
    this.dir = dir;
    this.host = `127.0.0.1:${port}`;
    this.child = undefined;
    this.kills = 0;
    mkdirSync(dir, { recursive: true });
    this.config = join(dir, 'registry.yml');
    writeFileSync(
      this.config,
      ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, '  delete:', '    enabled: true', 'http:', `  addr: ${this.host}`, ''].join('\n'),
    );
  }

  async start() {
    // Not given the marker: the registry is not kiln's and is stopped by this script.
    const env = { ...process.env };
    this.child = spawn('docker-registry', ['serve', this.config], { stdio: ['ignore', 'ignore', 'ignore'], env });
    const exited = new Promise((res) => this.child.once('exit', res));
    this.exited = exited;
    for (let i = 0; i < 200; i++) {
      if (await fetch(`http://${this.host}/v2/`).then((r) => r.ok, () => false)) return;
      await sleep(50);
    }
    throw new Error(`docker-registry did not answer on ${this.host}`);
  }

  async kill() {
    if (this.child === undefined) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
    this.kills++;
  }

  async stop() {
    if (this.child === undefined) return;
    this.child.kill('SIGTERM');
    await this.exited;
    this.child = undefined;
  }
}

/** Kills the registry at random moments (every 2-12 s) and starts it again after 0.2-3 s down. */
function chaos(registry, stop) {
  const events = [];
  const done = (async () => {
    while (!stop.aborted) {
      await sleep(between(2000, 12000), undefined, { signal: stop }).catch(() => undefined);
      if (stop.aborted) break;
      await registry.kill();
      const down = between(200, 3000);
      events.push({ at: new Date().toISOString(), downMs: Math.round(down) });
      await sleep(down);
      await registry.start();
    }
  })();
  return { events, done };
}

// ---- one build ---------------------------------------------------------------------------------------
function dockerfile(base) {
  return [
    `FROM ${base}`,
    `ENV KILN_SOAK=${MARKER}`,
    // The same in every build: a cache hit once any build has pushed it.
    'RUN mkdir -p /opt && seq 1 20000 > /opt/common.txt && head -c 400000 /dev/urandom > /opt/common.bin',
    'ARG N',
    // Differs per build (the ARG is in its key), and leaves a process behind that kiln must not.
    'RUN echo "build $N" > /opt/n.txt && head -c 1500000 /dev/urandom > /opt/rand-$N.bin && (sleep 900 > /dev/null 2>&1 &) && echo started',
    'COPY app.txt /app/app.txt',
    '',
  ].join('\n');
}

function runBuild({ name, ctx, dest, cacheRepo, tmp, digestFile }) {
  const timeFile = join(work, 'time', `${name}.txt`);
  const argv = [
    '-f', '%M', '-o', timeFile,
    'node', join(REPO, 'bin/executor.js'),
    '--context', `dir://${ctx}`, '--destination', dest, '--insecure', '--insecure-pull',
    '--cache', '--cache-repo', cacheRepo, '--build-arg', `N=${name}`, '--digest-file', digestFile,
    ...RETRY_FLAGS,
  ];
  return new Promise((res) => {
    const started = Date.now();
    const child = spawn('/usr/bin/time', argv, { cwd: REPO, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: tmp, KILN_SOAK: MARKER } });
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b.toString()));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      try { process.kill(-child.pid, 'SIGKILL'); } catch {}
    }, TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      const rssKiB = Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)) || 0;
      res({ name, dest, code, hung, stderr, wallS: (Date.now() - started) / 1000, rssKiB, digest: existsSync(digestFile) ? readFileSync(digestFile, 'utf8').trim() : undefined });
    });
  });
}

/** succeeded | clean (one error line, nothing else amiss) | unclean (why) */
function classify(r) {
  const lines = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Command exited with non-zero status'));
  const alarming = lines.filter((l) => /^\s+at |Unhandled|uncaught|MaxListeners|Warning: |node:internal|FATAL|Segmentation/i.test(l));
  if (r.hung) return { kind: 'unclean', why: `still running after ${TIMEOUT_MS / 1000} s` };
  if (r.code === 0) return alarming.length === 0 ? { kind: 'succeeded' } : { kind: 'unclean', why: `exit 0 but: ${alarming[0]}` };
  const errors = lines.filter((l) => l.startsWith('error building image: '));
  if (errors.length === 1 && alarming.length === 0 && lines.at(-1) === errors[0]) return { kind: 'clean', why: errors[0] };
  return { kind: 'unclean', why: `exit ${r.code}, ${errors.length} error lines; ${alarming[0] ?? lines.at(-1) ?? '(no stderr)'}` };
}

// ---- reading back what the registry holds -------------------------------------------------------------
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json';
const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(url, headers = {}) {
  const r = await fetch(url, { headers });
  if (!r.ok) throw Object.assign(new Error(`GET ${url}: ${r.status}`), { status: r.status });
  return { bytes: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

async function filesOf(layerTar) {
  const files = new Map();
  const ex = tar.extract();
  ex.on('entry', (h, stream, next) => {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      if (h.type === 'file') files.set(h.name.replace(/^\.?\//, ''), Buffer.concat(chunks));
      next();
    });
  });
  const done = new Promise((res, rej) => { ex.on('finish', res); ex.on('error', rej); });
  ex.end(layerTar);
  await done;
  return files;
}

/** Problems with REPO:TAG as an image (empty when whole and consistent), and its files. */
async function verifyTag(host, repo, tag) {
  const problems = [];
  const files = new Map();
  const base = `http://${host}/v2/${repo}`;
  let m;
  try {
    m = await get(`${base}/manifests/${tag}`, { accept: ACCEPT });
  } catch (err) {
    // Listed but unknown: the registry was killed between making the tag's directory and its link.
    // Nothing can be pulled by that name; it is a missing tag, not a wrong image.
    if (err.status === 404) return { problems: [], files, digest: undefined, absent: true };
    return { problems: [`manifest: ${err.message}`], files, digest: undefined };
  }
  const digest = sha256(m.bytes);
  if (m.headers.get('docker-content-digest') !== digest) problems.push(`manifest digest ${digest} but the registry says ${m.headers.get('docker-content-digest')}`);
  const manifest = JSON.parse(m.bytes.toString('utf8'));
  const blob = async (d) => {
    const b = await get(`${base}/blobs/${d.digest}`);
    if (b.bytes.length !== d.size) problems.push(`${d.digest}: ${b.bytes.length} bytes, descriptor says ${d.size}`);
    if (sha256(b.bytes) !== d.digest) problems.push(`${d.digest}: content digests to ${sha256(b.bytes)}`);
    return b.bytes;
  };
  try {
    const config = JSON.parse((await blob(manifest.config)).toString('utf8'));
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) problems.push(`${manifest.layers.length} layers, config has ${diffIds.length} diff_ids`);
    for (const [i, l] of manifest.layers.entries()) {
      const raw = await blob(l);
      const tarBytes = /gzip/.test(l.mediaType) ? gunzipSync(raw) : raw;
      if (sha256(tarBytes) !== diffIds[i]) problems.push(`layer ${i}: uncompressed digest ${sha256(tarBytes)}, diff_id ${diffIds[i]}`);
      for (const [k, v] of await filesOf(tarBytes)) files.set(k, v);
    }
  } catch (err) {
    problems.push(err.message);
  }
  return { problems, files, digest };
}

// ---- what is left on the machine ----------------------------------------------------------------------
function leftovers(tmpRoot) {
  const files = [];
  for (const d of readdirSync(tmpRoot)) for (const f of readdirSync(join(tmpRoot, d))) files.push(join(tmpRoot, d, f));
  // Only mounts under this run's dir: other builds on a shared machine have kiln-rootfs mounts of their own.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => (l.split(' ')[4] ?? '').startsWith(`${work}/`));
  const procs = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let environ;
    try { environ = readFileSync(`/proc/${p}/environ`, 'latin1'); } catch { continue; }
    if (!environ.split('\0').includes(`KILN_SOAK=${MARKER}`)) continue;
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1').replaceAll('\0', ' ').trim(); } catch {}
    let root = '';
    try { root = readlinkSync(`/proc/${p}/root`); } catch {}
    procs.push(`${p} ${cmd} (root ${root})`);
  }
  return { files, mounts, procs };
}

// ---- main ---------------------------------------------------------------------------------------------
rmSync(work, { recursive: true, force: true });
for (const d of ['ctx', 'tmp', 'time', 'digests', 'logs']) mkdirSync(join(work, d), { recursive: true });
const registry = new Registry(join(work, 'registry'), await freePort());
await registry.start();
const bases = makeBases({ work, registry: registry.host, needed: new Set(), log });
const cacheRepo = `${registry.host}/soak/cache`;
const load = [loadavg()[0]];
log(`${SERIAL} builds one after another, then ${PARALLEL} builds ${JOBS} at a time; registry ${registry.host}, killed at random (seed ${SEED})`);

function prepare(phase, i) {
  const name = `${phase}-${i}`;
  const ctx = join(work, 'ctx', name);
  mkdirSync(ctx, { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile(bases.busybox));
  writeFileSync(join(ctx, 'app.txt'), `app of ${name}: ${randomBytes(8).toString('hex')}\n`);
  const tmp = join(work, 'tmp', name);
  mkdirSync(tmp, { recursive: true });
  return { name, ctx, tmp, dest: `${registry.host}/soak/app:${name}`, cacheRepo, digestFile: join(work, 'digests', name) };
}

const results = [];
const stopChaos = new AbortController();
const storm = chaos(registry, stopChaos.signal);
const startedAt = Date.now();
const record = (r) => {
  r.verdict = classify(r);
  writeFileSync(join(work, 'logs', `${r.name}.log`), r.stderr);
  results.push(r);
  log(`${r.name.padEnd(12)} ${r.verdict.kind.padEnd(9)} ${r.wallS.toFixed(1).padStart(6)} s ${(r.rssKiB / 1024).toFixed(0).padStart(4)} MiB${r.verdict.why ? `  ${r.verdict.why.slice(0, 160)}` : ''}`);
};
for (let i = 1; i <= SERIAL; i++) record(await runBuild(prepare('serial', i)));
load.push(loadavg()[0]);
const queue = Array.from({ length: PARALLEL }, (_, i) => prepare('parallel', i + 1));
await Promise.all(
  Array.from({ length: JOBS }, async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) record(await runBuild(job));
  }),
);
load.push(loadavg()[0]);
const wallMin = (Date.now() - startedAt) / 60000;
stopChaos.abort();
await storm.done;
if (registry.child === undefined) await registry.start();
// The background cache pushes of the last builds are done (each build waits for its own before exiting).

// Every tag of the app repo and of the cache repo, read back.
const wrong = [];
const brokenOfFailed = [];
const verified = { app: 0, cache: 0, failedButPushed: 0, listedAbsent: 0 };
const byName = new Map(results.map((r) => [r.name, r]));
for (const repo of ['soak/app', 'soak/cache']) {
  const tags = (await get(`http://${registry.host}/v2/${repo}/tags/list`).then((r) => JSON.parse(r.bytes.toString('utf8')).tags, () => [])) ?? [];
  for (const tag of tags) {
    const v = await verifyTag(registry.host, repo, tag);
    if (v.absent) {
      verified.listedAbsent++;
      continue;
    }
    if (repo === 'soak/app') {
      const r = byName.get(tag);
      const ctx = join(work, 'ctx', tag);
      const want = new Map([['app/app.txt', readFileSync(join(ctx, 'app.txt'))], ['opt/n.txt', Buffer.from(`build ${tag}\n`)]]);
      for (const [path, bytes] of want) if (!v.files.get(path)?.equals(bytes)) v.problems.push(`${path} is not what build ${tag} wrote`);
      if (!v.files.has(`opt/rand-${tag}.bin`) || v.files.get(`opt/rand-${tag}.bin`).length !== 1500000) v.problems.push(`opt/rand-${tag}.bin missing or cut short`);
      if (r?.verdict.kind === 'succeeded' && r.digest !== v.digest) v.problems.push(`kiln reported ${r.digest}, the tag holds ${v.digest}`);
      if (r !== undefined && r.verdict.kind !== 'succeeded' && v.problems.length === 0) verified.failedButPushed++;
      verified.app++;
    } else verified.cache++;
    if (v.problems.length === 0) continue;
    // A build that failed saying so leaves a tag the user was told not to trust: counted apart.
    const r = repo === 'soak/app' ? byName.get(tag) : undefined;
    if (r !== undefined && r.verdict.kind !== 'succeeded') brokenOfFailed.push(`${repo}:${tag}: ${v.problems.join('; ')}`);
    else wrong.push(`${repo}:${tag}: ${v.problems.join('; ')}`);
  }
}
// A build that succeeded must have its tag.
for (const r of results) if (r.verdict.kind === 'succeeded' && !(await verifyTag(registry.host, 'soak/app', r.name)).digest) wrong.push(`soak/app:${r.name}: build succeeded but the tag is missing`);
await registry.stop();

// Give a killed RUN's stragglers no grace: they should be gone already.
const left = leftovers(join(work, 'tmp'));
const count = (phase, kind) => results.filter((r) => r.name.startsWith(phase) && r.verdict.kind === kind).length;
const rss = results.map((r) => r.rssKiB / 1024).sort((a, b) => a - b);
const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
const cacheHits = results.reduce((n, r) => n + (r.stderr.match(/Using caching version of cmd/g) ?? []).length, 0);
const text = [
  `soak/fault run ${new Date().toISOString().slice(0, 10)}: ${cpu}, ${availableParallelism()} cores; 1-minute load ${load.map((l) => l.toFixed(1)).join(' -> ')};`,
  `${wallMin.toFixed(1)} min, registry SIGKILLed ${registry.kills} times (down 0.2-3 s each, seed ${SEED}); ${RETRY_FLAGS.join(' ')}; ${cacheHits} cache hits`,
  '',
  '| | one after another | 6 at a time |',
  '|---|---:|---:|',
  `| builds | ${SERIAL} | ${PARALLEL} |`,
  `| succeeded | ${count('serial', 'succeeded')} | ${count('parallel', 'succeeded')} |`,
  `| failed cleanly (exit != 0, one error line) | ${count('serial', 'clean')} | ${count('parallel', 'clean')} |`,
  `| failed otherwise (trace, hang, several errors) | ${count('serial', 'unclean')} | ${count('parallel', 'unclean')} |`,
  '',
  '| afterwards | |',
  '|---|---:|',
  `| tags read back (app / cache repo) | ${verified.app} / ${verified.cache} |`,
  `| tags listed but unknown to the registry (404: it died between the tag's directory and its link) | ${verified.listedAbsent} |`,
  `| of them pushed by a build that then failed (whole) | ${verified.failedButPushed} |`,
  `| **wrong or partial images** (of builds that succeeded, or cache entries) | **${wrong.length}** |`,
  `| broken tags of builds that failed saying so | ${brokenOfFailed.length} |`,
  `| files left in the builds' TMPDIR | ${left.files.length} |`,
  `| mounts left (kiln-rootfs, under the work dir) | ${left.mounts.length} |`,
  `| processes left (kiln's or a RUN's) | ${left.procs.length} |`,
  `| kiln peak RSS, median / max | ${rss[Math.floor(rss.length / 2)]?.toFixed(0)} / ${rss.at(-1)?.toFixed(0)} MiB |`,
  '',
  ...wrong.map((w) => `- wrong: ${w}`),
  ...brokenOfFailed.map((w) => `- broken tag of a failed build: ${w}`),
  ...left.files.slice(0, 20).map((f) => `- file left: ${f}`),
  ...left.mounts.map((m) => `- mount left: ${m}`),
  ...left.procs.map((p) => `- process left: ${p}`),
  ...results.filter((r) => r.verdict.kind === 'unclean').map((r) => `- ${r.name} failed uncleanly: ${r.verdict.why}`),
  ...[...new Set(results.filter((r) => r.verdict.kind === 'clean').map((r) => r.verdict.why.replace(/127\.0\.0\.1:\d+/g, 'REGISTRY').replace(/sha256:[0-9a-f]{64}/g, 'sha256:...').replace(/(serial|parallel)-\d+/g, 'NAME')))].map((w) => `- clean failure: ${w}`),
  '',
].join('\n');
console.log(`\n${text}`);
const out = join(REPO, 'bench', 'results');
mkdirSync(out, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
writeFileSync(join(out, `soak-${stamp}.md`), text);
writeFileSync(join(out, `soak-${stamp}.json`), JSON.stringify({ seed: SEED, load, kills: registry.kills, chaos: storm.events, results: results.map(({ stderr, ...r }) => r), wrong, brokenOfFailed, left }, null, 2));
log(`results in bench/results/soak-${stamp}.{md,json}; logs in ${work}/logs`);
// Stragglers found are killed now, so a failed soak does not leave them running either.
for (const p of left.procs) try { process.kill(Number(p.split(' ')[0]), 'SIGKILL'); } catch {}
if (!args.keep && wrong.length === 0) rmSync(work, { recursive: true, force: true });
process.exit(wrong.length + left.files.length + left.mounts.length + left.procs.length > 0 ? 1 : 0);
