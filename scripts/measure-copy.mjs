// Times kiln's COPY engine (dist/instructions/copy/copy-files.js, so `npm run build` first) on a directory
// of small files, against `cp -a` of the same tree in the same run, alternating:
//   node scripts/measure-copy.mjs [files=20000] [rounds=5] [parent dir=/tmp]
// The context is 1,000 files a directory (as bench/cases.mjs writes it); each round copies it into a
// fresh, empty rootfs as `COPY files/ /files/` would, with --chown-like 0:0 ownership.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeSmallFiles } from '../bench/cases.mjs';
import { copyIntoRootfs } from '../dist/instructions/copy/copy-files.js';

const count = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 5);
const parent = process.argv[4] ?? '/tmp';
const work = mkdtempSync(join(parent, 'kiln-measure-copy-'));
try {
  const ctx = join(work, 'ctx');
  writeSmallFiles(join(ctx, 'files'), count);
  const site = { file: 'Dockerfile', line: 1, source: 'COPY files/ /files/' };
  const kiln = [];
  const cp = [];
  for (let r = 0; r < rounds; r++) {
    const root = join(work, `root-${r}`);
    mkdirSync(root);
    const t0 = performance.now();
    await copyIntoRootfs({
      sourceRoot: ctx, sources: ['files'], multiple: false, destRoot: root, dest: '/files/',
      owner: { uid: 0, gid: 0 }, chmod: undefined, excluded: () => false, site,
    });
    kiln.push((performance.now() - t0) / 1000);
    const cpRoot = join(work, `cp-${r}`);
    const t1 = performance.now();
    execFileSync('cp', ['-a', join(ctx, 'files'), cpRoot]);
    cp.push((performance.now() - t1) / 1000);
    rmSync(root, { recursive: true, force: true });
    rmSync(cpRoot, { recursive: true, force: true });
    console.log(`round ${r + 1}: kiln ${kiln.at(-1).toFixed(2)} s, cp -a ${cp.at(-1).toFixed(2)} s`);
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`${count} files in ${parent}, ${rounds} rounds: kiln median ${med(kiln).toFixed(2)} s (${((med(kiln) / count) * 1e6).toFixed(0)} µs/file), cp -a median ${med(cp).toFixed(2)} s`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
