#!/usr/bin/env bash
# The README's main job: build fixtures/hello with kiln and push it to a local registry this script
# starts, then show the pushed image with skopeo and run its command from an unpacked copy. Then the
# executor image: kiln builds its own image (Dockerfile.executor), podman loads it, and the same
# fixtures/hello build runs inside it, as users run kaniko's image; the result is pulled and run by
# podman. KILN_DEMO_IMAGE=0 skips the second half (~2 minutes: the image's build stage runs apt-get
# and npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

work="$(mktemp -d /tmp/kiln-demo-XXXXXX)"
port="${KILN_DEMO_PORT:-5000}"
# shellcheck source=scripts/local-registry.sh
. scripts/local-registry.sh
podman_args=()
cleanup() {
  kill "$registry_pid" 2>/dev/null || true
  if [[ ${#podman_args[@]} -gt 0 ]]; then
    podman "${podman_args[@]}" rmi --all --force >/dev/null 2>&1 || true
    grep -o " $work/podman[^ ]*" /proc/self/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
start_local_registry "$work" "$port"

echo "== making a busybox base image with umoci and pushing it with skopeo"
bash scripts/make-base-images.sh "$work/layout" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:busybox" "docker://127.0.0.1:$port/test/busybox:latest"

echo "== building fixtures/hello with kiln"
node bin/executor.js \
  --context dir://fixtures/hello \
  --dockerfile Dockerfile \
  --build-arg "BASE=127.0.0.1:$port/test/busybox:latest" \
  --destination "127.0.0.1:$port/demo/hello:1" \
  --insecure --insecure-pull \
  --digest-file "$work/digest"

echo "== pushed $(cat "$work/digest"); skopeo sees:"
skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/demo/hello:1" | head -n 20
echo "== running the image's command in a chroot of its rootfs (unpacked by umoci)"
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/demo/hello:1" "oci:$work/out:hello"
umoci unpack --image "$work/out:hello" "$work/bundle" >/dev/null
chroot --userspec=1000:1000 "$work/bundle/rootfs" sh -c 'cat /srv/site/index.txt /srv/site/generated.txt'

[[ ${KILN_DEMO_IMAGE:-1} != 0 ]] || exit 0

echo "== building kiln's executor image with kiln (scripts/build-executor-image.sh; apt-get and npm ci run in its build stage)"
bash scripts/build-executor-image.sh --registry "127.0.0.1:$port" \
  --destination "127.0.0.1:$port/kiln/executor:latest" --tar-path "$work/executor.tar" --digest-file "$work/executor.digest"
echo "== pushed kiln/executor@$(cat "$work/executor.digest"): $(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/kiln/executor:latest" \
  | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const m = JSON.parse(s); console.log((m.layers.reduce((n, l) => n + l.size, 0) / 1e6).toFixed(1) + " MB compressed"); })')"

# podman with storage of the demo's own, as it runs on Debian VMs (runc; no default ulimits).
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
podman_args=(--root "$work/podman/storage" --runroot "$work/podman/run" --runtime runc --cgroup-manager cgroupfs)
# The tarball names the image after --destination: podman load prints that name.
image=$(podman "${podman_args[@]}" load -q -i "$work/executor.tar" | sed -n 's/^Loaded image[(s)]*: *//p' | head -n 1)
[[ -n $image ]] || { echo "demo: podman load named no image" >&2; exit 1; }
echo "== podman loaded the --tar-path copy: $(podman "${podman_args[@]}" image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB unpacked", $1 / 1e6 }')"

echo "== building fixtures/hello inside the executor image, run by podman (unprivileged)"
podman "${podman_args[@]}" run --rm --network=host -v "$PWD/fixtures/hello:/workspace:ro" "$image" \
  --dockerfile Dockerfile --context dir:///workspace \
  --build-arg "BASE=127.0.0.1:$port/test/busybox:latest" \
  --destination "127.0.0.1:$port/demo/hello:2"
echo "== podman pulls and runs what the executor image built"
podman "${podman_args[@]}" run --rm --tls-verify=false --network=host "127.0.0.1:$port/demo/hello:2"
