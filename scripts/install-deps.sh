#!/usr/bin/env bash
# Installs the Debian packages kiln's tests, demo and sandbox mode use, when any is missing.
#   docker-registry  the registry tests and the demo push to (distribution v2)
#   skopeo, umoci    independent checks of what kiln produces; umoci also makes the test base images
#   busybox-static   the test base image's userland
#   bubblewrap       sandbox mode runs RUN with it
#   apache2-utils    htpasswd -B for the Basic-auth registry tests
#   openssl          keys and certificates for the token-auth and TLS registry tests
#   curl             the demo waits for its registry with it
#   podman, runc     the container runtime the executor-image tests run kiln's image in (runc: crun
#                    refuses these VMs' hybrid cgroups); also proves --tar-path output loads
#   debootstrap      the stand-in for node:20-bookworm-slim that the executor image builds FROM
#   musl-tools, binutils  the executor image's static launcher (musl-gcc) and strip
#   bzip2, xz-utils, zstd  ADD extracts .tar.bz2/.tar.xz/.tar.zst archives through them (Node's zlib has none);
#                    zstd also writes --compression zstd layers and reads pulled tar+zstd layers
#   gcc, libc6-dev   the native addon (npm ci runs node-gyp)
#   libcap2-bin      setcap/getcap: the file-capability tests (security.capability in layers)
#   openssh-client   ssh-agent/ssh-add: --ssh with key files, and the RUN --mount=type=ssh tests
#   tmux             a terminal for the progress tests: shows what a user sees of --progress tty
set -euo pipefail
packages=(docker-registry skopeo umoci busybox-static bubblewrap apache2-utils openssl ca-certificates curl gcc libc6-dev musl-tools binutils podman runc debootstrap bzip2 xz-utils zstd libcap2-bin iproute2 git openssh-client tmux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
