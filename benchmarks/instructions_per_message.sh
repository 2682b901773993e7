#!/usr/bin/env bash
# Server instructions per echoed message under callgrind: deterministic, unlike CPU time on a shared
# machine, so two builds can be compared across runs. Two runs of 3 s and 9 s; the Ir difference over the
# message difference, so start-up and handshakes cancel out. Needs valgrind and duplex-loadgen.
#   benchmarks/instructions_per_message.sh ECHO_BINARY LOADGEN SIZE CONNECTIONS DEPTH [extra echo args...]
set -euo pipefail
echo_bin=$1 loadgen=$2 size=$3 conns=$4 depth=$5; shift 5
port=$((20000 + RANDOM % 20000))
declare -A ir msgs
for d in 3 9; do
  out=$(mktemp /tmp/cg.XXXXXX)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$echo_bin" --urls "http://127.0.0.1:$port" --threads 1 "$@" >/tmp/cg-server.log 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "listening on" /tmp/cg-server.log 2>/dev/null && break; sleep 0.2; done
  line=$("$loadgen" --url "ws://127.0.0.1:$port/ws" --connections "$conns" --size "$size" --depth "$depth" --warmup 0 --duration "$d" 2>&1 | grep RESULT)
  kill -INT $server; wait $server || true
  msgs[$d]=$(sed -n 's/.* messages=\([0-9]*\).*/\1/p' <<<"$line")
  ir[$d]=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
  rm -f "$out"
done
echo "$(basename "$echo_bin") $* size=$size conns=$conns depth=$depth: msgs ${msgs[3]}/${msgs[9]}  Ir/msg $(( (ir[9]-ir[3]) / (msgs[9]-msgs[3]) ))"
