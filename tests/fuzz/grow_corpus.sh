#!/usr/bin/env bash
# Regrows the seed corpora in tests/fuzz/corpus/ from real traffic: runs both conformance suites with
# a recording proxy between them and duplex's echo server / Autobahn client (tests/fuzz/capture.py),
# then cuts the captures into seeds for each target (tests/fuzz/make_corpus.py).
#
#   tests/fuzz/grow_corpus.sh BUILD_DIR      (BUILD_DIR holds examples/duplex-echo and duplex-autobahn-client)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="$(cd "${1:?usage: grow_corpus.sh BUILD_DIR}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

here="$(pwd)/tests/fuzz"
cat >"$work/echo" <<SH
#!/bin/sh
exec /usr/bin/python3 "$here/capture.py" echo "$work/captures" "$build/examples/duplex-echo"
SH
cat >"$work/client" <<SH
#!/bin/sh
exec /usr/bin/python3 "$here/capture.py" client "$work/captures" "$build/examples/duplex-autobahn-client" "\$@"
SH
chmod +x "$work/echo" "$work/client"

# The suites' verdicts do not matter here (a proxy changes timing); only the traffic does.
/usr/bin/python3 tests/conformance/server_suite.py --echo "$work/echo" >"$work/server.log" 2>&1 || true
/usr/bin/python3 tests/conformance/client_suite.py --client "$work/client" >"$work/client.log" 2>&1 || true
tail -n 1 "$work/server.log" "$work/client.log"
/usr/bin/python3 tests/fuzz/make_corpus.py "$work/captures" tests/fuzz/corpus
