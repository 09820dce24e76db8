#!/usr/bin/env bash
# Makes a stand-in for docker.io/library/node:20-bookworm-slim, the base of Dockerfile.executor's build
# stage, where Docker Hub cannot be reached: a debootstrapped Debian bookworm (minbase) with this
# machine's node and npm where the real image has them (/usr/local/bin, /usr/local/lib/node_modules,
# node's headers in /usr/local/include/node), one layer, written to an OCI image layout with umoci.
# Independent of kiln, like make-base-images.sh: kiln then builds its own image from it.
#
#   scripts/make-node-base.sh LAYOUT_DIR [MIRROR]     (tag: node; MIRROR defaults to Debian's)
set -euo pipefail

die() { echo "make-node-base: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 ]] || die "usage: $0 LAYOUT_DIR [MIRROR]"
layout=$1
mirror=${2:-http://deb.debian.org/debian}
[[ -e $layout ]] && die "$layout already exists; give a path to create"
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
for tool in debootstrap umoci; do command -v "$tool" >/dev/null || die "$tool not found (apt-get install $tool)"; done
node_bin=$(readlink -f "${NODE:-$(command -v node || true)}")
[[ -x $node_bin ]] || die "node not found (set NODE=/path/to/node)"
node_prefix=$(dirname "$(dirname "$node_bin")")
npm_dir=$node_prefix/lib/node_modules/npm
[[ -f $npm_dir/bin/npm-cli.js ]] || die "npm not found at $npm_dir"
[[ -f $node_prefix/include/node/node.h ]] || die "node's headers not found at $node_prefix/include/node (node-gyp builds the addon against them)"
node_version=$("$node_bin" --version)

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-node-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

# This machine's own certificate authorities (a TLS-intercepting proxy's, as on corporate networks and
# on the machines kiln is developed on), so that npm in the build stage reaches the npm registry as it
# does here: copied where Debian's update-ca-certificates picks them up again when the build installs
# ca-certificates, and handed to node as this machine hands them (NODE_EXTRA_CA_CERTS).
local_cas=(/usr/local/share/ca-certificates/*.crt)
[[ -e ${local_cas[0]} ]] || local_cas=()
ca_env=()
[[ ${#local_cas[@]} -eq 0 ]] || ca_env=(--config.env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)

umoci init --layout "$layout"
umoci new --image "$layout:node"
umoci config --image "$layout:node" --no-history --os linux --architecture amd64 \
  --config.env 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --config.env "NODE_VERSION=${node_version#v}" "${ca_env[@]}" \
  --config.cmd node
umoci unpack --image "$layout:node" "$work/bundle" >/dev/null
root=$work/bundle/rootfs

debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || die "debootstrap failed: $(tail -n 5 "$work/debootstrap.log")"
# As a registry's image has them: no device nodes (the runtime makes /dev), no package lists or caches.
find "$root/dev" -mindepth 1 -delete
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb

if [[ ${#local_cas[@]} -gt 0 ]]; then
  install -d -m 0755 "$root/usr/local/share/ca-certificates" "$root/etc/ssl/certs"
  install -m 0644 "${local_cas[@]}" "$root/usr/local/share/ca-certificates/"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi

install -d -m 0755 "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/usr/local/include"
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
cp -a "$node_prefix/include/node" "$root/usr/local/include/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

umoci repack --image "$layout:node" --history.created_by "make-node-base.sh: debootstrap bookworm + node $node_version" "$work/bundle" >/dev/null
