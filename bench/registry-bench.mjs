// Push and pull benchmark: kiln's registry client against `skopeo copy`, same image, same local
// docker-registry, same run, alternating which tool goes first in each round. Run through
// bench/registry.sh (which compiles kiln first). Not part of the test suite.
//
//   push: kiln `pushImage` of an image whose layers are gzip files on disk
//         vs `skopeo copy oci:LAYOUT docker://REGISTRY/...` (the same files as an OCI layout)
//   pull: kiln `pullImage` + `writeOciLayout` (download, verify every digest, write the blobs)
//         vs `skopeo copy docker://REGISTRY/... oci:DIR` (the same work: skopeo checks digests too).
//         Unpacking is left out on purpose: skopeo does not unpack, and kiln's unpack is rootfs work,
//         not registry work.
// Each kiln run is a fresh `node` process (bench/registry-child.mjs, bundled with esbuild as the
// executor is), as skopeo is a fresh process, so start-up counts for both.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(HERE, '../dist');
const kiln = async (path) => import(join(DIST, path));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};

function ctx() {
  return {
    log: { debug() {}, info() {}, warn(m) { process.stderr.write(`${m}\n`); }, error(m) { process.stderr.write(`${m}\n`); } },
    signal: new AbortController().signal,
  };
}

/** The benchmark image, rebuilt from its spec (same bytes, same digests) in each child process. */
async function imageFromSpec(specPath) {
  const spec = JSON.parse(await readFile(specPath, 'utf8'));
  const { FileLayer } = await kiln('blob/layer-file.js');
  const { assembleImage } = await kiln('oci/assemble.js');
  return assembleImage({ family: 'oci', config: spec.config, layers: spec.layers.map((l) => new FileLayer(l)) });
}

// ---- the benchmark ----
const LAYERS = Number(opt('layers', '5'));
const TOTAL_MB = Number(opt('size-mb', '300'));
const ROUNDS = Number(opt('rounds', '5'));

async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => res(port));
    });
  });
}

async function startRegistry(dir) {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: false', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: ${host}`, ''].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'ignore'] });
  const log = [];
  let pending = '';
  child.stdout.on('data', (b) => {
    const lines = (pending + b.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) {
      const m = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /.exec(l);
      if (m) log.push({ method: m[1], path: m[2], status: Number(m[3]) });
    }
  });
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 200) {
        const exited = new Promise((r) => child.once('exit', r));
        return { host, log, stop: () => (child.kill('SIGTERM'), exited) };
      }
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('docker-registry did not start');
}

/** Hashes what passes through. */
function hasher() {
  const h = createHash('sha256');
  let n = 0;
  const t = new Transform({
    transform(chunk, _e, cb) {
      h.update(chunk);
      n += chunk.length;
      cb(null, chunk);
    },
  });
  return { t, digest: () => `sha256:${h.digest('hex')}`, size: () => n };
}

