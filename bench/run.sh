#!/usr/bin/env bash
# `npm run bench`: kiln against buildah (`buildah bud --isolation chroot --storage-driver vfs`) on a
# fixed set of Dockerfiles, in the same run, alternating, several rounds; prints per-case median wall
# time, peak RSS and the ratio kiln/buildah, and writes them to bench/results/ (gitignored).
#
# Both tools start from the same base images (made by scripts/make-base-images.sh and umoci, pushed to a
# local docker-registry this script starts) and push their result to that registry, so each does the
# whole job: pull, unpack, build, snapshot/commit, compress, push.
#
# Environment:
#   KILN_BENCH_ROUNDS=3        rounds (each round builds every case once with each tool)
#   KILN_BENCH_CASES=a,b       only these cases (names as printed); default: all
#   KILN_BENCH_DEBIAN=0        skip the debootstrapped Debian + apt-get case (it needs the Debian mirror:
#                              debootstrap once per work dir, then apt-get downloads in every build)
#   KILN_BENCH_DISK=0          skip kiln with --rootfs-tmpfs never (its stage filesystems on disk)
#   KILN_BENCH_WORK=DIR        where data, registry and storage go (default: a temp dir, removed)
#   KILN_BENCH_COMPRESSION=0   skip the layer-compression throughput table (bench/compression.mjs)
#   KILN_BENCH_CACHE=0         skip the registry layer-cache rebuild (bench/cache-bench.mjs)
#   KILN_BENCH_CONTAINER=0     skip kiln's executor image in podman (bench/container-bench.mjs: the kaniko
#                              cases in a container, beside kiln on the host and kaniko's reference figures)
#   KILN_BENCH_EXECUTOR_TAR=F  the executor image for it as a docker-archive tarball (default: built by
#                              scripts/build-executor-image.sh into the work dir, a few minutes)
#   KILN_BENCH_HOST=0          leave out its host-mode figures
#   KILN_BENCH_PODMAN_DISK=vm  podman's storage on the VM's disk instead of a journaled ext4 of its own (container-bench.mjs)
# Run as root (buildah and kiln's sandbox mode both need it, as in the test suite).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# The benchmark's own tools: buildah (the peer), GNU time (peak RSS), debootstrap (the Debian case).
need=(buildah time)
[[ ${KILN_BENCH_DEBIAN:-1} == 0 ]] || need+=(debootstrap)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

work=${KILN_BENCH_WORK:-$(mktemp -d /tmp/kiln-bench-XXXXXX)}
mkdir -p "$work"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# shellcheck source=scripts/local-registry.sh
. scripts/local-registry.sh
registry_pid=
cleanup() {
  [[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null || true
  [[ -n ${KILN_BENCH_WORK:-} ]] || rm -rf "$work"
}
trap cleanup EXIT
start_local_registry "$work" "$port"

mkdir -p bench/results
if [[ ${KILN_BENCH_COMPRESSION:-1} != 0 ]]; then
  node bench/compression.mjs --work "$work/compression"
  rm -rf "$work/compression"
fi
node bench/build-bench.mjs --registry "127.0.0.1:$port" --work "$work"
[[ ${KILN_BENCH_CACHE:-1} == 0 ]] || node bench/cache-bench.mjs --registry "127.0.0.1:$port" --work "$work"
[[ ${KILN_BENCH_CONTAINER:-1} == 0 ]] || node bench/container-bench.mjs --registry "127.0.0.1:$port" --work "$work"
