#!/usr/bin/env bash
# Assembles the executor image's filesystem into OUTDIR: exactly what the final stage of
# Dockerfile.executor holds (that Dockerfile runs this script in its build stage), so a test can chroot
# into OUTDIR and exercise the image without a container engine.
#
#   scripts/make-executor-root.sh OUTDIR
#
# OUTDIR/kaniko/executor      static launcher (scripts/executor-launcher.c): loader + node + kiln
# OUTDIR/kaniko/bin/node      this machine's node ($NODE, else `command -v node`)
# OUTDIR/kaniko/lib/          node's shared libraries and the dynamic loader, as ldd finds them
# OUTDIR/kaniko/app/          kiln: package.json, bin/, dist/, build/Release/kiln_native.node, node_modules/ (copied as they are:
#                             prune dev dependencies first if size matters; this script runs no npm)
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
[[ -f $repo/dist/cli/main.js ]] || die "$repo/dist is missing: run npx tsc -p tsconfig.json first"
[[ -d $repo/node_modules ]] || die "$repo/node_modules is missing: run npm ci first"
command -v "$cc" >/dev/null || die "$cc not found: the launcher is compiled (apt-get install gcc libc6-dev)"
command -v ldd >/dev/null || die "ldd not found"
[[ -e $out/kaniko ]] && die "$out/kaniko already exists"

k=$out/kaniko
install -d -m 0755 "$k/bin" "$k/lib" "$k/app" "$k/ssl/certs" "$k/.docker" "$out/workspace"

# node's libraries under their sonames, and the loader (the one ldd line that is a bare path).
loader=
while read -r line; do
  case $line in
    *'=> not found'*) die "node needs a library ldd cannot find: $line" ;;
    *' => '*) name=${line%% => *}; path=${line#* => }; path=${path%% (*} ;;
    /*) path=${line%% (*}; name=${path##*/}; loader=$name ;;
    *) continue ;; # linux-vdso: provided by the kernel
  esac
  cp -L "$path" "$k/lib/$name"
done < <(ldd "$node_bin" || die "ldd $node_bin failed (a static node needs no launcher; not supported here)")
[[ -n $loader ]] || die "ldd did not report node's dynamic loader"

cp -L "$node_bin" "$k/bin/node"
"$cc" -static -Os -s -DKILN_LOADER="\"/kaniko/lib/$loader\"" -o "$k/executor" "$repo/scripts/executor-launcher.c"

cp -a "$repo/package.json" "$repo/bin" "$repo/dist" "$repo/node_modules" "$k/app/"
# The N-API addon (xattrs, mkfifo, fast readdir), where dist/rootfs/native-fs.ts looks for it; kiln
# falls back to plain Node when it is missing.
if [[ -f $repo/build/Release/kiln_native.node ]]; then
  install -D -m 0755 "$repo/build/Release/kiln_native.node" "$k/app/build/Release/kiln_native.node"
fi

for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [[ -f $bundle ]]; then cp -L "$bundle" "$k/ssl/certs/ca-certificates.crt"; break; fi
done
