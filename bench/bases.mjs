// The benchmarks' base images, made without kiln (scripts/make-base-images.sh, umoci, debootstrap) and
// pushed to the benchmark's registry: build-bench.mjs and container-bench.mjs share them, and a shared
// work dir (KILN_BENCH_WORK) makes the slow ones once (a `<name>.base-made` marker beside them).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSmallFiles } from './cases.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sh(cmd, argv, opts = {}) {
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26, ...opts })?.toString() ?? '';
}

/**
 * Pushes `busybox` and the bases in `needed` (`files100k`, `debian`) to `REGISTRY/bench/<name>:base`;
 * returns their references by name. `log` prints the slow steps.
 * @param {{ work: string, registry: string, needed: ReadonlySet<string>, log: (msg: string) => void }} opts
 */
export function makeBases({ work, registry, needed, log }) {
  const layout = join(work, 'layout');
  const bases = {};
  if (!existsSync(layout)) sh('bash', [join(REPO, 'scripts/make-base-images.sh'), layout]);
  const push = (tag, name) => {
    const ref = `${registry}/bench/${name}:base`;
    sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${ref}`]);
    bases[name] = ref;
  };
  push('busybox', 'busybox');
  // Made once per work dir (KILN_BENCH_WORK keeps them between runs).
  const marker = (name) => join(work, `${name}.base-made`);
  if (needed.has('files100k') && !existsSync(marker('files100k'))) {
    log('making the 100,000-file base image (busybox + /data) with umoci');
    const bundle = join(work, 'files100k-bundle');
    rmSync(bundle, { recursive: true, force: true });
    sh('umoci', ['tag', '--image', `${layout}:busybox`, 'files100k']);
    sh('umoci', ['unpack', '--image', `${layout}:files100k`, bundle]);
    writeSmallFiles(join(bundle, 'rootfs', 'data'), 100_000);
    sh('umoci', ['repack', '--image', `${layout}:files100k`, '--history.created_by', 'bench: 100,000 files in /data', bundle]);
    rmSync(bundle, { recursive: true, force: true });
    writeFileSync(marker('files100k'), '');
  }
  if (needed.has('files100k')) push('files100k', 'files100k');
  if (needed.has('debian') && !existsSync(marker('debian'))) {
    log('debootstrapping a minimal Debian (bookworm) base image; this takes a few minutes');
    const bundle = join(work, 'debian-bundle');
    rmSync(bundle, { recursive: true, force: true });
    sh('umoci', ['new', '--image', `${layout}:debian`]);
    sh('umoci', ['config', '--image', `${layout}:debian`, '--no-history', '--os', 'linux', '--architecture', 'amd64']);
    sh('umoci', ['unpack', '--image', `${layout}:debian`, bundle]);
    sh('debootstrap', ['--variant=minbase', 'bookworm', join(bundle, 'rootfs'), debianMirror()], { stdio: ['ignore', 'ignore', 'inherit'] });
    sh('umoci', ['repack', '--image', `${layout}:debian`, '--history.created_by', 'bench: debootstrap --variant=minbase bookworm', bundle]);
    sh('umoci', ['config', '--image', `${layout}:debian`, '--no-history', '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', '--config.cmd', 'bash']);
    rmSync(bundle, { recursive: true, force: true });
    writeFileSync(marker('debian'), '');
  }
  if (needed.has('debian')) push('debian', 'debian');
  return bases;
}

/** The Debian mirror this machine's apt uses (deb822 sources or sources.list): the only one reachable. */
export function debianMirror() {
  const texts = [];
  for (const dir of ['/etc/apt/sources.list.d']) {
    if (existsSync(dir)) for (const f of readdirSync(dir)) texts.push(readFileSync(join(dir, f), 'utf8'));
  }
  if (existsSync('/etc/apt/sources.list')) texts.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  for (const t of texts) {
    const m = /^URIs:\s*(\S+\/debian)\s*$/m.exec(t) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\b/m.exec(t);
    if (m) return m[1];
  }
  throw new Error('bench: no Debian mirror found in /etc/apt sources');
}
