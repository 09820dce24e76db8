#!/usr/bin/env bash
# Builds the base images kiln's tests (and the README demo) start FROM, into an OCI image layout.
# Deliberately independent of kiln: only bash, coreutils, umoci and busybox-static, so a bug in kiln
# cannot hide itself by producing the images it is then tested against.
#
#   scripts/make-base-images.sh LAYOUT_DIR
#
# Tags written to LAYOUT_DIR/index.json:
#   busybox  one layer: busybox-static + applet symlinks in /bin, /etc/passwd and /etc/group
#            (root 0, nobody 65534, app 1000), /tmp 1777, /root, /home/app (1000:1000);
#            linux/amd64, Env PATH=..., Cmd ["sh"]
#   multi    an OCI image index: linux/amd64 (busybox + /platform "amd64") and
#            linux/arm64 (a single layer holding /platform "arm64")
set -euo pipefail

die() { echo "make-base-images: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 LAYOUT_DIR"
layout=$1
busybox_bin=${BUSYBOX:-/usr/bin/busybox}

command -v umoci >/dev/null || die "umoci not found (apt-get install umoci)"
[[ -x $busybox_bin ]] || die "$busybox_bin not found (apt-get install busybox-static)"
# Captured, not piped into head: with pipefail, head closing early would fail the check (SIGPIPE).
bb_banner=$("$busybox_bin" --help 2>&1 || true)
[[ $bb_banner == BusyBox* ]] || die "$busybox_bin is not busybox"
# A dynamically linked busybox would not run inside the chroot without its libraries.
if command -v ldd >/dev/null && ldd "$busybox_bin" >/dev/null 2>&1; then die "$busybox_bin is dynamically linked; install busybox-static"; fi
[[ -e $layout ]] && die "$layout already exists; give a path to create"

work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-base-images.XXXXXX")
trap 'rm -rf "$work"' EXIT
# umoci needs root to record ownership (0/1000) faithfully; as non-root use --rootless.
rootless=()
[[ $(id -u) -eq 0 ]] || rootless=(--rootless)

readonly PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
readonly ENTRY_RE='{[^{}]*{[^{}]*"org.opencontainers.image.ref.name":"%s"[^{}]*}[^{}]*}'

# The manifest descriptor umoci wrote to index.json for a tag, as its JSON text.
descriptor_of() {
  local tag=$1 re
  # shellcheck disable=SC2059
  re=$(printf "$ENTRY_RE" "$tag")
  grep -o "$re" "$layout/index.json" | head -n1 || true
}

digest_of() {
  descriptor_of "$1" | grep -o 'sha256:[0-9a-f]\{64\}' | head -n1
}

blob_size() {
  stat -c %s "$layout/blobs/sha256/${1#sha256:}"
}

unpack() { umoci unpack "${rootless[@]}" --image "$layout:$1" "$2" >/dev/null; }
repack() { umoci repack --image "$layout:$1" --history.created_by "$3" "$2"; }

umoci init --layout "$layout"

# --- busybox: one layer -------------------------------------------------------------------------
# `umoci new` starts with zero layers and each repack adds exactly one, so populate the whole
# rootfs in a single unpack/repack round.
umoci new --image "$layout:busybox"
umoci config --image "$layout:busybox" --no-history --os linux --architecture amd64
unpack busybox "$work/bb"
root="$work/bb/rootfs"
install -d -m 0755 "$root/bin" "$root/etc" "$root/home" "$root/root"
install -d -m 1777 "$root/tmp"
install -d -m 0755 "$root/home/app"
# As non-root (README demo) ownership cannot be set; the tests run as root and check it.
[[ ${#rootless[@]} -gt 0 ]] || chown 1000:1000 "$root/home/app"
install -m 0755 "$busybox_bin" "$root/bin/busybox"
# Every applet as a relative symlink in /bin (kaniko's busybox debug image does the same).
for applet in $("$busybox_bin" --list); do
  [[ $applet == busybox || -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
done
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
app:x:1000:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
repack busybox "$work/bb" 'make-base-images: busybox rootfs'
umoci config --image "$layout:busybox" --no-history \
  --config.env "$PATH_ENV" --config.cmd sh

# --- multi: linux/amd64 + linux/arm64 -----------------------------------------------------------
umoci tag --image "$layout:busybox" multi-amd64
unpack multi-amd64 "$work/amd64"
printf 'amd64' >"$work/amd64/rootfs/platform"
repack multi-amd64 "$work/amd64" 'make-base-images: /platform'

umoci new --image "$layout:multi-arm64"
umoci config --image "$layout:multi-arm64" --no-history --os linux --architecture arm64
unpack multi-arm64 "$work/arm64"
printf 'arm64' >"$work/arm64/rootfs/platform"
repack multi-arm64 "$work/arm64" 'make-base-images: /platform'

amd64_digest=$(digest_of multi-amd64)
arm64_digest=$(digest_of multi-arm64)
busybox_desc=$(descriptor_of busybox)
[[ -n $amd64_digest && -n $arm64_digest && -n $busybox_desc ]] || die "could not read umoci's index.json"

mt_manifest='application/vnd.oci.image.manifest.v1+json'
mt_index='application/vnd.oci.image.index.v1+json'
index_json=$(printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s,%s]}' "$mt_index" \
  "$(printf '{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}' \
    "$mt_manifest" "$amd64_digest" "$(blob_size "$amd64_digest")")" \
  "$(printf '{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"arm64","os":"linux"}}' \
    "$mt_manifest" "$arm64_digest" "$(blob_size "$arm64_digest")")")
printf '%s' "$index_json" >"$work/index-blob"
index_hex=$(sha256sum "$work/index-blob" | cut -d' ' -f1)
index_size=$(stat -c %s "$work/index-blob")
mv "$work/index-blob" "$layout/blobs/sha256/$index_hex"

# Rewrite index.json with exactly the two public tags; the per-platform manifests stay reachable
# through the index blob, so the helper tags are dropped rather than garbage-collected.
printf '{"schemaVersion":2,"manifests":[%s,{"mediaType":"%s","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"multi"}}]}' \
  "$busybox_desc" "$mt_index" "$index_hex" "$index_size" >"$layout/index.json.tmp"
mv "$layout/index.json.tmp" "$layout/index.json"
