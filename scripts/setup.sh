#!/usr/bin/env bash
# Sets up this machine to run and test Kuvert: Node.js 22, the system packages the tests
# start (PostgreSQL), and the npm dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

node_ok() {
  command -v node >/dev/null 2>&1 &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 18) ? 0 : 1)'
}

# Node.js 22 (type stripping, 22.18 or newer). Where the system's Node is older, the npm
# registry's `node` package brings a real Node 22 binary.
if ! node_ok; then
  node_home="${KUVERT_NODE_HOME:-$HOME/.cache/kuvert/node22}"
  if [ ! -x "$node_home/node_modules/node/bin/node" ]; then
    say "Installing Node.js 22 into $node_home"
    npm_config_nodedir= npm install --prefix "$node_home" --no-save --no-package-lock --no-audit --no-fund node@22 >&2
  fi
  if [ "$(id -u)" = 0 ]; then
    ln -sf "$node_home/node_modules/node/bin/node" /usr/local/bin/node
    hash -r
  fi
  export PATH="$node_home/node_modules/.bin:$PATH"
  node_ok || { echo "Node.js 22 is installed in $node_home but not first on PATH: add $node_home/node_modules/.bin to PATH." >&2; exit 1; }
fi
say "Node.js $(node --version)"

# System packages the test suites start or call themselves: PostgreSQL, ClamAV's clamd,
# Chromium (browser tests), poppler-utils (reading and rendering the PDF letters).
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon clamav)
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "Installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "Please install: ${missing[*]} (Debian packages)." >&2
    exit 1
  fi
fi

# Jitsi's Prosody with its real token modules, for test/e2e/prosody.test.ts: the kit in
# ../shared/jitsi-prosody installs it from Debian (the suite skips where the kit is absent).
kit="$(pwd)/../shared/jitsi-prosody"
if [ -f "$kit/setup.sh" ] && ! command -v prosody >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "Installing Prosody for the Jitsi suite ($kit/setup.sh)"
    bash "$kit/setup.sh" >&2
  else
    echo "Please run as root: bash $kit/setup.sh (Prosody for test/e2e/prosody.test.ts)." >&2
    exit 1
  fi
fi

say "Installing npm dependencies"
npm_config_nodedir= npm ci --no-audit --no-fund >&2
say "Building the staff console (web/console → web/console/dist)"
npm run --silent build:web >&2
say "Set up. Run the tests with: npm test"
