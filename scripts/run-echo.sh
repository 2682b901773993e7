#!/usr/bin/env bash
# Sets up and builds duplex, then starts the echo sample on http://localhost:5000 (WebSockets at /ws).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/examples/duplex-echo --urls "${DUPLEX_URLS:-http://localhost:5000}" "$@"
