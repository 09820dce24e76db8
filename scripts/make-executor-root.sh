#!/usr/bin/env bash
# Assembles the executor image's filesystem into OUTDIR: exactly what the final stages of
# Dockerfile.executor hold (that Dockerfile runs this script in its build stage), so a test can also
# chroot into OUTDIR and exercise the image's tree without a container engine.
#
#   scripts/make-executor-root.sh [--busybox PATH] OUTDIR
#
# OUTDIR/kaniko/executor      static launcher (scripts/executor-launcher.c): loader + node + kiln
# OUTDIR/kaniko/warmer        the same launcher (a hard link) for bin/warmer.js: kaniko's base-image cache warmer
# OUTDIR/kaniko/bin/node      $NODE (else this machine's node), stripped of its debug symbols (-18 MB)
# OUTDIR/kaniko/lib/          node's shared libraries and the dynamic loader, as ldd finds them
# OUTDIR/kaniko/app/          kiln's bundle only: package.json, bin/, dist/bundle/kiln.cjs and its V8 code
#                             cache (.v8cache.zst: every function, made here with the node above), the clouds' bundles
#                             (dist/bundle/kiln-{aws,gcp,azure}.cjs.br), build/Release/kiln_native.node and build/Release/kiln-isolate
#                             (static: runs each RUN in namespaces of its own, native/kiln-isolate.c). No
#                             node_modules/, no tsc output, no source map: the bundle holds all of kiln
#                             and its dependencies.
# OUTDIR/kaniko/bin/zstd      the same launcher (a hard link) for OUTDIR/kaniko/libexec/zstd (this machine's zstd, its libraries in
#                             kaniko/lib): `--compression zstd` and zstd layers in container mode
# OUTDIR/kaniko/ssl/certs/    CA bundle, if this machine has one (SSL_CERT_DIR in the image)
# OUTDIR/kaniko/.docker/      DOCKER_CONFIG in the image; empty
# OUTDIR/workspace/           the default build context
# OUTDIR/busybox/             with --busybox: that static busybox and a symlink per applet (the :debug image)
set -euo pipefail

die() { echo "make-executor-root: $*" >&2; exit 1; }

