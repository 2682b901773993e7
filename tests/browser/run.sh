#!/usr/bin/env bash
# Chromium against duplex-echo and duplex-chat (tests/browser/browser_test.js). Installs what is missing — Debian's
# chromium, nodejs and npm, and playwright-core from the npm registry at the version package-lock.json
# pins — then runs the test against build/ (scripts/setup.sh builds it).
#
#   tests/browser/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build}"

missing=()
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || missing+=(chromium)
# node and npm may come from Debian (nodejs, npm) or from a nodejs package that carries npm itself.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  echo "browser: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund --silent)
[ -x "$build/examples/duplex-echo" ] && [ -x "$build/examples/duplex-chat" ] || scripts/setup.sh
timeout 300 node tests/browser/browser_test.js --echo "$build/examples/duplex-echo" --chat "$build/examples/duplex-chat" \
  --chromium /usr/bin/chromium
