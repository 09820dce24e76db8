#!/usr/bin/env bash
# The README's main job: build fixtures/hello with kiln and push it to a local registry this script
# starts, then show the pushed image with skopeo and run its command from an unpacked copy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build

work="$(mktemp -d /tmp/kiln-demo-XXXXXX)"
port="${KILN_DEMO_PORT:-5000}"
# shellcheck source=scripts/local-registry.sh
. scripts/local-registry.sh
trap 'kill $registry_pid 2>/dev/null; rm -rf "$work"' EXIT
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
