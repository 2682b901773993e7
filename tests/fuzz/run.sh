#!/usr/bin/env bash
# Builds every libFuzzer target with clang++-16 (ASan + UBSan) into build-fuzz/ and runs each for
# SECONDS_PER_TARGET seconds (default 30), starting from the checked-in corpus in tests/fuzz/corpus/.
# A crash, a leak, a timeout or a broken property fails the target; the input is saved as
# build-fuzz/artifacts/<target>-crash-… (or leak-…, timeout-…, oom-…).
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Extra libFuzzer flags go in FUZZ_FLAGS, e.g. FUZZ_FLAGS='-jobs=2 -workers=2'. New inputs that
# libFuzzer finds go to build-fuzz/corpus/<target>/, never into the checked-in corpus.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-30}"
shift || true
all_targets=(frame_header utf8 close_payload http_request http_response handshake stream deflate_negotiation inflate
             proxy_handshake resp_reply http2_connection http2_client)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# clang 16: clang 14 (Debian's default) cannot compile Asio's coroutines with libstdc++ 12.
cxx="${FUZZ_CXX:-clang++-16}"
if [ "$cxx" = clang++-16 ]; then
  missing=()
  for package in clang-16 libclang-rt-16-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "fuzz: installing ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found" >&2
  exit 1
fi
out=build-fuzz
mkdir -p "$out/bin" "$out/corpus" "$out/artifacts" "$out/logs"

# Asio 1.22 recognises clang's coroutines only through the Coroutines TS macros, which clang 16 no
# longer defines in C++20: tell it they are there (libstdc++'s <coroutine> works with clang 16).
flags=(-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignorelist.txt
       -DASIO_HAS_CO_AWAIT=1 -DASIO_NO_DEPRECATED -Iinclude -Itests/support)

echo "fuzz: building ${targets[*]} with $cxx"
for target in "${targets[@]}"; do
  # Two compilers at a time: the machine has two cores and the stream target alone takes ~1 GiB.
  while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n || true; done
  rm -f "$out/bin/$target"
  "$cxx" "${flags[@]}" "tests/fuzz/$target.cpp" -lssl -lcrypto -lz -lnghttp2 -o "$out/bin/$target" >"$out/logs/$target-build.txt" 2>&1 &
done
wait

symbolizer="$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${symbolizer:+:external_symbolizer_path=$symbolizer}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${symbolizer:+:external_symbolizer_path=$symbolizer}"

passed=0
failed=0
for target in "${targets[@]}"; do
  if [ ! -x "$out/bin/$target" ]; then
    echo "FAIL $target: build failed, see $out/logs/$target-build.txt"
    failed=$((failed + 1))
    continue
  fi
  mkdir -p "$out/corpus/$target"
  log="$out/logs/$target.txt"
  # -timeout: one input taking longer is a hang; -rss_limit_mb bounds memory (2 GiB is libFuzzer's
  # default, said here so it is visible). The first folder receives new inputs, the second is read.
  # shellcheck disable=SC2086
  "$out/bin/$target" "$out/corpus/$target" "tests/fuzz/corpus/$target" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/artifacts/$target-" ${FUZZ_FLAGS:-} >"$log" 2>&1
  status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
  if [ $status -eq 0 ]; then
    echo "PASS $target: ${runs:-?} runs, ${rate:-?} exec/s, ${cov:-no coverage line} (${seconds} s)"
    passed=$((passed + 1))
  else
    artifact=$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //')
    echo "FAIL $target: exit $status${artifact:+, input saved as $artifact}; log $log"
    grep -m3 -E 'property failed|ERROR: |runtime error|SUMMARY' "$log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