/** A layer of `mb` MiB of random bytes (so gzip cannot shrink it), as a gzip tar on disk. */
async function makeLayer(dir, i, mb) {
  const src = join(dir, `src${i}`);
  await mkdir(src, { recursive: true });
  const out = createWriteStream(join(src, 'data.bin'));
  for (let k = 0; k < mb; k++) if (!out.write(randomBytes(1 << 20))) await new Promise((r) => out.once('drain', r));
  await new Promise((r) => out.end(r));
  const tar = spawn('tar', ['--owner=0', '--group=0', '--mtime=@0', '-C', src, '-cf', '-', 'data.bin'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const diff = hasher();
  const comp = hasher();
  const path = join(dir, `layer${i}.tar.gz`);
  await pipeline(tar.stdout, diff.t, createGzip({ level: 1 }), comp.t, createWriteStream(path));
  await rm(src, { recursive: true, force: true });
  return { path, digest: comp.digest(), diffId: diff.digest(), size: comp.size(), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
}

async function time(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const inProcess = { push: [], pull: [] };
let childBundle;
const kilnChild = async (...a) => {
  const profile = process.env.KILN_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KILN_BENCH_PROFILE}`] : [];
  const { stdout } = await run(process.execPath, [...profile, childBundle, ...a], { maxBuffer: 1 << 24 });
  inProcess[a[0]]?.push(Number(stdout.trim()));
};
const skopeo = (...a) => run('skopeo', ['copy', '--quiet', ...a], { maxBuffer: 1 << 24 });

const work = await mkdtemp(join(tmpdir(), 'kiln-bench-'));
let reg;
try {
  // kiln as it ships: one bundled file (scripts/bundle.mjs does the same for the executor).
  childBundle = join(work, 'registry-child.cjs');
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(HERE, 'registry-child.mjs')],
    outfile: childBundle,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    define: { 'import.meta.url': '__childUrl' },
    banner: { js: "const __childUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'error',
  });
  reg = await startRegistry(work);
  process.stderr.write(`registry on ${reg.host}; generating ${LAYERS} layers, ${TOTAL_MB} MiB in all...\n`);
  const layers = [];
  for (let i = 0; i < LAYERS; i++) layers.push(await makeLayer(work, i, Math.round(TOTAL_MB / LAYERS)));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: [] },
    history: layers.map((_, i) => ({ created_by: `bench layer ${i}` })),
  };
  const specPath = join(work, 'spec.json');
  await writeFile(specPath, JSON.stringify({ layers, config }));
  const layout = join(work, 'layout');
  const { writeOciLayout } = await kiln('sinks/layout-sink.js');
  await writeOciLayout(await imageFromSpec(specPath), layout, { ctx: ctx(), refName: 'img' });
  const mb = layers.reduce((n, l) => n + l.size, 0) / (1 << 20);

  const times = { 'push kiln': [], 'push skopeo': [], 'pull kiln': [], 'pull skopeo': [] };
  for (let r = 0; r < ROUNDS; r++) {
    // A fresh registry (new port, empty storage) each round: skopeo's blob-info cache remembers where
    // it saw blobs and would mount them from an earlier round's repository instead of uploading.
    await reg.stop();
    await rm(join(work, 'data'), { recursive: true, force: true });
    reg = await startRegistry(work);
    const kilnRef = `${reg.host}/bench/kiln-${r}:v1`;
    const skopeoRef = `${reg.host}/bench/skopeo-${r}:v1`;
    const pushes = [
      ['push kiln', () => kilnChild('push', specPath, kilnRef)],
      ['push skopeo', () => skopeo('--dest-tls-verify=false', `oci:${layout}:img`, `docker://${skopeoRef}`)],
    ];
    const pulls = [
      ['pull kiln', () => kilnChild('pull', kilnRef, join(work, `out-kiln-${r}`))],
      ['pull skopeo', () => skopeo('--src-tls-verify=false', `docker://${skopeoRef}`, `oci:${join(work, `out-skopeo-${r}`)}:img`)],
    ];
    for (const ops of [pushes, pulls]) {
      if (r % 2 === 1) ops.reverse();
      for (const [name, fn] of ops) times[name].push(await time(fn));
    }
    await rm(join(work, `out-kiln-${r}`), { recursive: true, force: true });
    await rm(join(work, `out-skopeo-${r}`), { recursive: true, force: true });
    process.stderr.write(`round ${r + 1}/${ROUNDS} done\n`);
  }

  // A push of layers that already exist: only HEADs and the manifest may reach the registry.
  const mark = reg.log.length;
  const existing = await time(() => kilnChild('push', specPath, `${reg.host}/bench/kiln-${ROUNDS - 1}:again`));
  await new Promise((r) => setTimeout(r, 200));
  const again = reg.log.slice(mark).filter((e) => e.path !== '/v2/');
  const uploads = again.filter((e) => e.method === 'POST' || e.method === 'PATCH' || (e.method === 'PUT' && e.path.includes('/blobs/')));

  const row = (op) => {
    const k = median(times[`${op} kiln`]);
    const s = median(times[`${op} skopeo`]);
    const inp = median(inProcess[op].slice(0, ROUNDS));
    return `| ${op} | ${(k / 1000).toFixed(2)} s | ${(s / 1000).toFixed(2)} s | ${(k / s).toFixed(2)} | ${(inp / 1000).toFixed(2)} s |`;
  };
  console.log(`\n${LAYERS} layers, ${mb.toFixed(0)} MiB compressed, ${ROUNDS} rounds, medians (docker-registry on loopback, ${process.platform}):\n`);
  console.log('| operation | kiln | skopeo copy | kiln/skopeo | kiln without Node start-up |');
  console.log('|---|---|---|---|---|');
  console.log(row('push'));
  console.log(row('pull'));
  console.log(
    `\npush of the same image to a repository that has every blob: ${(existing / 1000).toFixed(2)} s, ` +
      `requests: ${again.map((e) => `${e.method} ${e.status}`).join(', ')}; blob uploads: ${uploads.length}`,
  );
  if (uploads.length > 0) process.exitCode = 1;
} finally {
  await reg?.stop();
  await rm(work, { recursive: true, force: true });
}
