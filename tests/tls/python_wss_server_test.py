#!/usr/bin/python3
"""Interop over TLS: duplex's wss:// client (the tls-client-interop doctest program) against Python's
websockets server behind Python's ssl module.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_wss_server_test.py --client build/tests/tls/tls-client-interop \\
        --make-certs examples/tls_echo/make-certs.sh --certs DIR [doctest args...]

Makes a throwaway CA and server certificate into DIR and serves wss:// on an ephemeral port of
127.0.0.1 with them (ALPN http/1.1, TLS 1.2 and 1.3). On any path it echoes every message whole; some
paths do one thing more:
  /close-4001    the server closes at once with code 4001, reason "bye"
  /sni           the server first sends the SNI name the client sent, or "<none>"
  /alpn          the server first sends the ALPN protocol selected, or "<none>"
  /tls-version   the server first sends the TLS version negotiated ("TLSv1.3")
  /reject        the upgrade is refused with HTTP 403 and the body "no"

then runs `CLIENT wss://127.0.0.1:PORT CA_FILE` with a timeout; the C++ program decides pass or fail.
The last line is "N passed, M failed" with the client's test case counts (a client that crashed or
timed out counts one failure more); the exit status is the client's, or 1.
"""

import argparse
import asyncio
import http
import os
import re
import signal
import ssl
import subprocess
import sys

import websockets
import websockets.exceptions

CLIENT_TIMEOUT = 240.0
SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")

server_names = {}  # id(ssl object) -> the SNI name the client sent


def remember_server_name(ssl_object, server_name, context):
    server_names[id(ssl_object)] = server_name


async def process_request(path, request_headers):
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [], b"no"
    return None


async def handler(ws):
    path = ws.path
    ssl_object = ws.transport.get_extra_info("ssl_object")
    try:
        if path == "/close-4001":
            await ws.close(4001, "bye")
            return
        if path == "/sni":
            await ws.send(server_names.get(id(ssl_object)) or "<none>")
        elif path == "/alpn":
            await ws.send(ssl_object.selected_alpn_protocol() or "<none>")
        elif path == "/tls-version":
            await ws.send(ssl_object.version())
        async for message in ws:
            await ws.send(message)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        server_names.pop(id(ssl_object), None)
        received = ws.close_rcvd
        how = f"client's close {received.code} {received.reason!r}" if received else "no close frame from the client"
        print(f"[python wss server] {path} ({ssl_object.version()}): connection ended, {how}", flush=True)


async def run_client(command):
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    summary = None

    async def relay():
        nonlocal summary
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            print(line, flush=True)
            match = SUMMARY.search(line)
            if match:
                summary = (int(match.group(2)), int(match.group(3)))

    try:
        await asyncio.wait_for(asyncio.gather(relay(), process.wait()), CLIENT_TIMEOUT)
    except asyncio.TimeoutError:
        print(f"client did not finish within {CLIENT_TIMEOUT:.0f} s; killing pid {process.pid}", flush=True)
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        return None, summary
    return process.returncode, summary


async def main(args):
    subprocess.run(["bash", args.make_certs, args.certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
    ca_file = os.path.join(args.certs, "ca.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(args.certs, "server.pem"), os.path.join(args.certs, "server.key"))
    context.set_alpn_protocols(["http/1.1"])
    context.sni_callback = remember_server_name

    async with websockets.serve(handler, "127.0.0.1", 0, ssl=context, max_size=None, compression=None,
                                process_request=process_request, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"wss://127.0.0.1:{port}"
        print(f"python websockets {websockets.version.version} serving on {url}", flush=True)
        returncode, summary = await run_client([args.client, url, ca_file, *args.doctest_args])

    passed, failed = summary if summary else (0, 0)
    if returncode is None:
        failed += 1
    elif returncode < 0:
        print(f"client killed by signal {-returncode}", flush=True)
        failed += 1
    elif summary is None:
        print("no doctest summary line from the client", flush=True)
        failed += 1
    elif returncode != 0 and failed == 0:
        failed += 1
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, help="path to the tls-client-interop program")
    parser.add_argument("--make-certs", required=True, help="path to make-certs.sh")
    parser.add_argument("--certs", required=True, help="directory for the throwaway certificates")
    parser.add_argument("doctest_args", nargs="*", help="passed on to the doctest program")
    sys.exit(asyncio.run(main(parser.parse_args())))
