#!/usr/bin/python3
"""Interop with permessage-deflate (RFC 7692): Python's websockets (an independent implementation on
Python's zlib) against duplex, in both directions, under each of websockets' deflate settings.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_deflate_test.py --echo build/examples/duplex-echo \
        --client build/tests/deflate-client-interop

1. Python client -> `duplex-echo --compression`, once per ClientPerMessageDeflateFactory setting: the
   negotiated parameters are checked on the Python side, then text and binary messages of 0 B-1 MiB
   (compressible and not), a fragmented message and a ping go through the echo (which receives into a
   4 KiB buffer and sends each piece back as a compressed fragment). Also: a client that does not offer
   compression, and `duplex-echo` without --compression declining an offer.
2. duplex's client (deflate-client-interop, connect_options::dangerous_deflate) -> a Python server, once
   per ServerPerMessageDeflateFactory setting (and with the client's own requests): the server checks
   the offer and the negotiated parameters, sends the same messages and checks what comes back, then
   closes with 1000 (or 4000 with what went wrong), which decides the client's exit status.

The last line is "N passed, M failed"; the exit status is 1 when anything failed.
"""

import argparse
import asyncio
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time

import websockets
import websockets.exceptions
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory, PerMessageDeflate,
                                                      ServerPerMessageDeflateFactory)

CHECK_TIMEOUT = 60.0
STARTUP_TIMEOUT = 10.0
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
MAX_SIZE = 4 * 1024 * 1024

rng = random.Random(7692)


def chatty_text(size):
    """Text that compresses like chat or JSON traffic: repeated keys, varying values."""
    words = ['{"id":', '"user":', "hello", "world", "message", "true", "null", "compression", ", ", "}\n", "é", "中"]
    parts, length = [], 0
    while length < size:
        word = rng.choice(words) + str(rng.randrange(1000))
        parts.append(word)
        length += len(word.encode())
    text = "".join(parts).encode()[:size]
    return text.decode(errors="ignore")  # cutting may split a character: drop the partial one


def messages():
    """The messages sent each way: sizes around the frame-length boundaries, compressible and not."""
    out = []
    for size in [0, 1, 125, 126, 4096, 65535, 65536, 300000, 1024 * 1024]:
        out.append(chatty_text(size))
        out.append(rng.randbytes(size))
    out.append(b"\x00" * 500000)  # compresses ~1000:1
    out.append("Hello")
    out.append("Hello")  # with context takeover the second one refers back to the first
    return out


def describe(value):
    kind = "text" if isinstance(value, str) else "binary"
    return f"{kind} of {len(value.encode()) if isinstance(value, str) else len(value)} B"


def expect_equal(sent, received, what):
    if type(received) is not type(sent):
        raise AssertionError(f"{what}: sent {describe(sent)}, got back {describe(received)} (type changed)")
    if received != sent:
        raise AssertionError(f"{what}: sent {describe(sent)}, got back {describe(received)} that differs")


def check_agreed(extensions, expected, what):
    """`expected`: (remote_no_context_takeover, local_no_context_takeover, remote_max_window_bits,
    local_max_window_bits) from the Python end's point of view, or None for no compression."""
    if expected is None:
        if extensions:
            raise AssertionError(f"{what}: expected no extension, negotiated {extensions}")
        return
    if len(extensions) != 1 or not isinstance(extensions[0], PerMessageDeflate):
        raise AssertionError(f"{what}: expected permessage-deflate, negotiated {extensions}")
    e = extensions[0]
    got = (e.remote_no_context_takeover, e.local_no_context_takeover, e.remote_max_window_bits,
           e.local_max_window_bits)
    if got != expected:
        raise AssertionError(f"{what}: negotiated (remote_no_takeover, local_no_takeover, remote_bits, local_bits) "
                             f"= {got}, expected {expected}")


