#!/usr/bin/env bash
# Sets up this machine for Kuvert. Safe to run again; does nothing that is done already.
#
#   scripts/setup.sh           to run Kuvert (the quick start): a supported Node.js, ClamAV's clamd,
#                              the npm dependencies and the staff console
#   scripts/setup.sh --tests   the same, and what the test suites start or call: a PostgreSQL
#                              server, Chromium (browser tests), poppler-utils (PDF letters),
#                              Swift and memcached (an S3-compatible store for S3 staging)
#
# The supported Node.js versions are those of package.json's engines.node (bin/node-range.cjs).
# Changes outside this checkout (Debian packages, /usr/local/bin/node) are announced before they
# are made.
set -euo pipefail
cd "$(dirname "$0")/.."

tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) tests=1 ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scripts/setup.sh: unknown option $arg (known: --tests)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------------------------------------
# Node.js: the range in package.json. Where the system's Node is outside it, the npm registry's
# `node` package brings a real Node binary into $KUVERT_NODE_HOME (not the system's).
node_ok() { command -v node >/dev/null 2>&1 && node bin/node-range.cjs 2>/dev/null; }

path_line=""
if ! node_ok; then
  command -v npm >/dev/null 2>&1 || { echo "Kuvert needs Node.js $(sed -n 's/.*"node": "\(.*\)".*/\1/p' package.json) and npm to install it; please install Node.js (https://nodejs.org) first." >&2; exit 1; }
  node_home="${KUVERT_NODE_HOME:-$HOME/.cache/kuvert/node}"
  node_bin="$node_home/node_modules/node/bin"
  spec="$(node bin/node-range.cjs --install)"
  if [ ! -x "$node_bin/node" ] || ! "$node_bin/node" bin/node-range.cjs 2>/dev/null; then
    say "Installing Node.js ($spec) into $node_home (outside this checkout)"
    npm_config_nodedir= npm install --prefix "$node_home" --no-save --no-package-lock --no-audit --no-fund "$spec" >&2
  fi
  if is_root; then
    say "Linking /usr/local/bin/node to $node_bin/node (outside this checkout; was: $(readlink -f /usr/local/bin/node 2>/dev/null || echo none))"
    ln -sf "$node_bin/node" /usr/local/bin/node
    hash -r
  fi
  export PATH="$node_bin:$node_home/node_modules/.bin:$PATH"
  node_ok || { echo "Node.js is installed in $node_bin but another node comes first on PATH." >&2; exit 1; }
  if ! is_root; then path_line="export PATH=\"$node_bin:\$PATH\""; fi
fi
say "Node.js $(node --version) ($(command -v node))"

# ---------------------------------------------------------------------------------------------
# Debian packages, without recommends: first what running needs, then what the tests need.
missing=()

# The run part: clamd (the quick start's database is embedded; Kuvert calls no PostgreSQL tools).
command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)

# The test part (--tests): the suites start a PostgreSQL server, drive Chromium, read PDFs,
# check HAProxy's configuration and stage in an S3-compatible store.
if [ "$tests" = 1 ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  [ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
  # The deployment's balancer configuration is checked with HAProxy itself.
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  # An S3-compatible store for the S3 staging suite: Swift with its s3api, and memcached for its auth.
  for program in swift-proxy swift-object swift-container swift-account; do
    [ -x "/usr/bin/$program-server" ] || missing+=("$program")
  done
  [ -x /usr/bin/memcached ] || missing+=(memcached)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if is_root && command -v apt-get >/dev/null; then
    say "Installing Debian packages ${missing[*]} (outside this checkout: apt-get install --no-install-recommends)"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else
    echo "Please install these Debian packages (as root: apt-get install --no-install-recommends ${missing[*]}), then run scripts/setup.sh again." >&2
    exit 1
  fi
fi

# ---------------------------------------------------------------------------------------------
# The real services some suites run against, from the kits in ../shared when this checkout has
# them (CI does; a clone of its own does not, and those suites say so and skip):
#   ../shared/jitsi-prosody  Prosody with Jitsi's token modules (test/e2e/prosody.test.ts)
#   ../shared/synapse        Synapse 1.67 (npm test's second pass, every e2e suite on Synapse)
if [ "$tests" = 1 ]; then
  kit="$(pwd)/../shared/jitsi-prosody"
  if [ -f "$kit/setup.sh" ] && ! command -v prosody >/dev/null 2>&1; then
    if is_root; then
      say "Installing Prosody for the Jitsi suite ($kit/setup.sh)"
      bash "$kit/setup.sh" >&2
    else
      echo "Please run as root: bash $kit/setup.sh (Prosody for test/e2e/prosody.test.ts), then scripts/setup.sh --tests again." >&2
      exit 1
    fi
  fi
  kit="$(pwd)/../shared/synapse"
  if [ -f "$kit/setup.sh" ]; then
    say "Synapse for the tests ($kit/setup.sh)"
    say "Synapse is in $(bash "$kit/setup.sh")"
  fi
fi

# ---------------------------------------------------------------------------------------------
# npm dependencies and the console: rebuilt only when package-lock.json or the console's sources
# changed since the last time (a stamp with their checksum beside the result).
checksum() { sha256sum "$@" | sha256sum | cut -c1-64; }
lock_sum="$(checksum package-lock.json)"
if [ "$(cat node_modules/.kuvert-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "Installing npm dependencies (npm ci)"
  npm_config_nodedir= npm ci --no-audit --no-fund >&2
  echo "$lock_sum" >node_modules/.kuvert-lock
else
  say "npm dependencies are current (package-lock.json unchanged)"
fi
console_sum="$(find web/console -path web/console/dist -prune -o -type f -print | LC_ALL=C sort | xargs sha256sum package-lock.json | sha256sum | cut -c1-64)"
if [ "$(cat web/console/dist/.kuvert-sources 2>/dev/null)" != "$console_sum" ]; then
  say "Building the staff console (web/console → web/console/dist)"
  npm run --silent build:web >&2
  echo "$console_sum" >web/console/dist/.kuvert-sources
else
  say "The staff console is current (web/console unchanged)"
fi

# ---------------------------------------------------------------------------------------------
if [ -n "$path_line" ]; then
  say "Set up. Node.js $(node --version) is not on your PATH yet; in each new shell, first run:"
  printf '  %s\n' "$path_line" >&2
fi
if [ "$tests" = 1 ]; then
  say "Set up for the tests. Run them with: npm test"
else
  say "Set up to run Kuvert. Try it with scripts/quickstart.sh; for the tests: scripts/setup.sh --tests"
fi
