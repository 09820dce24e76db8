// kiln's executor image in a real container runtime: podman runs the image on the kaniko cases of
// cases.mjs, as a CI job would run kaniko's (`podman run -v CONTEXT:/workspace IMAGE --context
// dir:///workspace --destination ...`), pushing to the benchmark's loopback registry. Beside it, in the
// same run and interleaved with it, the same kiln on the host (`node bin/executor.js`, sandbox mode),
// and as reference kaniko v1.23.2's executor measured earlier on this kind of machine (kaniko's image
// cannot be pulled here and there is no Go toolchain to build it). Started by bench/run.sh:
//   node bench/container-bench.mjs --registry HOST:PORT --work DIR
//
// Wall time is the whole `podman run` (container creation, kiln, teardown). Memory is the container's
// peak from its memory cgroup (cgroup v1): every container gets a fresh parent cgroup of the bench's
// own (--cgroup-parent), whose memory.max_usage_in_bytes, read after the container has gone, is the
// peak of everything charged to the container: its processes and the page cache of what it wrote
// (and podman's conmon, which goes under the same parent: ~1 MiB).
// The table also gives each case less a container that does nothing (`podman run busybox true`,
// measured in the same rounds): kaniko's reference figures have no container runtime in them.
//
// On these VMs the disk's ext4 has no journal, and then ext4 will not reuse an inode freed in the last
// minutes: every new file scans past the recently deleted ones of its block group (recently_deleted()
// in the kernel's ialloc.c). A build that creates many files (the 20,000-file COPY, unpacking Debian)
// right after others deleted as many (the previous container's layer, a test suite) costs several
// times what it costs on a quiet disk: those cases vary by 2-3x from run to run, from round to round.
//
// Environment (besides run.sh's KILN_BENCH_ROUNDS, KILN_BENCH_CASES, KILN_BENCH_DEBIAN):
//   KILN_BENCH_EXECUTOR_TAR=FILE  the image as a docker-archive tarball (scripts/build-executor-image.sh
//                                 --tar-path); default: built here with that script, into the work dir
//   KILN_BENCH_HOST=0             skip the host-mode figures
//   KILN_BENCH_PODMAN_DISK=vm     podman's storage on the VM's own disk (default: journaled, below)
//
// podman's storage (images, and every container's overlay upper dir, where the build's files go) is by
// default on an ext4 with a journal, made for the run on a loop device: what a node's disk is. The
// VM's own ext4 has no journal, and without one ext4 skips every inode freed in the last minute or
// more when it allocates a new one (recently_deleted() in the kernel's ialloc.c): each `podman run
// --rm` then slows the next container's file creations, and rounds drift up by 2-5x (seen 2026-12-03:
// the 20,000-file COPY 4.2 s in round 1, 18.3 and 20.9 s in rounds 2 and 3). The tmpfs-backed host
// mode does not see it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeBases } from './bases.mjs';
import { CASES } from './cases.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { registry: { type: 'string' }, work: { type: 'string' } } });
const registry = args.registry ?? fail('--registry HOST:PORT is required');
const work = resolve(args.work ?? fail('--work DIR is required'));
const rounds = Number(process.env.KILN_BENCH_ROUNDS ?? 3);
const debian = process.env.KILN_BENCH_DEBIAN !== '0';
const withHost = process.env.KILN_BENCH_HOST !== '0';
const only = process.env.KILN_BENCH_CASES?.split(',').filter((s) => s !== '');

/**
 * kaniko v1.23.2's executor on the issue's cases, measured earlier on a 2-core VM of this kind (wall
 * seconds, medians): the reference, since kaniko cannot be run here.
 */
const KANIKO_V1_23_2 = {
  'kaniko-basic': 0.35,
  'kaniko-two-stage': 0.48,
  'kaniko-dd-200m': 5.43,
  'kaniko-copy-20k-touch-1k': 21.99,
  'kaniko-debian-curl': 14.87,
};
const cases = CASES.filter((c) =>
  only !== undefined ? only.includes(c.name) && c.name in KANIKO_V1_23_2 : c.name in KANIKO_V1_23_2 && (c.name !== 'kaniko-debian-curl' || debian),
);
if (cases.length === 0) fail(`no container case matches KILN_BENCH_CASES=${process.env.KILN_BENCH_CASES} (they are ${Object.keys(KANIKO_V1_23_2).join(', ')})`);

function fail(msg) {
  console.error(`container-bench: ${msg}`);
  process.exit(1);
}