class EchoServer:
    """duplex-echo as a child process, stopped by its PID."""

    def __init__(self, path, *args):
        self.process = subprocess.Popen([path, "--urls", "http://127.0.0.1:0", *args], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = []
        self.lines = queue.Queue()
        threading.Thread(target=self._read_output, daemon=True).start()

    def _read_output(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_port(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"duplex-echo exited before listening ({self.process.wait()})")
            match = BANNER.search(line)
            if match:
                return int(match.group(1))
        raise RuntimeError("duplex-echo did not start listening")

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.alive():
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


# ---- 1. Python client -> duplex-echo --compression ----

# name, ClientPerMessageDeflateFactory arguments, expected agreement from the client's point of view
# (remote = the server). duplex-echo uses the defaults: window 15, context takeover.
CLIENT_SETTINGS = [
    ("default offer", {}, (False, False, 15, 15)),
    ("server_max_window_bits=10", {"server_max_window_bits": 10}, (False, False, 10, 15)),
    ("server_max_window_bits=8", {"server_max_window_bits": 8}, (False, False, 8, 15)),
    ("client_max_window_bits=9", {"client_max_window_bits": 9}, (False, False, 15, 9)),
    ("client_max_window_bits absent", {"client_max_window_bits": None}, (False, False, 15, 15)),
    ("server_no_context_takeover", {"server_no_context_takeover": True}, (True, False, 15, 15)),
    ("client_no_context_takeover", {"client_no_context_takeover": True}, (False, True, 15, 15)),
    ("no_context_takeover both sides, windows 9",
     {"server_no_context_takeover": True, "client_no_context_takeover": True, "server_max_window_bits": 9,
      "client_max_window_bits": 9}, (True, True, 9, 9)),
]


async def exchange_with_echo(port, extensions, expected, what):
    uri = f"ws://127.0.0.1:{port}/ws"
    async with websockets.connect(uri, extensions=extensions, compression=None, max_size=MAX_SIZE,
                                  open_timeout=CHECK_TIMEOUT) as ws:
        check_agreed(ws.extensions, expected, what)
        for m in messages():
            await ws.send(m)
            expect_equal(m, await ws.recv(), f"{what}: echo of {describe(m)}")
        await ws.send(["fragmented ", "compressed ", "", "message é"])
        expect_equal("fragmented compressed message é", await ws.recv(), f"{what}: fragmented message")
        await ws.send([b"\x01" * 70000, b"\x02" * 10])
        expect_equal(b"\x01" * 70000 + b"\x02" * 10, await ws.recv(), f"{what}: fragmented binary")
        pong = await ws.ping(b"ping")
        await asyncio.wait_for(pong, CHECK_TIMEOUT)
        await ws.close(1000, "done")
        if ws.close_code != 1000:
            raise AssertionError(f"{what}: the server answered the close with {ws.close_code}")


# ---- 2. duplex client -> Python server ----

# name, ServerPerMessageDeflateFactory arguments, deflate-client-interop flags, the offer the server must
# see, expected agreement from the server's point of view (remote = the client).
SERVER_SETTINGS = [
    ("default server", {}, [], "permessage-deflate; client_max_window_bits", (False, False, 15, 15)),
    ("server_max_window_bits=10", {"server_max_window_bits": 10}, [],
     "permessage-deflate; client_max_window_bits", (False, False, 15, 10)),
    ("client_max_window_bits=9", {"client_max_window_bits": 9}, [],
     "permessage-deflate; client_max_window_bits", (False, False, 9, 15)),
    ("server_no_context_takeover", {"server_no_context_takeover": True}, [],
     "permessage-deflate; client_max_window_bits", (False, True, 15, 15)),
    ("client_no_context_takeover", {"client_no_context_takeover": True}, [],
     "permessage-deflate; client_max_window_bits", (True, False, 15, 15)),
    ("no_context_takeover both sides, windows 9",
     {"server_no_context_takeover": True, "client_no_context_takeover": True, "server_max_window_bits": 9,
      "client_max_window_bits": 9}, [], "permessage-deflate; client_max_window_bits", (True, True, 9, 9)),
    ("the client asks: server_max_window_bits=10, server_no_context_takeover", {},
     ["--server-max-window-bits", "10", "--server-no-context-takeover"],
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
     (False, True, 15, 10)),
    ("the client promises: client_max_window_bits=8, client_no_context_takeover", {},
     ["--client-max-window-bits", "8", "--client-no-context-takeover"],
     "permessage-deflate; client_no_context_takeover; client_max_window_bits=8", (True, False, 8, 15)),
    ("the client fragments its echo", {}, ["--fragment", "1000"], "permessage-deflate; client_max_window_bits",
     (False, False, 15, 15)),
]


def make_handler(expected_offer, expected, what):
    async def handler(ws):
        try:
            offer = ws.request_headers.get("Sec-WebSocket-Extensions")
            if offer != expected_offer:
                raise AssertionError(f"{what}: the client offered {offer!r}, expected {expected_offer!r}")
            check_agreed(ws.extensions, expected, what)
            for m in messages():
                await ws.send(m)
                expect_equal(m, await ws.recv(), f"{what}: echo of {describe(m)}")
            await ws.send(["fragmented ", "compressed ", "", "message é"])
            expect_equal("fragmented compressed message é", await ws.recv(), f"{what}: fragmented message")
            await ws.close(1000, "ok")
        except websockets.exceptions.ConnectionClosed as e:
            handler.failure = f"{what}: the client closed early: {e}"
        except Exception as e:  # the client learns it from the close code; the reason goes in the log
            handler.failure = str(e)
            await ws.close(4000, "check failed")
    handler.failure = None
    return handler


async def run_client(client, url, flags):
    process = await asyncio.create_subprocess_exec(client, url, *flags, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT * 2)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("deflate-client-interop did not finish in time")
    return process.returncode, output.decode(errors="replace")


# ---- driver ----

async def main(echo_path, client_path):
    passed, failed = 0, 0

    async def check(name, coroutine):
        nonlocal passed, failed
        try:
            await asyncio.wait_for(coroutine, CHECK_TIMEOUT * 3)
            passed += 1
            print(f"PASS {name}", flush=True)
        except Exception as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)

    echo = EchoServer(echo_path, "--compression")
    plain_echo = EchoServer(echo_path)
    try:
        port, plain_port = echo.wait_for_port(), plain_echo.wait_for_port()
        for name, arguments, expected in CLIENT_SETTINGS:
            what = f"python client ({name}) -> duplex-echo --compression"
            await check(what, exchange_with_echo(port, [ClientPerMessageDeflateFactory(**arguments)], expected, what))
        what = "python client without compression -> duplex-echo --compression"
        await check(what, exchange_with_echo(port, [], None, what))
        what = "python client offering compression -> duplex-echo without --compression (declined)"
        await check(what, exchange_with_echo(plain_port, [ClientPerMessageDeflateFactory()], None, what))
        for server in (echo, plain_echo):
            if not server.alive():
                failed += 1
                print("FAIL duplex-echo died:\n" + "\n".join(server.output[-20:]), flush=True)
    finally:
        echo.stop()
        plain_echo.stop()

    for name, arguments, flags, expected_offer, expected in SERVER_SETTINGS:
        what = f"duplex client ({' '.join(flags) or 'default offer'}) -> python server ({name})"
        handler = make_handler(expected_offer, expected, what)
        server = await websockets.serve(handler, "127.0.0.1", 0, compression=None, max_size=MAX_SIZE,
                                        extensions=[ServerPerMessageDeflateFactory(**arguments)])
        port = server.sockets[0].getsockname()[1]

        async def one(flags=flags, port=port, handler=handler):
            status, output = await run_client(client_path, f"ws://127.0.0.1:{port}/", flags)
            if handler.failure or status != 0:
                raise AssertionError(f"{handler.failure or ''} (client exit status {status}) {output.strip()}")

        await check(what, one())
        server.close()
        await server.wait_closed()

    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", required=True, help="path to duplex-echo")
    parser.add_argument("--client", required=True, help="path to deflate-client-interop")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.echo, args.client)))
