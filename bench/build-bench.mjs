// Runs the cases of cases.mjs with kiln and buildah, alternating, and reports medians. Started by
// bench/run.sh, which installs the tools, builds kiln and starts the registry:
//   node bench/build-bench.mjs --registry HOST:PORT --work DIR
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeBases } from './bases.mjs';
import { CASES } from './cases.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { registry: { type: 'string' }, work: { type: 'string' } } });
const registry = args.registry ?? fail('--registry HOST:PORT is required');
const work = args.work ?? fail('--work DIR is required');
const rounds = Number(process.env.KILN_BENCH_ROUNDS ?? 3);
const debian = process.env.KILN_BENCH_DEBIAN !== '0';
const only = process.env.KILN_BENCH_CASES?.split(',').filter((s) => s !== '');
const cases = CASES.filter((c) => (only !== undefined ? only.includes(c.name) : !c.optIn || (c.name === 'debian-apt' && debian)));
if (cases.length === 0) fail(`no case matches KILN_BENCH_CASES=${process.env.KILN_BENCH_CASES}`);

function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(1);
}

function sh(cmd, argv, opts = {}) {
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26, ...opts })?.toString() ?? '';
}


// --- one build, timed by GNU time: wall seconds and the peak RSS of the process tree's largest member --
function timed(label, argv, log) {
  const tf = join(work, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', tf, ...argv], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  writeFileSync(log, `${r.stdout}\n--- stderr\n${r.stderr}`);
  if (r.status !== 0) {
    console.error(readFileSync(log, 'utf8').split('\n').slice(-30).join('\n'));
    fail(`${label} failed (exit ${r.status}); log: ${log}`);
  }
  const [wall, kb] = readFileSync(tf, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  // kiln's stage filesystems on its tmpfs are memory too, but no process's RSS: it logs their size.
  const tmpfs = /Stage filesystems used (\d+) MiB of the tmpfs/.exec(r.stderr)?.[1];
  return { wall, rssMiB: kb / 1024, tmpfsMiB: tmpfs === undefined ? 0 : Number(tmpfs) };
}

function runKiln(c, ctx, dest, log, extra = []) {
  return timed(`kiln ${c.name}`, ['node', 'bin/executor.js', '--context', `dir://${ctx}`, '--dockerfile', 'Dockerfile', '--destination', dest, '--insecure', '--insecure-pull', ...extra], log);
}

function runBuildah(c, ctx, dest, log) {
  // A fresh store per build, so buildah pulls and unpacks its base as kiln does (store removal untimed).
  const store = join(work, 'buildah-store');
  rmSync(store, { recursive: true, force: true });
  const g = `--root ${store}/root --runroot ${store}/run --storage-driver vfs`;
  const script = `buildah ${g} bud --isolation chroot --tls-verify=false -q -t ${dest} ${ctx} && buildah ${g} push --tls-verify=false -q ${dest} docker://${dest}`;
  try {
    return timed(`buildah ${c.name}`, ['sh', '-c', script], log);
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// --- main ----------------------------------------------------------------------------------------------
const bases = makeBases({ work, registry, needed: new Set(cases.map((c) => c.base)), log: (msg) => console.log(`bench: ${msg}`) });
const ctxRoot = join(work, 'contexts');
for (const c of cases) {
  const dir = join(ctxRoot, c.name);
  const made = join(work, `${c.name}.data-made`);
  if (!existsSync(made)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    c.data?.(dir);
    writeFileSync(made, '');
  }
  writeFileSync(join(dir, 'Dockerfile'), c.dockerfile(bases));
}
const logs = join(work, 'logs');
mkdirSync(logs, { recursive: true });
const load = [loadavg()[0]];
// kiln-disk: kiln with its stage filesystems on disk (--rootfs-tmpfs never), as buildah keeps its store.
// kiln-j1: kiln with --jobs 1 (one stage at a time), for the cases with independent stages only.
const tools = ['kiln', 'buildah', ...(process.env.KILN_BENCH_DISK === '0' ? [] : ['kiln-disk']), ...(cases.some((c) => c.parallel) ? ['kiln-j1'] : [])];
const samples = Object.fromEntries(cases.map((c) => [c.name, Object.fromEntries(tools.map((t) => [t, []]))]));
console.log(`bench: ${cases.length} cases x ${rounds} rounds, ${tools.join(', ')} in turn (registry ${registry})`);
for (let round = 1; round <= rounds; round++) {
  for (const c of cases) {
    const ctx = join(ctxRoot, c.name);
    // Rotate which tool goes first, so none always gets the warmer page cache.
    const order = tools.map((_, i) => tools[(i + round - 1) % tools.length]);
    for (const tool of order) {
      if (tool === 'kiln-j1' && !c.parallel) continue;
      // A repository per build: the registry holds none of its blobs yet, so every push uploads in full.
      const dest = `${registry}/bench/${c.name}-${tool}-${round}:latest`;
      const log = join(logs, `${c.name}-${tool}-${round}.log`);
      const extra = tool === 'kiln-disk' ? ['--rootfs-tmpfs', 'never'] : tool === 'kiln-j1' ? ['--jobs', '1'] : [];
      const r = tool === 'buildah' ? runBuildah(c, ctx, dest, log) : runKiln(c, ctx, dest, log, extra);
      samples[c.name][tool].push(r);
      console.log(`  round ${round} ${c.name.padEnd(26)} ${tool.padEnd(8)} ${r.wall.toFixed(2).padStart(7)} s ${r.rssMiB.toFixed(0).padStart(5)} MiB`);
    }
  }
  load.push(loadavg()[0]);
}

// --- report --------------------------------------------------------------------------------------------
const rows = cases.map((c) => {
  const k = samples[c.name].kiln;
  const b = samples[c.name].buildah;
  const d = samples[c.name]['kiln-disk'] ?? [];
  return {
    name: c.name,
    what: c.what,
    kiln: median(k.map((s) => s.wall)),
    buildah: median(b.map((s) => s.wall)),
    kilnRss: median(k.map((s) => s.rssMiB)),
    buildahRss: median(b.map((s) => s.rssMiB)),
    kilnTmpfs: median(k.map((s) => s.tmpfsMiB)),
    disk: d.length > 0 ? median(d.map((s) => s.wall)) : undefined,
    kaniko: c.kaniko,
  };
});
const total = {
  kiln: rows.reduce((a, r) => a + r.kiln, 0),
  buildah: rows.reduce((a, r) => a + r.buildah, 0),
  disk: rows.every((r) => r.disk !== undefined) ? rows.reduce((a, r) => a + r.disk, 0) : undefined,
};
const f2 = (n) => n.toFixed(2);
const hasDisk = total.disk !== undefined;
const lines = [
  `| case | kiln s | buildah s | kiln/buildah | kiln peak RSS MiB (+ tmpfs MiB) | buildah peak RSS MiB |${hasDisk ? ' kiln on disk s | on disk/buildah |' : ''} kaniko (issue) s, MiB |`,
  `|---|---:|---:|---:|---:|---:|${hasDisk ? '---:|---:|' : ''}---:|`,
  ...rows.map(
    (r) =>
      `| ${r.name} (${r.what}) | ${f2(r.kiln)} | ${f2(r.buildah)} | ${f2(r.kiln / r.buildah)} | ${r.kilnRss.toFixed(0)} (+ ${r.kilnTmpfs.toFixed(0)}) | ${r.buildahRss.toFixed(0)} |${hasDisk ? ` ${f2(r.disk)} | ${f2(r.disk / r.buildah)} |` : ''} ${r.kaniko ? `${r.kaniko[0]}, ${r.kaniko[1]}` : ''} |`,
  ),
  `| **total** | **${f2(total.kiln)}** | **${f2(total.buildah)}** | **${f2(total.kiln / total.buildah)}** (buildah/kiln ${f2(total.buildah / total.kiln)}x) | | |${hasDisk ? ` **${f2(total.disk)}** | **${f2(total.disk / total.buildah)}** (${f2(total.buildah / total.disk)}x) |` : ''} |`,
];
// Stages at once against one at a time, and against buildah (which builds stages in turn), same run.
const par = cases.filter((c) => c.parallel);
if (par.length > 0) {
  lines.push(
    '',
    '| case (issue 13) | kiln s | kiln --jobs 1 s | buildah s | --jobs 1 / kiln | buildah / kiln |',
    '|---|---:|---:|---:|---:|---:|',
    ...par.map((c) => {
      const k = median(samples[c.name].kiln.map((s) => s.wall));
      const j = median(samples[c.name]['kiln-j1'].map((s) => s.wall));
      const b = median(samples[c.name].buildah.map((s) => s.wall));
      return `| ${c.name} (${c.what}) | ${f2(k)} | ${f2(j)} | ${f2(b)} | ${f2(j / k)}x | ${f2(b / k)}x |`;
    }),
  );
}
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
const header = [
  `kiln vs buildah ${sh('buildah', ['--version']).trim().replace(/^buildah version /, '')}, ${rounds} rounds, medians; ${cpu}, ${availableParallelism()} cores;`,
  `1-minute load average during the run: ${load.map((l) => l.toFixed(1)).join(' -> ')} (other work on the machine skews both tools).`,
];
const text = [...header, '', ...lines, ''].join('\n');
console.log(`\n${text}`);
const out = join(REPO, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, `builds-${stamp}.md`), text);
writeFileSync(join(out, `builds-${stamp}.json`), JSON.stringify({ rounds, load, samples, rows, total }, null, 2));
console.log(`bench: results in bench/results/builds-${stamp}.{md,json}`);
