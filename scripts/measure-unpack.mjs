// Measures unpacking a layer of many small files (not part of the test suite): kiln's unpackLayer
// against GNU `tar -x` on the same tar, alternating, in the same run.
// Usage: npm run build && node scripts/measure-unpack.mjs [files=100000] [rounds=5] [parent dir=os.tmpdir()]   (as root)
// A tmpfs parent (/dev/shm) shows the per-entry cost of the unpacker itself: on the ext4 of these VMs
// the kernel spends ~170 µs creating each small file, which hides it.
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IgnoreList } from '../dist/rootfs/ignore-list.js';
import { unpackLayer } from '../dist/rootfs/unpack.js';

const files = Number(process.argv[2] ?? 100_000);
const rounds = Number(process.argv[3] ?? 5);
const base = mkdtempSync(join(process.argv[4] ?? tmpdir(), "kiln-unpack-"));
const src = join(base, 'src');
const perDir = 100;
for (let d = 0; d * perDir < files; d++) {
  const dir = join(src, `usr/share/d${d % 20}`, `s${d}`);
  mkdirSync(dir, { recursive: true });
  for (let f = 0; f < perDir - 1; f++) writeFileSync(join(dir, `file-${f}.txt`), 'x'.repeat(f % 200));
  symlinkSync('file-0.txt', join(dir, 'link'));
}
const layer = join(base, 'layer.tar');
execFileSync('tar', ['-cf', layer, '--numeric-owner', '-C', src, '.']);
rmSync(src, { recursive: true, force: true });

const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
const record = (name, v) => (results[name] ??= []).push(v);
const ignore = IgnoreList.empty();
const fresh = (name) => {
  const dir = join(base, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  execFileSync('sync');
  return dir;
};
for (let r = 0; r < rounds; r++) {
  let dir = fresh('kiln');
  let t = process.hrtime.bigint();
  const stats = await unpackLayer(dir, createReadStream(layer, { highWaterMark: 1 << 20 }), { ignore });
  record(`kiln unpackLayer (${stats.entries} entries)`, ms(t));
  dir = fresh('gnu');
  t = process.hrtime.bigint();
  execFileSync('tar', ['-xf', layer, '-C', dir, '--numeric-owner', '--same-owner', '-p']);
  record('GNU tar -x --same-owner -p', ms(t));
}
for (const [name, xs] of Object.entries(results)) console.log(`${name}: median ${median(xs).toFixed(0)} ms  [${xs.map((x) => x.toFixed(0)).join(', ')}]`);
rmSync(base, { recursive: true, force: true });
