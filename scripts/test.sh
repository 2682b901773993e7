#!/usr/bin/env bash
# Sets up and builds duplex, then runs every test suite (unit, stream, allocation, conformance, interop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
status=0
meson test -C build --print-errorlogs "$@" || status=$?
# One closing line in the form any CI reads: counted from Meson's own log of this run.
/usr/bin/python3 - <<'PY'
import json
passed = failed = skipped = 0
with open("build/meson-logs/testlog.json") as log:
    for line in log:
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"): passed += 1
        elif result == "SKIP": skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
