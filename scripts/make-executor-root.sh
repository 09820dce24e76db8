#!/usr/bin/env bash
# Assembles the executor image's filesystem into OUTDIR: exactly what the final stage of
# Dockerfile.executor holds (that Dockerfile runs this script in its build stage), so a test can chroot
# into OUTDIR and exercise the image without a container engine.
#
#   scripts/make-executor-root.sh OUTDIR
#
# OUTDIR/kaniko/executor      static launcher (scripts/executor-launcher.c): loader + node + kiln
# OUTDIR/kaniko/warmer        the same launcher for bin/warmer.js: kaniko's base-image cache warmer
# OUTDIR/kaniko/bin/node      this machine's node ($NODE, else `command -v node`)
# OUTDIR/kaniko/lib/          node's shared libraries and the dynamic loader, as ldd finds them
# OUTDIR/kaniko/app/          kiln: package.json, bin/, dist/, build/Release/kiln_native.node, node_modules/ (copied as they are:
#                             prune dev dependencies first if size matters; this script runs no npm).
#                             bin/executor.js runs dist/bundle/kiln.cjs (all of kiln and its dependencies,
#                             and a V8 code cache valid for the node that made it: `npm run build` with
#                             this same node); dist/cli/main.js and node_modules/ are what it falls back to
# OUTDIR/kaniko/bin/zstd      static launcher for OUTDIR/kaniko/libexec/zstd (this machine's zstd, its libraries in
#                             kaniko/lib): `--compression zstd` and zstd layers in container mode
# OUTDIR/kaniko/ssl/certs/    CA bundle, if this machine has one (SSL_CERT_DIR in the image)
# OUTDIR/kaniko/.docker/      DOCKER_CONFIG in the image; empty
# OUTDIR/workspace/           the default build context
set -euo pipefail

die() { echo "make-executor-root: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 OUTDIR"
out=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_bin=$(readlink -f "${NODE:-$(command -v node || true)}")
cc=${CC:-cc}

[[ -x $node_bin ]] || die "node not found (set NODE=/path/to/node)"
[[ -f $repo/dist/cli/main.js ]] || die "$repo/dist is missing: run npm run build first"
[[ -d $repo/node_modules ]] || die "$repo/node_modules is missing: run npm ci first"
command -v "$cc" >/dev/null || die "$cc not found: the launcher is compiled (apt-get install gcc libc6-dev)"
command -v ldd >/dev/null || die "ldd not found"
[[ -e $out/kaniko ]] && die "$out/kaniko already exists"

k=$out/kaniko
install -d -m 0755 "$k/bin" "$k/lib" "$k/app" "$k/ssl/certs" "$k/.docker" "$out/workspace"

# A program's libraries under their sonames into kaniko/lib, and its loader (the one ldd line that is a
# bare path) named in $loader.
loader=
copy_libs() {
  local bin=$1 line name path
  while read -r line; do
    case $line in
      *'=> not found'*) die "$bin needs a library ldd cannot find: $line" ;;
      *' => '*) name=${line%% => *}; path=${line#* => }; path=${path%% (*} ;;
      /*) path=${line%% (*}; name=${path##*/}; loader=$name ;;
      *) continue ;; # linux-vdso: provided by the kernel
    esac
    [[ -e $k/lib/$name ]] || cp -L "$path" "$k/lib/$name"
  done < <(ldd "$bin" || die "ldd $bin failed (a static binary needs no launcher; not supported here)")
}
copy_libs "$node_bin"
[[ -n $loader ]] || die "ldd did not report node's dynamic loader"

cp -L "$node_bin" "$k/bin/node"
"$cc" -static -Os -s -DKILN_LOADER="\"/kaniko/lib/$loader\"" -o "$k/executor" "$repo/scripts/executor-launcher.c"
"$cc" -static -Os -s -DKILN_LOADER="\"/kaniko/lib/$loader\"" -DKILN_SCRIPT='"/kaniko/app/bin/warmer.js"' \
  -o "$k/warmer" "$repo/scripts/executor-launcher.c"

# zstd (--compression zstd, zstd layers), started like node: in container mode `/` is the build's.
zstd_bin=$(readlink -f "$(command -v zstd || true)")
if [[ -x $zstd_bin ]]; then
  install -d -m 0755 "$k/libexec"
  cp -L "$zstd_bin" "$k/libexec/zstd"
  copy_libs "$zstd_bin"
  "$cc" -static -Os -s -DKILN_LOADER="\"/kaniko/lib/$loader\"" -DKILN_TARGET='"/kaniko/libexec/zstd"' -DKILN_NO_SCRIPT \
    -o "$k/bin/zstd" "$repo/scripts/executor-launcher.c"
else
  echo "make-executor-root: warning: no zstd on this machine: the image cannot write or read zstd layers" >&2
fi

cp -a "$repo/package.json" "$repo/bin" "$repo/dist" "$repo/node_modules" "$k/app/"
# The N-API addon (xattrs, mkfifo, fast readdir), where dist/rootfs/native-fs.ts looks for it; kiln
# falls back to plain Node when it is missing.
if [[ -f $repo/build/Release/kiln_native.node ]]; then
  install -D -m 0755 "$repo/build/Release/kiln_native.node" "$k/app/build/Release/kiln_native.node"
fi

# kiln still runs without its bundle, or with a code cache another node made, only slower to start
# (dist/ and node_modules/ instead: ~0.15 s; compiling the bundle: ~0.04 s): say so.
if [[ ! -f $k/app/dist/bundle/kiln.cjs || $k/app/dist/cli/main.js -nt $k/app/dist/bundle/kiln.cjs ]]; then
  echo "make-executor-root: warning: dist/bundle/kiln.cjs is missing or older than dist/ (run npm run build, not tsc alone)" >&2
elif ! "$node_bin" -e 'const k = require(process.argv[1]); process.exit(k.runBundle(k.BUNDLE).script.cachedDataRejected === false ? 0 : 1)' \
  "$k/app/bin/load-kiln.js" >/dev/null 2>&1; then
  echo "make-executor-root: warning: $node_bin rejects dist/bundle/kiln.cjs.v8cache (run npm run build with it)" >&2
fi

for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [[ -f $bundle ]]; then cp -L "$bundle" "$k/ssl/certs/ca-certificates.crt"; break; fi
done
