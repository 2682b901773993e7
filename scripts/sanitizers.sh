#!/usr/bin/env bash
# Runs the test suites under the sanitizers, each build in its own directory beside build/:
#   build-asan  AddressSanitizer + UndefinedBehaviorSanitizer (leaks included): the whole meson test
#               suite (the Python-driven suites spawn the sanitized duplex-echo and clients) but the
#               install test (suite "install": packaging, nothing for a sanitizer to see; 80 s of CI) and
#               the suite "repeat" (runs whose code another run covers, e.g. the client conformance
#               suite over h2c beside the same over h2);
#   build-tsan  ThreadSanitizer: the multi-threaded tests (suite "threads": tests/threads/, and duplex-chat
#               under the chat test and the three-node cluster test).
# Any sanitizer report fails the run, also one from a process whose exit status nobody checks (a server
# a test kills): ASan, LSan and TSan reports go to build-*/sanitizer-logs/ and every file there counts;
# UBSan's (stderr only) are found in meson's test log, and halt_on_error ends the process that hit it.
#
#   scripts/sanitizers.sh [asan|tsan]...      (both when none is named)
#
# Compilers: clang++-16 for ASan + UBSan (its build takes a third of GCC 12's time: the coroutine-heavy
# translation units dominate it; installed here when missing, as tests/fuzz/run.sh does), g++ for TSan
# (GCC 12's TSan has run this suite clean since it was added). ASAN_CXX / TSAN_CXX, or SANITIZER_CXX for
# both, pick others; for clang this script adds -DASIO_HAS_CO_AWAIT=1 (Asio 1.22 does not see clang 16's
# C++20 coroutines by itself).
set -uo pipefail
cd "$(dirname "$0")/.."

phases=("$@")
[ ${#phases[@]} -gt 0 ] || phases=(asan tsan)
asan_cxx="${ASAN_CXX:-${SANITIZER_CXX:-clang++-16}}"
tsan_cxx="${TSAN_CXX:-${SANITIZER_CXX:-g++}}"

ensure_clang16() {
  local missing=() package
  for package in clang-16 libclang-rt-16-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  echo "sanitizers: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup() {  # setup DIR SANITIZERS CXX
  local cxx=$3
  # -O0 -g1: line numbers in reports, and the quickest build; the tests, which wait on sockets, hardly
  # run slower.
  local cpp_args="-O0 -g1"
  case "$cxx" in clang*) cpp_args="$cpp_args -DASIO_HAS_CO_AWAIT=1" ;; esac
  if [ "$cxx" = clang++-16 ]; then ensure_clang16 || return 1; fi
  # A build directory set up with another compiler is set up again.
  if [ -f "$1/build.ninja" ] && ! grep -qF "CXX=$cxx" "$1.setup.log" 2>/dev/null; then rm -rf "$1"; fi
  if [ ! -f "$1/build.ninja" ]; then
    # Benchmarks carry no tests: leave them out of the sanitized builds (the main build compiles them).
    { echo "CXX=$cxx"; CXX="$cxx" meson setup "$1" --buildtype=plain -Dcpp_args="$cpp_args" -Db_sanitize="$2" \
        -Db_lundef=false -Dbenchmarks=false; } >"$1.setup.log" 2>&1 || { cat "$1.setup.log"; return 1; }
  fi
}

# Counts meson's results of the last run in DIR and reports the sanitizer logs; prints one line.
verdict() {  # verdict DIR NAME MESON_STATUS
  local dir=$1 name=$2 status=$3 reports
  reports=$(find "$dir/sanitizer-logs" -type f -size +0 2>/dev/null | sort)
  # GCC's UBSan, linked with ASan, ignores log_path and reports on stderr: meson's log has what the
  # tests printed (halt_on_error makes a process that hits UB exit, which its test notices).
  if grep -qE 'runtime error:|ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer' "$dir/meson-logs/testlog.txt" 2>/dev/null; then
    reports="$reports $dir/meson-logs/testlog.txt"
  fi
  if [ -n "${reports// /}" ]; then
    echo "$name: sanitizer reports:"
    for report in $reports; do
      echo "---- $report"
      grep -m 5 -A 12 -E 'runtime error:|ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer' "$report" | head -n 60
    done
    status=1
  fi
  /usr/bin/python3 - "$dir/meson-logs/testlog.json" "$name" "$([ -n "${reports// /}" ] && echo 1 || echo 0)" <<'PY'
import json, sys
path, name, reported = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
passed = failed = 0
try:
    for line in open(path):
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL", "SKIP"): passed += 1
        else: failed += 1
except FileNotFoundError:
    pass
if reported: failed += 1  # the reports themselves
print(f"{name}: {passed} passed, {failed} failed")
PY
  return $status
}

overall=0
for phase in "${phases[@]}"; do
  start=$SECONDS
  case "$phase" in
  asan)
    dir=build-asan
    setup "$dir" address,undefined "$asan_cxx" || { overall=1; continue; }
    rm -rf "$dir/sanitizer-logs" && mkdir -p "$dir/sanitizer-logs"
    meson compile -C "$dir" >"$dir.compile.log" 2>&1 || { tail -n 40 "$dir.compile.log"; overall=1; continue; }
    logs="$(pwd)/$dir/sanitizer-logs"
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:log_path=$logs/asan" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
      meson test -C "$dir" --print-errorlogs --no-rebuild --no-suite install --no-suite repeat
    verdict "$dir" "asan+ubsan" $? || overall=1
    ;;
  tsan)
    dir=build-tsan
    setup "$dir" thread "$tsan_cxx" || { overall=1; continue; }
    rm -rf "$dir/sanitizer-logs" && mkdir -p "$dir/sanitizer-logs"
    if ! meson introspect "$dir" --tests | /usr/bin/python3 -c 'import json,sys; sys.exit(not any("threads" in t["suite"] or "duplex:threads" in t["suite"] for t in json.load(sys.stdin)))'; then
      echo "tsan: no test in suite 'threads' (is subdir('threads') in tests/meson.build?)"
      echo "tsan: 0 passed, 1 failed"
      overall=1
      continue
    fi
    meson compile -C "$dir" threads-test duplex-chat >"$dir.compile.log" 2>&1 || { tail -n 40 "$dir.compile.log"; overall=1; continue; }
    logs="$(pwd)/$dir/sanitizer-logs"
    # Kernels that randomise mmap with more bits than GCC 12's TSan expects (vm.mmap_rnd_bits > 28)
    # make it fail at start: run without ASLR where setarch may.
    no_aslr=()
    if setarch "$(uname -m)" -R true 2>/dev/null; then no_aslr=(setarch "$(uname -m)" -R); fi
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan" \
      "${no_aslr[@]}" meson test -C "$dir" --print-errorlogs --no-rebuild --suite threads
    verdict "$dir" "tsan" $? || overall=1
    ;;
  *)
    echo "unknown phase '$phase' (asan or tsan)"
    overall=1
    continue
    ;;
  esac
  echo "$phase took $((SECONDS - start)) s"
done
exit $overall
