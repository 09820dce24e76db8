#!/usr/bin/env bash
# Builds kiln's executor image (Dockerfile.executor) with kiln itself, on this machine (sandbox mode).
#
#   scripts/build-executor-image.sh [--registry HOST:PORT] [--docker-hub] [--target executor|debug] KILN_FLAGS...
#
# KILN_FLAGS say where the image goes, as for any kiln build: --destination REF (repeatable), --tar-path
# FILE, --oci-layout-path DIR, --digest-file FILE, --no-push. Added before them (a later flag wins):
# --reproducible (the same sources give the same digest) and --compression zstd --compression-level 19
# (~32 MB to pull, against ~43 MB with gzip; zstd layers need Docker 23, containerd 1.5 or podman 2 and
# later: pass --compression gzip --compression-level 9 for older runtimes). Level 19 takes ~35 s.
#
# The build stage starts FROM node:20-bookworm-slim. Docker Hub cannot be reached from the machines kiln
# is developed on, so by default that image is a stand-in (scripts/make-node-base.sh: a debootstrapped
# bookworm with this machine's node) served by a registry on loopback, and kiln maps docker.io to it
# (--registry-map). --registry HOST:PORT uses a registry already running there (plain HTTP, loopback)
# and pushes the stand-in to it once; without it a temporary registry is started and stopped again.
# --docker-hub uses the real node:20-bookworm-slim instead.
set -euo pipefail

die() { echo "build-executor-image: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
registry=
docker_hub=false
target=executor
while [[ $# -gt 0 ]]; do
  case $1 in
    --registry) [[ $# -ge 2 ]] || die "--registry needs HOST:PORT"; registry=$2; shift 2 ;;
    --registry=*) registry=${1#*=}; shift ;;
    --docker-hub) docker_hub=true; shift ;;
    --target) [[ $# -ge 2 ]] || die "--target needs executor or debug"; target=$2; shift 2 ;;
    --target=*) target=${1#*=}; shift ;;
    *) break ;;
  esac
done
[[ $target == executor || $target == debug ]] || die "--target must be executor or debug, not $target"
[[ $# -gt 0 ]] || die "say where the image goes: --destination REF, --tar-path FILE, --oci-layout-path DIR (with --no-push)"

cd "$repo"
# The kiln that builds the image is this checkout's, built once. Not rebuilt when it is there: the
# image's own kiln is built from the sources inside Dockerfile.executor, and rebuilding dist/ here
# would rewrite files other kiln processes (the tests running beside this) are reading.
[[ -d node_modules ]] || npm ci --no-audit --no-fund
[[ -f dist/bundle/kiln.cjs ]] || npm run --silent build >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-executor-image.XXXXXX")
registry_pid=
cleanup() {
  [[ -z $registry_pid ]] || kill "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

map=()
if [[ $docker_hub == false ]]; then
  if [[ -z $registry ]]; then
    port=$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
    # shellcheck source=scripts/local-registry.sh
    . scripts/local-registry.sh
    start_local_registry "$work/registry" "$port"
    registry=127.0.0.1:$port
  fi
  base=$registry/library/node:20-bookworm-slim
  if ! skopeo inspect --raw --tls-verify=false "docker://$base" >/dev/null 2>&1; then
    echo "build-executor-image: making the stand-in for node:20-bookworm-slim (debootstrap, ~30 s)" >&2
    bash scripts/make-node-base.sh "$work/node-base"
    skopeo copy -q --dest-tls-verify=false "oci:$work/node-base:node" "docker://$base"
    rm -rf "$work/node-base"
  fi
  map=(--registry-map "index.docker.io=$registry")
fi

# `executor version` names this commit (Dockerfile.executor's context has no .git).
commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || true)

# The build stage's RUNs download Debian packages and npm packages: they need the network, as with
# any builder. The work dir is kiln's own (stage trees, layers), removed when it ends.
node bin/executor.js \
  --dockerfile Dockerfile.executor \
  --context "dir://$repo" \
  --target "$target" \
  --build-arg "KILN_COMMIT=$commit" \
  "${map[@]}" \
  --reproducible \
  --compression zstd --compression-level 19 \
  "$@"
