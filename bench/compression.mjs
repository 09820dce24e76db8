// Layer compression throughput: kiln's layer writer (tar -> diffID hash -> compress -> digest hash ->
// file, one pass) with its parallel gzip and with zstd, against the same pass through single-core
// zlib gzip at the same level, on a 500 MB layer of each kind of data. Also peak RSS of each run.
//   node bench/compression.mjs [--size-mb 500] [--work DIR]      (needs dist/: npx tsc first)
// Data is generated at run time: "text" (deflates ~4x), "random" (does not deflate), "usr" (a tar of
// this machine's /usr: binaries, libraries, docs, already-compressed files, as a real layer mixes them).
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as zlib from 'node:zlib';
import { writeRandomFile } from './cases.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { 'size-mb': { type: 'string' }, work: { type: 'string' }, child: { type: 'string' }, input: { type: 'string' } } });

// --- child mode: one timed pass, prints JSON ------------------------------------------------------------
if (args.child !== undefined) {
  const { writeLayerFile } = await import(join(REPO, 'dist/blob/layer-file.js'));
  const { DigestingStream } = await import(join(REPO, 'dist/blob/digesting.js'));
  const input = args.input;
  const out = `${input}.out`;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  if (args.child === 'zlib-1core') {
    // The same pass as writeLayerFile, with Node's one-thread gzip stream in place of kiln's compressor.
    const tarHash = new DigestingStream();
    const blobHash = new DigestingStream();
    await pipeline(createReadStream(input, { highWaterMark: 1 << 20 }), tarHash, zlib.createGzip(), blobHash, createWriteStream(out));
  } else {
    const codec = args.child === 'kiln-zstd' ? { kind: 'zstd' } : { kind: 'gzip' };
    await writeLayerFile(createReadStream(input, { highWaterMark: 1 << 20 }), out, { codec });
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const size = statSync(out).size;
  rmSync(out);
  // CPU seconds of this process (threads included; zstd's own process not): shows how many cores it got.
  console.log(JSON.stringify({ seconds, size, cpuSeconds: (cpu.user + cpu.system) / 1e6 }));
  process.exit(0);
}

// --- parent: data, runs under GNU time, table -----------------------------------------------------------
const sizeMb = Number(args['size-mb'] ?? 500);
const bytes = sizeMb * 1_000_000;
const work = args.work ?? join('/tmp', `kiln-compression-${process.pid}`);
mkdirSync(work, { recursive: true });

/** Text-like data: words and numbers from a seeded generator, so it deflates like source code and logs. */
function writeText(file) {
  const words = 'the layer digest manifest snapshot rootfs config index blob tar gzip zstd whiteout kiln build stage run copy env label user workdir'.split(' ');
  let seed = 42;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8);
  const ws = createWriteStream(file);
  return new Promise((resolveWrite, reject) => {
    ws.on('error', reject);
    let left = bytes;
    const writeMore = () => {
      while (left > 0) {
        let s = '';
        while (s.length < 1 << 20) s += `${words[next() % words.length]}${next() % 7 === 0 ? ` ${next() % 100000}` : ''}${next() % 11 === 0 ? '\n' : ' '}`;
        const b = Buffer.from(s).subarray(0, Math.min(left, 1 << 20));
        left -= b.length;
        if (!ws.write(b)) return void ws.once('drain', writeMore);
      }
      ws.end(resolveWrite);
    };
    writeMore();
  });
}

const inputs = { text: join(work, 'text.bin'), random: join(work, 'random.bin'), usr: join(work, 'usr.tar') };
if (!existsSync(inputs.text)) await writeText(inputs.text);
if (!existsSync(inputs.random)) writeRandomFile(inputs.random, bytes);
if (!existsSync(inputs.usr)) {
  const r = spawnSync('sh', ['-c', `tar -cf - --sort=name /usr/share /usr/lib 2>/dev/null | head -c ${bytes} > ${inputs.usr}`]);
  if (statSync(inputs.usr).size < bytes) console.log(`bench: /usr gave only ${statSync(inputs.usr).size} bytes (${r.status})`);
}

function run(mode, input) {
  const tf = join(work, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', tf, process.execPath, fileURLToPath(import.meta.url), '--child', mode, '--input', input], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${mode} on ${input} failed: ${r.stderr}`);
  const { seconds, size, cpuSeconds } = JSON.parse(r.stdout.trim().split('\n').at(-1));
  return { seconds, size, cpuSeconds, rssMiB: Number(readFileSync(tf, 'utf8').trim().split('\n').at(-1)) / 1024 };
}

const loadBefore = loadavg()[0].toFixed(1);
const rows = [];
for (const [kind, input] of Object.entries(inputs)) {
  const mb = statSync(input).size / 1e6;
  const base = run('zlib-1core', input);
  const gz = run('kiln-gzip', input);
  const zs = run('kiln-zstd', input);
  const mbps = (r) => mb / r.seconds;
  const cores = (r) => (r.cpuSeconds / r.seconds).toFixed(1);
  rows.push(
    `| ${kind} | ${mb.toFixed(0)} | ${mbps(base).toFixed(0)} (${(base.size / 1e6 / mb).toFixed(2)}, ${cores(base)} cores) | ${mbps(gz).toFixed(0)} (${(gz.size / 1e6 / mb).toFixed(2)}, ${cores(gz)} cores) | **${(mbps(gz) / mbps(base)).toFixed(2)}x** | ${mbps(zs).toFixed(0)} (${(zs.size / 1e6 / mb).toFixed(2)}) | ${base.rssMiB.toFixed(0)} / ${gz.rssMiB.toFixed(0)} / ${zs.rssMiB.toFixed(0)} |`,
  );
  console.log(rows.at(-1));
}
const text = [
  `Layer writer throughput, ${availableParallelism()} cores: MB/s of uncompressed tar through the whole pass (both sha256, file write),`,
  '(compressed/original size, CPU seconds per wall second the writer got). 1-minute load average before: ' + loadBefore + ', after: ' + loadavg()[0].toFixed(1) + '.',
  '',
  '| data | MB | zlib gzip, 1 core | kiln gzip | kiln gzip / zlib 1 core | kiln zstd | peak RSS MiB (zlib / kiln gzip / kiln zstd) |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows,
  '',
].join('\n');
console.log(`\n${text}`);
const out = join(REPO, 'bench', 'results');
mkdirSync(out, { recursive: true });
const file = join(out, `compression-${new Date().toISOString().replace(/[:.]/g, '-')}.md`);
(await import('node:fs')).writeFileSync(file, text);
console.log(`bench: results in ${file.slice(REPO.length + 1)}`);
if (args.work === undefined) rmSync(work, { recursive: true, force: true });