function sh(cmd, argv, opts = {}) {
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26, ...opts })?.toString() ?? '';
}


// --- the image: a tarball given, or built here by kiln in sandbox mode -------------------------------
function executorTar() {
  const given = process.env.KILN_BENCH_EXECUTOR_TAR;
  if (given !== undefined && given !== '') {
    if (!existsSync(given)) fail(`KILN_BENCH_EXECUTOR_TAR=${given}: no such file`);
    return resolve(given);
  }
  const dir = join(work, 'executor-image');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, 'image.tar');
  const log = join(dir, 'build.log');
  console.log(`container-bench: building the executor image with scripts/build-executor-image.sh (a few minutes; log: ${log})`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('bash', [join(REPO, 'scripts/build-executor-image.sh'), '--registry', registry, '--no-push', '--tar-path', tar, '--digest-file', join(dir, 'digest')], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
  writeFileSync(log, `${r.stdout}\n--- stderr\n${r.stderr}`);
  if (r.status !== 0) {
    console.error(readFileSync(log, 'utf8').split('\n').slice(-30).join('\n'));
    fail(`building the executor image failed (exit ${r.status}); log: ${log}`);
  }
  console.log(`container-bench: image built in ${seconds(t0).toFixed(0)} s`);
  return tar;
}

// --- podman with storage of the bench's own, as the executor-image tests run it ----------------------
const podDir = join(work, 'podman');
const podConf = join(podDir, 'containers.conf');
const podGlobal = [
  '--root', join(podDir, 'storage'),
  '--runroot', join(podDir, 'run'),
  '--tmpdir', join(podDir, 'tmp'),
  '--storage-driver', 'overlay',
  // crun refuses these VMs' hybrid cgroup layout; systemd is not their init.
  '--runtime', 'runc',
  '--cgroup-manager', 'cgroupfs',
  '--events-backend', 'file',
];
// The VMs lack CAP_SYS_RESOURCE for podman's default ulimits.
const podEnv = { ...process.env, CONTAINERS_CONF: podConf };
const journaledDisk = process.env.KILN_BENCH_PODMAN_DISK !== 'vm';
const diskImage = join(work, 'podman-disk.img');

/** podman's storage dir on a fresh journaled ext4 (a sparse file on a loop device), or left on the VM's disk. */
function podmanStorage() {
  const storage = join(podDir, 'storage');
  mkdirSync(storage, { recursive: true });
  if (!journaledDisk) return;
  rmSync(diskImage, { force: true });
  sh('truncate', ['-s', '64G', diskImage]);
  sh('mkfs.ext4', ['-q', '-F', '-O', 'has_journal', '-E', 'lazy_itable_init=0,lazy_journal_init=0', diskImage]);
  sh('mount', ['-o', 'loop', diskImage, storage]);
}
const podman = (argv, opts = {}) => sh('podman', [...podGlobal, ...argv], { env: podEnv, ...opts });

function podmanCleanup() {
  spawnSync('podman', [...podGlobal, 'rm', '--all', '--force'], { env: podEnv, stdio: 'ignore' });
  spawnSync('podman', [...podGlobal, 'rmi', '--all', '--force'], { env: podEnv, stdio: 'ignore' });
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(`${podDir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(podDir, { recursive: true, force: true });
}

// --- memory: a parent cgroup per container (cgroup v1 memory controller, as podman's cgroupfs uses) --
const MEMCG = '/sys/fs/cgroup/memory';
const memcgV1 = existsSync(join(MEMCG, 'memory.max_usage_in_bytes'));
const cgParentRoot = `kiln-bench-${process.pid}`;
let cgSeq = 0;

/** A fresh memory cgroup for one container to go under; `peakMiB()` reads its peak, `remove()` drops it. */
function containerCgroup() {
  const rel = `/${cgParentRoot}/c${++cgSeq}`;
  if (!memcgV1) return { flag: [], peakMiB: () => NaN, remove: () => {} };
  mkdirSync(join(MEMCG, rel), { recursive: true });
  return {
    flag: ['--cgroup-parent', rel],
    peakMiB: () => Number(readFileSync(join(MEMCG, rel, 'memory.max_usage_in_bytes'), 'utf8')) / 2 ** 20,
    // podman's cgroupfs manager makes libpod-<id> (the container) and conmon below the parent, in every
    // controller; conmon may outlive `podman run` by a moment: what is still busy goes at the end.
    remove: () => removeCgroups(rel, 1),
  };
}

/** Removes the cgroup `rel` and those below it in every controller, retrying busy ones for up to `tries` x 50 ms. */
function removeCgroups(rel, tries) {
  for (const ctl of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', ctl, rel);
    if (existsSync(dir)) rmdirDeep(dir, tries);
  }
}

function rmdirDeep(dir, tries) {
  for (const child of readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) rmdirDeep(join(dir, child.name), tries);
  for (let i = 0; i < tries; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      // busy: a process (conmon) is still in it
      if (i + 1 < tries) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

function removeCgroupRoot() {
  removeCgroups(`/${cgParentRoot}`, 40);
}

// --- timing ------------------------------------------------------------------------------------------
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

/** Runs argv; wall seconds and its output (kept in `log`). Fails the bench when it fails. */
function timedRun(label, cmd, argv, log, env = process.env) {
  return new Promise((resolvePromise) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, argv, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => out.push(b));
    child.once('close', (code) => {
      const wall = seconds(t0);
      const text = Buffer.concat(out).toString();
      writeFileSync(log, text);
      if (code !== 0) {
        console.error(text.split('\n').slice(-30).join('\n'));
        fail(`${label} failed (exit ${code}); log: ${log}`);
      }
      resolvePromise({ wall, text });
    });
  });
}

async function inPodman(label, runArgs, log) {
  const cg = containerCgroup();
  try {
    const r = await timedRun(label, 'podman', [...podGlobal, 'run', '--rm', '--network=host', ...cg.flag, ...runArgs], log, podEnv);
    return { wall: r.wall, memMiB: cg.peakMiB() };
  } finally {
    cg.remove();
  }
}

async function onHost(label, argv, log) {
  // GNU time's peak RSS of the largest process (kiln's stage trees on its tmpfs are not in it).
  const tf = `${log}.time`;
  const r = await timedRun(label, '/usr/bin/time', ['-f', '%M', '-o', tf, ...argv], log);
  return { wall: r.wall, memMiB: Number(readFileSync(tf, 'utf8').trim().split('\n').at(-1)) / 1024 };
}

const median = (xs) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// --- main ----------------------------------------------------------------------------------------------
const kilnFlags = (ctx, dest) => ['--context', `dir://${ctx}`, '--dockerfile', 'Dockerfile', '--destination', dest, '--insecure', '--insecure-pull'];

async function main() {
  mkdirSync(work, { recursive: true });
  const bases = makeBases({ work, registry, needed: new Set(cases.map((c) => c.base)), log: (msg) => console.log(`container-bench: ${msg}`) });
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
  const tar = executorTar();

  podmanCleanup();
  mkdirSync(podDir, { recursive: true });
  writeFileSync(podConf, '[containers]\ndefault_ulimits = []\n');
  podmanStorage();
  const loaded = podman(['load', '-q', '-i', tar]);
  const image = /sha256:([0-9a-f]{64})/.exec(loaded)?.[1] ?? fail(`podman load printed no image ID: ${loaded}`);
  podman(['pull', '-q', '--tls-verify=false', bases.busybox]);

  const logs = join(work, 'logs-container');
  mkdirSync(logs, { recursive: true });
  const load = [loadavg()[0]];
  const tools = ['podman', ...(withHost ? ['host'] : [])];
  const samples = Object.fromEntries(cases.map((c) => [c.name, Object.fromEntries(tools.map((t) => [t, []]))]));
  const floors = { busybox: [], help: [] };
  console.log(
    `container-bench: ${cases.length} cases x ${rounds} rounds, kiln in podman${withHost ? ' and on the host' : ''} in turn (registry ${registry}; memory: ${memcgV1 ? 'cgroup v1 memory.max_usage_in_bytes of a --cgroup-parent per container' : 'not measured: no cgroup v1 memory controller'})`,
  );
  for (let round = 1; round <= rounds; round++) {
    // The runtime's fixed cost: a busybox container doing nothing, and kiln's image printing its usage.
    floors.busybox.push(await inPodman('busybox true', [bases.busybox, 'true'], join(logs, `floor-busybox-${round}.log`)));
    floors.help.push(await inPodman('kiln --help', [image, '--help'], join(logs, `floor-help-${round}.log`)));
    for (const c of cases) {
      const ctx = join(ctxRoot, c.name);
      const order = round % 2 === 1 ? tools : [...tools].reverse();
      for (const tool of order) {
        // A repository per build: the registry holds none of its blobs yet, so every push uploads in full.
        const dest = `${registry}/bench/${c.name}-container-${tool}-${round}:latest`;
        const log = join(logs, `${c.name}-${tool}-${round}.log`);
        const r =
          tool === 'podman'
            ? await inPodman(`kiln in podman ${c.name}`, ['-v', `${ctx}:/workspace`, image, ...kilnFlags('/workspace', dest)], log)
            : await onHost(`kiln on the host ${c.name}`, ['node', 'bin/executor.js', ...kilnFlags(ctx, dest)], log);
        samples[c.name][tool].push(r);
        console.log(`  round ${round} ${c.name.padEnd(26)} ${tool.padEnd(7)} ${r.wall.toFixed(2).padStart(7)} s ${r.memMiB.toFixed(0).padStart(5)} MiB`);
      }
    }
    load.push(loadavg()[0]);
  }

  // --- report ------------------------------------------------------------------------------------------
  const f2 = (n) => (Number.isNaN(n) ? '-' : n.toFixed(2));
  const rows = cases.map((c) => ({
    name: c.name,
    what: c.what,
    podman: median(samples[c.name].podman.map((s) => s.wall)),
    podmanMiB: median(samples[c.name].podman.map((s) => s.memMiB)),
    host: withHost ? median(samples[c.name].host.map((s) => s.wall)) : NaN,
    kaniko: KANIKO_V1_23_2[c.name],
  }));
  const sum = (k) => rows.reduce((a, r) => a + r[k], 0);
  const total = { podman: sum('podman'), host: sum('host'), kaniko: sum('kaniko') };
  const floor = { busybox: median(floors.busybox.map((s) => s.wall)), help: median(floors.help.map((s) => s.wall)), helpMiB: median(floors.help.map((s) => s.memMiB)) };
  // What kiln itself takes in the container: the run's wall time less a container that does nothing
  // (podman's create, start, wait and removal, ~0.3 s here); kaniko's reference has no runtime in it.
  const net = (r) => r.podman - floor.busybox;
  const lines = [
    '| case | kiln in podman s | MiB | kiln on the host s | kaniko v1.23.2 s (reference) | kiln in podman / kaniko | in podman less podman\'s floor s | that / kaniko |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.name} (${r.what}) | ${f2(r.podman)} | ${r.podmanMiB.toFixed(0)} | ${f2(r.host)} | ${f2(r.kaniko)} | ${f2(r.podman / r.kaniko)} | ${f2(net(r))} | ${f2(net(r) / r.kaniko)} |`,
    ),
    `| **total** | **${f2(total.podman)}** | | **${f2(total.host)}** | **${f2(total.kaniko)}** | **${f2(total.podman / total.kaniko)}** (kaniko/kiln ${f2(total.kaniko / total.podman)}x) | ${f2(total.podman - rows.length * floor.busybox)} | ${f2((total.podman - rows.length * floor.busybox) / total.kaniko)} |`,
    '',
    `podman's own floor (medians, in the same rounds): \`podman run --rm busybox true\` ${f2(floor.busybox)} s; \`podman run --rm <kiln image> --help\` ${f2(floor.help)} s (${floor.helpMiB.toFixed(0)} MiB).`,
  ];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  const header = [
    `kiln's executor image in ${sh('podman', ['--version']).trim()} (runc, cgroupfs, --network=host, context as a volume), ${rounds} rounds, medians; ${cpu}, ${availableParallelism()} cores;`,
    `memory: the container's cgroup peak (processes + page cache it dirtied); kaniko: v1.23.2's executor measured earlier on this kind of machine, not in this run.`,
    `podman's storage: ${journaledDisk ? "a journaled ext4 of the run's own on a loop device (KILN_BENCH_PODMAN_DISK=vm: the VM's disk)" : "the VM's own disk (ext4 without a journal)"}.`,
    `1-minute load average during the run: ${load.map((l) => l.toFixed(1)).join(' -> ')} (other work on the machine skews the figures).`,
  ];
  const text = [...header, '', ...lines, ''].join('\n');
  console.log(`\n${text}`);
  const out = join(REPO, 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, `container-${stamp}.md`), text);
  writeFileSync(join(out, `container-${stamp}.json`), JSON.stringify({ rounds, load, samples, floors, rows, total, floor }, null, 2));
  console.log(`container-bench: results in bench/results/container-${stamp}.{md,json}`);
}

// On any exit, fail() included: podman's storage (its mounts) and the cgroups go.
let cleaned = false;
const cleanup = () => {
  if (cleaned) return;
  cleaned = true;
  podmanCleanup();
  rmSync(diskImage, { force: true });
  removeCgroupRoot();
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
await main();
