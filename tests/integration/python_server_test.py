#!/usr/bin/python3
"""Interop: duplex's client (the client-interop doctest program) against Python's websockets server.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_server_test.py --client build/tests/client-interop [doctest args...]

Serves, on one port:
  any path       echo: every message goes back whole, with its type
  /close-4001    the server closes at once with code 4001, reason "bye"
  /ping          the server pings (payload "are you there?") and then sends the text "pong ok" when the
                 pong arrived within 5 s, or "no pong" when it did not
  /fragments     the server sends the text "hello wörld" in 3 fragments and then a 70 000 B binary
                 message (byte i is (i * 7) % 256) in 3 fragments, and echoes whatever follows
  /headers       the server first sends the value of the request's X-Duplex-Test header (or
                 "<missing>"), then echoes
  /subprotocol   like echo; the server supports the sub-protocols "chat.v2" and "chat.v1" (on every
                 path, in fact: it only picks one when the client offers one)
  /reject        the upgrade is refused with HTTP 403 and the body "no"

then runs `CLIENT ws://127.0.0.1:PORT` with a timeout; the C++ program decides pass or fail. The exit
status is the client's, and the last line is "1 passed, 0 failed" or "0 passed, 1 failed".
"""

import argparse
import asyncio
import http
import os
import signal
import sys

import websockets
import websockets.exceptions

CLIENT_TIMEOUT = 240.0
SUB_PROTOCOLS = ["chat.v2", "chat.v1"]


def fragments_binary():
    """70 000 bytes where byte i is (i * 7) % 256, split as 10 240 B, 0 B and the rest."""
    whole = bytes((i * 7) % 256 for i in range(70000))
    return [whole[:10240], b"", whole[10240:]]


async def process_request(path, request_headers):
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [], b"no"
    return None


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def handler(ws):
    path = ws.path
    try:
        if path == "/close-4001":
            await ws.close(4001, "bye")
        elif path == "/ping":
            try:
                await asyncio.wait_for(await ws.ping(b"are you there?"), 5)
                await ws.send("pong ok")
            except asyncio.TimeoutError:
                await ws.send("no pong")
            await echo(ws)
        elif path == "/headers":
            await ws.send(ws.request_headers.get("X-Duplex-Test", "<missing>"))
            await echo(ws)
        elif path == "/fragments":
            await ws.send(["hel", "lo ", "wörld"])
            await ws.send(fragments_binary())
            await echo(ws)
        else:
            await echo(ws)
    except websockets.exceptions.ConnectionClosed:
        pass
    finally:
        received = ws.close_rcvd
        how = (f"client's close {received.code} {received.reason!r}" if received is not None
               else "no close frame from the client")
        print(f"[python server] {path} (sub-protocol {ws.subprotocol!r}): connection ended, {how}", flush=True)


async def run_client(command):
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    summary = None

    async def relay():
        nonlocal summary
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            print(line, flush=True)
            if "[doctest] test cases:" in line:
                summary = line

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
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, compression=None,
                                subprotocols=SUB_PROTOCOLS, process_request=process_request,
                                ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}"
        print(f"python websockets {websockets.version.version} serving on {url}", flush=True)
        returncode, summary = await run_client([args.client, url, *args.doctest_args])

    if returncode is None:
        status = 1
    elif returncode < 0:
        print(f"client killed by signal {-returncode}", flush=True)
        status = 1
    else:
        status = returncode
    if summary is None:
        print("no doctest summary line from the client", flush=True)
    print(f"{0 if status else 1} passed, {1 if status else 0} failed", flush=True)
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", required=True, help="path to the client-interop program")
    parser.add_argument("doctest_args", nargs="*", help="passed on to the doctest program")
    sys.exit(asyncio.run(main(parser.parse_args())))
