#!/usr/bin/env bash
# kiln's registry client against `skopeo copy`: push and pull of a generated 5-layer, 300 MiB image
# (random data, made at run time, never committed) to a local docker-registry, alternating rounds,
# medians and the kiln/skopeo ratio. Also checks that pushing layers the registry already has
# uploads nothing but the manifest. Options: --rounds N --size-mb N --layers N.
# Needs docker-registry and skopeo (scripts/install-deps.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build >/dev/null   # dist/ and its bundle are what the benchmark runs
exec node bench/registry-bench.mjs "$@"
