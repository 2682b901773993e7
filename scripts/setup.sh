#!/usr/bin/env bash
# Installs what duplex needs on Debian 12 (only what is missing) and builds it into build/.
#
#   scripts/setup.sh          everything: the packages the tests need too, and every target
#   scripts/setup.sh sample   only what the echo sample needs: its packages, and duplex-echo alone
#                             (scripts/run-echo.sh; about a minute instead of about eight)
#
# DUPLEX_BENCHMARKS=false leaves the benchmarks out of build/ (CI does: they carry no test, benchmarks/run
# builds them optimised in a directory of its own, and they are about three minutes of CI's build).
set -euo pipefail
cd "$(dirname "$0")/.."

scope=${1:-all}
benchmarks=${DUPLEX_BENCHMARKS:-true}
case "$benchmarks" in
  true | false) ;;
  *) echo "$0: DUPLEX_BENCHMARKS is true or false" >&2; exit 2 ;;
esac
case "$scope" in
  sample | all) ;;
  *) echo "usage: $0 [sample|all]" >&2; exit 2 ;;
esac

# To build duplex-echo: the compiler, Meson, and duplex's dependencies (standalone Asio, OpenSSL, zlib,
# libnghttp2 for HTTP/2).
sample_packages=(g++ meson ninja-build pkg-config libasio-dev libssl-dev zlib1g-dev libnghttp2-dev)
# To build and run every test: doctest; Debian's Python with python3-websockets (the real peer of the
# interop tests) and the openssl command (throwaway certificates); an HTTP CONNECT proxy (tinyproxy) and a
# SOCKS5 proxy (microsocks) for the client's proxy tests; CMake for the installed package's consumer test;
# Redis, nginx and HAProxy for the scale-out tests (real servers, started by the tests themselves); the
# HTTP/2 peers: nghttp (nghttp2-client) for plain requests, python3-h2 as the RFC 8441 WebSocket client
# (and, with python3-hpack, the fuzz corpus's frames), python3-hypercorn as an RFC 8441 server for our
# client, and Chromium, whose WebSocket from the sample page must go over HTTP/2 (driven through the DevTools
# protocol with python3-websockets).
test_packages=(openssl doctest-dev python3 python3-websockets tinyproxy-bin microsocks cmake redis-server nginx haproxy
               nghttp2-client python3-h2 python3-hpack python3-hypercorn chromium)

packages=("${sample_packages[@]}")
[ "$scope" = sample ] || packages+=("${test_packages[@]}")
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  echo "setup: installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$scope" = sample ]; then
  # Without the tests and benchmarks, configuring needs none of their packages.
  [ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized -Dtests=false -Dbenchmarks=false
  meson compile -C build examples/duplex-echo
else
  if [ -f build/build.ninja ]; then
    # A build/ that the sample configured gets the tests and benchmarks back (and a relocatable duplex.pc,
    # which the install test stages under a temporary folder).
    # Only when something differs: `meson configure` makes the next build regenerate.
    wanted=(tests=true "benchmarks=$benchmarks" pkgconfig.relocatable=true)
    current=$(meson introspect --buildoptions build | /usr/bin/python3 -c '
import json, sys
for option in json.load(sys.stdin):
    print("%s=%s" % (option["name"], str(option["value"]).lower()))')
    for option in "${wanted[@]}"; do
      grep -qxF "$option" <<<"$current" || { meson configure build "${wanted[@]/#/-D}"; break; }
    done
  else
    meson setup build --buildtype=debugoptimized -Dbenchmarks="$benchmarks"
  fi
  meson compile -C build
fi
