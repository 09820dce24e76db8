// Measures the snapshot paths on a large tree (not part of the test suite): walk readers, a one-file
// RUN snapshotted by the walk and by the overlay strategy, and GNU find for reference. The walk's
// snapshot includes writing the (tiny) layer and what remains of the 20 ms clock-tick wait after it.
// Usage: npm run build && node scripts/measure-snapshots.mjs [entries=100000] [rounds=5]   (as root)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IgnoreList } from '../dist/rootfs/ignore-list.js';
import { overlayArgv, overlayDirsFor } from '../dist/sandbox/overlay-run.js';
import { Snapshotter } from '../dist/snapshot/snapshotter.js';
import { nativeFs } from '../dist/rootfs/native-fs.js';
import { scanTree } from '../dist/snapshot/tree-index.js';

const entries = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 5);
const TOOLS = { unshare: '/usr/bin/unshare', mount: '/usr/bin/mount', setpriv: '/usr/bin/setpriv', sh: '/bin/sh' };
const ignore = IgnoreList.of(['/proc', '/sys', '/dev', '/var/run']);

const base = mkdtempSync(join(tmpdir(), 'kiln-measure-'));
const root = join(base, 'root');
const work = join(base, 'work');
mkdirSync(work);
const perDir = 99;
for (let d = 0; d * (perDir + 1) < entries; d++) {
  const dir = join(root, `d${d % 20}`, `s${d}`);
  mkdirSync(dir, { recursive: true });
  for (let f = 0; f < perDir - 1; f++) writeFileSync(join(dir, `f${f}`), 'x'.repeat(f % 7));
  symlinkSync('f0', join(dir, 'l'));
}
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
const record = (name, v) => (results[name] ??= []).push(v);

for (let r = 0; r < rounds; r++) {
  for (const reader of ['native', 'js']) {
    const t = process.hrtime.bigint();
    const idx = await scanTree(root, ignore, { reader });
    record(`scanTree ${reader} (~${Math.round(idx.size / 1000)}k entries)`, ms(t));
  }
  // The addon's walk alone (no JS objects), on one thread and on the default count.
  for (const threads of [1, 0]) {
    const t = process.hrtime.bigint();
    nativeFs()?.walkTree(root, '', [], threads);
    record(`native walkTree alone, ${threads === 0 ? 'default threads' : '1 thread'}`, ms(t));
  }
  let t = process.hrtime.bigint();
  execFileSync('find', [root, '-printf', '%i %m %U %G %s %T@ %C@ %p\\n'], { maxBuffer: 1 << 30 });
  record('GNU find -printf (metadata of every entry, output read by node)', ms(t));

  const walk = new Snapshotter({ root, ignore, workDir: work });
  await walk.init();
  writeFileSync(join(root, 'd1', 'new-file'), `round ${r}`);
  walk.markAll();
  t = process.hrtime.bigint();
  await walk.snapshot(`walk-${r}.tar.gz`);
  record('one-file RUN, walk strategy: snapshot', ms(t));

  const ov = new Snapshotter({ root, ignore, workDir: work });
  await ov.init();
  const dirs = await overlayDirsFor(join(base, 'scratch'), root);
  const argv = overlayArgv(TOOLS, dirs, { uid: 0, gid: 0 }, ['/bin/sh', '-c', 'echo "$2" > "$1/d2/new-file"', 'sh', dirs.merged, `round ${r}`]);
  const res = spawnSync(argv[0], argv.slice(1));
  if (res.status !== 0) throw new Error(res.stderr.toString());
  t = process.hrtime.bigint();
  await ov.mergeUpper(dirs.upper);
  await ov.snapshot(`overlay-${r}.tar.gz`);
  record('one-file RUN, overlay strategy: merge + snapshot', ms(t));
  rmSync(join(dirs.upper, '..'), { recursive: true, force: true });
}
rmSync(base, { recursive: true, force: true });
console.log(`| measurement (${rounds} rounds) | median ms | min ms |\n|---|---|---|`);
for (const [k, v] of Object.entries(results)) console.log(`| ${k} | ${median(v).toFixed(0)} | ${Math.min(...v).toFixed(0)} |`);
