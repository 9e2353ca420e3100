#!/usr/bin/env bash
# Sets up this machine and runs Kuvert locally to try it (see README, "Quick start").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node --disable-warning=DEP0060 scripts/try-locally.ts
