// The benchmark's Dockerfiles. Every case names the base image it starts FROM (made in
// build-bench.mjs, pushed to the local registry) and writes its build context, data included, at run
// time: nothing large is committed. `kaniko` is the reference for kaniko v1.x on the same kind
// of 2-core machine (chroot sandbox, pushing to a local registry): median wall seconds, peak RSS MiB.
import { randomFillSync } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

/** `count` small files of a few dozen bytes under `dir`, 1,000 a directory (d000/f0000 ...). */
export function writeSmallFiles(dir, count) {
  for (let i = 0; i < count; i++) {
    const sub = join(dir, `d${String(Math.floor(i / 1000)).padStart(3, '0')}`);
    if (i % 1000 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${String(i % 1000).padStart(4, '0')}`), `file ${i} of ${count}: some small content\n`);
  }
}

/** `bytes` of random data in `file`, written in 4 MiB blocks (flat memory). */
export function writeRandomFile(file, bytes) {
  const fd = openSync(file, 'w');
  const block = Buffer.allocUnsafe(4 << 20);
  try {
    for (let left = bytes; left > 0; left -= block.length) {
      const n = Math.min(left, block.length);
      randomFillSync(block, 0, n);
      writeSync(fd, block, 0, n);
    }
  } finally {
    closeSync(fd);
  }
}

const df = (...lines) => `${lines.join('\n')}\n`;

/**
 * `data` writes the context's files (once per work dir); `dockerfile` is written before every run, as the
 * bases' references hold the registry's port.
 * @type {Array<{ name: string, what: string, base: string, optIn?: boolean, parallel?: boolean, kaniko?: [number, number], data?: (dir: string) => void, dockerfile: (bases: Record<string, string>) => string }>}
 */
export const CASES = [
  {
    name: 'many-runs',
    what: 'small image, 10 RUNs',
    base: 'busybox',
    dockerfile: (b) => df(`FROM ${b.busybox}`, ...Array.from({ length: 10 }, (_, i) => `RUN mkdir -p /opt/step${i} && echo ${i} > /opt/step${i}/out`)),
  },
  {
    name: 'rootfs-100k-run-one',
    what: '100,000-file rootfs, RUN changes 1 file',
    base: 'files100k',
    dockerfile: (b) => df(`FROM ${b.files100k}`, 'RUN echo changed > /data/d050/f0500'),
  },
  {
    name: 'copy-20k',
    what: 'COPY of 20,000 files',
    base: 'busybox',
    data: (dir) => writeSmallFiles(join(dir, 'files'), 20_000),
    dockerfile: (b) => df(`FROM ${b.busybox}`, 'COPY files/ /files/'),
  },
  {
    name: 'random-500m',
    what: '500 MB random-data layer (COPY)',
    base: 'busybox',
    data: (dir) => writeRandomFile(join(dir, 'random.bin'), 500_000_000),
    dockerfile: (b) => df(`FROM ${b.busybox}`, 'COPY random.bin /data/random.bin'),
  },
  {
    name: 'debian-apt',
    what: 'debootstrapped Debian + apt-get install',
    base: 'debian',
    optIn: true,
    dockerfile: (b) =>
      df(`FROM ${b.debian}`, 'RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends jq >/dev/null && rm -rf /var/lib/apt/lists/*'),
  },
  {
    // Issue 13: independent stages. Built with --jobs (default: twice the cores), and by kiln-j1 with --jobs 1.
    name: 'multi-stage-3',
    what: 'three independent stages of ~1 s of CPU each (on a quiet core), final COPY --from all',
    base: 'busybox',
    parallel: true,
    dockerfile: (b) =>
      df(
        ...['a', 'b', 'c'].flatMap((n) => [`FROM ${b.busybox} AS build-${n}`, `RUN i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done; mkdir /out && echo ${n} $i > /out/${n}`]),
        `FROM ${b.busybox}`,
        'COPY --from=build-a /out/a /out/',
        'COPY --from=build-b /out/b /out/',
        'COPY --from=build-c /out/c /out/',
      ),
  },
  {
    // The same shape with stages that wait (as a download or a remote test would) instead of
    // computing: what parallel stages gain when the CPU is not the limit (a shared 2-core VM often is).
    name: 'multi-stage-3-wait',
    what: 'three independent stages of `sleep 1` each, final COPY --from all',
    base: 'busybox',
    parallel: true,
    dockerfile: (b) =>
      df(
        ...['a', 'b', 'c'].flatMap((n) => [`FROM ${b.busybox} AS build-${n}`, `RUN sleep 1 && mkdir /out && echo ${n} > /out/${n}`]),
        `FROM ${b.busybox}`,
        'COPY --from=build-a /out/a /out/',
        'COPY --from=build-b /out/b /out/',
        'COPY --from=build-c /out/c /out/',
      ),
  },
  {
    name: 'kaniko-basic',
    what: 'busybox + RUN + COPY + ENV + WORKDIR',
    base: 'busybox',
    kaniko: [0.24, 34],
    data: (dir) => writeFileSync(join(dir, 'hello.txt'), 'hello\n'),
    dockerfile: (b) => df(`FROM ${b.busybox}`, 'ENV APP_HOME=/app', 'WORKDIR $APP_HOME', 'COPY hello.txt .', 'RUN cat hello.txt > copied.txt'),
  },
  {
    name: 'kaniko-two-stage',
    what: 'two stages, COPY --from',
    base: 'busybox',
    kaniko: [0.39, 36],
    dockerfile: (b) => df(`FROM ${b.busybox} AS build`, 'RUN mkdir /out && echo artifact > /out/artifact', `FROM ${b.busybox}`, 'COPY --from=build /out/artifact /artifact'),
  },
  {
    name: 'kaniko-dd-200m',
    what: 'RUN dd of 200 MB random data',
    base: 'busybox',
    kaniko: [5.5, 546],
    dockerfile: (b) => df(`FROM ${b.busybox}`, 'RUN dd if=/dev/urandom of=/random.bin bs=1M count=200 2>/dev/null'),
  },
  {
    name: 'kaniko-copy-20k-touch-1k',
    what: 'COPY 20,000 files + RUN touching 1,000',
    base: 'busybox',
    kaniko: [4.6, 49],
    data: (dir) => writeSmallFiles(join(dir, 'files'), 20_000),
    dockerfile: (b) => df(`FROM ${b.busybox}`, 'COPY files/ /files/', 'RUN touch /files/d007/*'),
  },
  {
    // The Debian case, as container-bench.mjs runs it (build-bench.mjs's debian-apt installs jq).
    name: 'kaniko-debian-curl',
    what: 'debian + apt-get install curl',
    base: 'debian',
    optIn: true,
    dockerfile: (b) => df(`FROM ${b.debian}`, 'RUN apt-get update && apt-get install -y curl'),
  },
];
