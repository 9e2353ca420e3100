#!/usr/bin/env bash
# Sets this machine up to run Kuvert (scripts/setup.sh: only what running needs, nothing that is
# there and current) and runs it locally with a guided tour (README, "Quick start").
#   scripts/quickstart.sh [--port 8080] [--homeserver-port 8448] [--appservice-port 9993]
#   scripts/quickstart.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The Node.js setup.sh found or installed (without root it is not on PATH yet).
if ! node bin/node-range.cjs 2>/dev/null; then
  PATH="${KUVERT_NODE_HOME:-$HOME/.cache/kuvert/node}/node_modules/node/bin:$PATH"
fi
# glibc's allocator settings of the Docker image (Dockerfile): about 20 MiB less resident memory.
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}"
exec node --disable-warning=DEP0060 scripts/try-locally.ts "$@"