busybox=
if [[ ${1:-} == --busybox ]]; then
  [[ $# -ge 2 ]] || die "usage: $0 [--busybox PATH] OUTDIR"
  busybox=$2
  shift 2
fi
[[ $# -eq 1 ]] || die "usage: $0 [--busybox PATH] OUTDIR"
out=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_bin=$(readlink -f "${NODE:-$(command -v node || true)}")
# musl: a static program of its is ~10 KB, against glibc's ~670 KB (the image's size is a target).
cc=${CC:-musl-gcc}
bundle=$repo/dist/bundle/kiln.cjs

[[ -x $node_bin ]] || die "node not found (set NODE=/path/to/node)"
[[ -f $bundle ]] || die "$bundle is missing: run npm run build first"
[[ ! -f $repo/dist/cli/main.js || ! $repo/dist/cli/main.js -nt $bundle ]] || die "$bundle is older than dist/ (run npm run build, not tsc alone)"
command -v "$cc" >/dev/null || die "$cc not found: the launcher is compiled (apt-get install musl-tools, or set CC)"
command -v ldd >/dev/null || die "ldd not found"
command -v strip >/dev/null || die "strip not found (apt-get install binutils)"
if [[ -n $busybox ]]; then
  [[ -x $busybox ]] || die "$busybox not found (apt-get install busybox-static)"
  ! ldd "$busybox" >/dev/null 2>&1 || die "$busybox is dynamically linked: /busybox must work after a build has emptied / (apt-get install busybox-static)"
fi
[[ -e $out/kaniko ]] && die "$out/kaniko already exists"

# The code cache below is made with this V8 random seed, so that the same sources give the same cache
# (and image digest): V8 lays out a code cache by its string hashes, whose seed is random in every
# process, so a cache made with node's defaults differs on every build. --random-seed fixes that seed
# for the one node that makes the cache, and V8 leaves --random-seed out of the flags it hashes into a
# cache, so a node started with no flag at all (the image's, by the launcher) takes the cache, with a
# random hash seed of its own (hash-flooding resistance kept). Before, the image's node ran with a
# fixed --hash-seed: V8 hashes that flag into every code cache, so node rejected its own built-in
# modules' caches and compiled crypto, tls, http and streams at every start (~25-40 ms of CPU).
# And with --predictable (V8 leaves it out of the hash too): without it, V8 compiles on background
# threads while the bundle runs, and which functions are compiled when the cache is taken depends on
# how busy the machine is. 3 of 6 caches differed with the CPUs loaded, none with --predictable.
readonly CACHE_RANDOM_SEED=1802071150
readonly CACHE_FLAGS=(--random-seed=$CACHE_RANDOM_SEED --predictable)

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

# Stripped: node's releases carry their symbols (~18 MB of a 127 MB binary); stack traces of JavaScript
# need none of them.
strip -o "$k/bin/node" "$node_bin"
# One static launcher, hard-linked under each name it answers to (see scripts/executor-launcher.c).
"$cc" -static -Os -s -DKILN_LOADER="\"/kaniko/lib/$loader\"" \
  -o "$k/executor" "$repo/scripts/executor-launcher.c"
ln "$k/executor" "$k/warmer"

# zstd (--compression zstd, zstd layers), started like node: in container mode `/` is the build's.
zstd_bin=$(readlink -f "$(command -v zstd || true)")
if [[ -x $zstd_bin ]]; then
  install -d -m 0755 "$k/libexec"
  cp -L "$zstd_bin" "$k/libexec/zstd"
  copy_libs "$zstd_bin"
  ln "$k/executor" "$k/bin/zstd"
else
  echo "make-executor-root: warning: no zstd on this machine: the image cannot write or read zstd layers" >&2
fi

# kiln: the bundle and what loads it. bin/load-kiln.js runs dist/bundle/kiln.cjs when there is no
# dist/cli/main.js beside it, as here.
install -d -m 0755 "$k/app/bin" "$k/app/dist/bundle"
install -m 0644 "$repo/package.json" "$k/app/package.json"
install -m 0644 "$repo/bin/package.json" "$repo/bin/load-kiln.js" "$k/app/bin/"
install -m 0755 "$repo/bin/executor.js" "$repo/bin/warmer.js" "$k/app/bin/"
install -m 0644 "$bundle" "$k/app/dist/bundle/kiln.cjs"
# The bundle's commit: bin/load-kiln.js answers `executor version` from it without loading the bundle.
[[ -f $repo/dist/bundle/commit.txt ]] && install -m 0644 "$repo/dist/bundle/commit.txt" "$k/app/dist/bundle/commit.txt"
# And `--help`'s texts, which it prints from these files without loading the bundle either.
for help in help-executor.txt help-warmer.txt; do
  [[ -f $repo/dist/bundle/$help ]] || die "dist/bundle/$help is missing: run npm run build"
  install -m 0644 "$repo/dist/bundle/$help" "$k/app/dist/bundle/$help"
done
# The clouds' SDKs, each in a bundle of its own that src/cloud/load.ts requires only when a build uses
# that cloud (s3://, gs://, Azure Blob contexts; ECR, GCR/Artifact Registry, ACR logins). Brotli-
# compressed (2.9 MB -> 0.6 MB unpacked; load.ts decompresses one in ~5 ms); the output depends on
# the input bytes only, so reproducible builds stay reproducible.
for cloud in aws gcp azure; do
  [[ -f $repo/dist/bundle/kiln-$cloud.cjs ]] || die "dist/bundle/kiln-$cloud.cjs is missing: run npm run build"
  "$node_bin" -e 'const z = require("node:zlib"), fs = require("node:fs"); const b = fs.readFileSync(process.argv[1]);
    fs.writeFileSync(process.argv[2], z.brotliCompressSync(b, { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11, [z.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }));' \
    "$repo/dist/bundle/kiln-$cloud.cjs" "$k/app/dist/bundle/kiln-$cloud.cjs.br"
  chmod 0644 "$k/app/dist/bundle/kiln-$cloud.cjs.br"
done
# The N-API addon (xattrs, mkfifo, fast readdir), where src/rootfs/native-fs.ts looks for it from the
# bundle; kiln falls back to plain Node when it is missing, slower.
if [[ -f $repo/build/Release/kiln_native.node ]]; then
  install -D -m 0755 "$repo/build/Release/kiln_native.node" "$k/app/build/Release/kiln_native.node"
else
  echo "make-executor-root: warning: build/Release/kiln_native.node is missing (npm ci builds it): the image falls back to plain Node" >&2
fi

# kiln-isolate (native/kiln-isolate.c): container mode runs each RUN through it, in namespaces of its
# own (--run-isolation). Static, like the launcher: in container mode `/` is the build's, not ours.
install -d -m 0755 "$k/app/build/Release"
"$cc" -static -Os -s -D_GNU_SOURCE -o "$k/app/build/Release/kiln-isolate" "$repo/native/kiln-isolate.c"

# The code cache, made by the image's own node (a cache made by another node, or with other flags, is
# rejected and the bundle compiled at every start: ~40 ms), with CACHE_FLAGS: every function of the
# bundle compiled, zstd-compressed (bin/load-kiln.js writeEagerCache: a small build then compiles
# nothing, ~20-30 ms less in the container than the cache of the top level alone that `npm run build`
# makes). Its loader and libraries are the ones just copied, so it runs as it will in the image; the
# check runs it as the launcher does, with no flag.
run_image_node() { "$k/lib/$loader" --library-path "$k/lib" "$k/bin/node" "$@"; }
rm -f "$k/app/dist/bundle/kiln.cjs.v8cache" "$k/app/dist/bundle/kiln.cjs.v8cache.zst"
# A node without zstd in node:zlib (Node 20: a tree made with this machine's node, as
# test/container-mode.test.ts does) gets the top-level cache instead.
run_image_node "${CACHE_FLAGS[@]}" -e 'const k = require(process.argv[1]); if (typeof require("node:zlib").zstdCompressSync === "function") k.writeEagerCache(k.BUNDLE); else k.writeCache(k.BUNDLE, k.runBundle(k.BUNDLE).script);' "$k/app/bin/load-kiln.js"
run_image_node -e 'const k = require(process.argv[1]); process.exit(k.runBundle(k.BUNDLE).script.cachedDataRejected === false ? 0 : 1)' \
  "$k/app/bin/load-kiln.js" || die "the image's node rejects the code cache it just made"
chmod 0644 "$k/app/dist/bundle/kiln.cjs.v8cache"*

for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [[ -f $ca ]]; then cp -L "$ca" "$k/ssl/certs/ca-certificates.crt"; break; fi
done

# The :debug image's shell: kaniko's layout (/busybox on PATH), one relative symlink per applet so that
# they keep working wherever the directory is mounted.
if [[ -n $busybox ]]; then
  install -d -m 0755 "$out/busybox"
  install -m 0755 "$busybox" "$out/busybox/busybox"
  for applet in $("$busybox" --list); do
    [[ -e $out/busybox/$applet ]] || ln -s busybox "$out/busybox/$applet"
  done
fi
