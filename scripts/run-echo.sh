#!/usr/bin/env bash
# Installs and builds only what the echo sample needs (scripts/setup.sh sample: its packages and
# duplex-echo alone), then starts it on http://localhost:5000 (WebSockets at /ws).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh sample
exec build/examples/duplex-echo --urls "${DUPLEX_URLS:-http://localhost:5000}" "$@"
