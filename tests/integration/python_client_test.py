#!/usr/bin/python3
"""Interop: Python's websockets client (an independent RFC 6455 implementation) against duplex-echo.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_client_test.py --echo build/examples/duplex-echo

The echo server receives into a 4 KiB buffer and sends every piece back with the same message type and
end-of-message flag, so the Python side sees whole messages again, and answers a close with the same
code and reason. Every check is bounded by a timeout; the last line is "N passed, M failed" and the exit
status is 1 when anything failed (a server that died during the run counts as a failure).
"""

import argparse
import asyncio
import http.client
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

CHECK_TIMEOUT = 30.0
STARTUP_TIMEOUT = 10.0
# After the close handshake the server, which closes TCP first (RFC 6455 §7.1.1), should do so promptly.
PROMPT_TCP_CLOSE = 3.0
BANNER = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1024 * 1024]
CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]

rng = random.Random(6455)


def random_text(size):
    """ASCII text of exactly `size` bytes."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_"
    return "".join(rng.choice(alphabet) for _ in range(size))


def random_bytes(size):
    return rng.randbytes(size)


def non_ascii_text(characters):
    """Text mixing 1-, 2-, 3- and 4-byte UTF-8 sequences."""
    pool = ["a", "é", "ß", "Ж", "€", "中", "ｶ", "😀", "𝄞", "\u0000", "\u07ff", "\u0800", "\uffff",
            "\U00010000", "\U0010ffff"]
    return "".join(rng.choice(pool) for _ in range(characters))


def describe(value):
    kind = "text" if isinstance(value, str) else "binary"
    size = len(value.encode()) if isinstance(value, str) else len(value)
    return f"{kind} of {size} B"


def expect_equal_message(sent, received, what="echo"):
    if type(received) is not type(sent):
        raise AssertionError(f"{what}: sent {describe(sent)}, got back {describe(received)} (type changed)")
    if received != sent:
        first = next((i for i, (a, b) in enumerate(zip(sent, received)) if a != b), min(len(sent), len(received)))
        raise AssertionError(f"{what}: sent {describe(sent)}, got back {describe(received)}; "
                             f"first difference at index {first}")


class EchoServer:
    """duplex-echo as a child process: started, its banner parsed, its output drained, and stopped by PID."""

    def __init__(self, path, extra_args=()):
        self.process = subprocess.Popen([path, "--urls", "http://127.0.0.1:0", *extra_args], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = []
        self.lines = queue.Queue()
        self.drain = threading.Thread(target=self._read_output, daemon=True)
        self.drain.start()

    def _read_output(self):
        for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.output.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_port(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no 'listening on' line within {STARTUP_TIMEOUT:.0f} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"server exited before listening (exit status {self.process.wait()})")
            match = BANNER.search(line)
            if match:
                return int(match.group(1))

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
        self.drain.join(timeout=2)


class Suite:
    def __init__(self, port):
        self.port = port
        self.uri = f"ws://127.0.0.1:{port}/ws"
        self.passed = 0
        self.failed = 0

    def connect(self, uri=None):
        return websockets.connect(uri or self.uri, max_size=None, compression=None,
                                  open_timeout=10, close_timeout=5, ping_interval=None)

    async def check(self, name, coroutine_function, *args):
        try:
            await asyncio.wait_for(coroutine_function(*args), CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            self.failed += 1
            print(f"FAIL {name}: timed out after {CHECK_TIMEOUT:.0f} s", flush=True)
        except Exception as error:  # every failure is reported, none stops the suite
            self.failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}", flush=True)
        else:
            self.passed += 1
            print(f"PASS {name}", flush=True)

    async def round_trip(self, message):
        async with self.connect() as ws:
            await ws.send(message)
            expect_equal_message(message, await ws.recv())

    async def non_ascii(self):
        # 40 000 characters are ~100 KB: the echo's 4 KiB pieces split code points across frames.
        async with self.connect() as ws:
            for message in ["héllo wörld — ünïcödé ✓ 中文 😀", non_ascii_text(1), non_ascii_text(40_000)]:
                await ws.send(message)
                expect_equal_message(message, await ws.recv())

    async def fragmented(self, fragments):
        async with self.connect() as ws:
            await ws.send(fragments)
            whole = "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)
            expect_equal_message(whole, await ws.recv(), "fragmented message")
            # The connection is still in sync afterwards.
            await ws.send("after")
            expect_equal_message("after", await ws.recv(), "message after the fragmented one")

    async def pipelined(self, count):
        messages = [random_text(rng.randrange(0, 200)) if i % 2 == 0 else random_bytes(rng.randrange(0, 200))
                    for i in range(count)]
        async with self.connect() as ws:
            for message in messages:
                await ws.send(message)
            for index, message in enumerate(messages):
                expect_equal_message(message, await ws.recv(), f"pipelined message {index}")

    async def ping(self, payload):
        async with self.connect() as ws:
            await (await ws.ping(payload))
            # Data still flows after the control frame.
            await ws.send(b"\x01\x02")
            expect_equal_message(b"\x01\x02", await ws.recv(), "message after ping")

    async def ping_between_fragments(self):
        # Control frames may be interleaved with the fragments of a message (RFC 6455 §5.4).
        async with self.connect() as ws:
            async def fragments():
                yield "first "
                await (await ws.ping(b"mid-message"))
                yield "second"
            await ws.send(fragments())
            expect_equal_message("first second", await ws.recv(), "message around a ping")

    async def close_with(self, code, reason):
        async with self.connect() as ws:
            await ws.send("before close")
            expect_equal_message("before close", await ws.recv())
            started = time.monotonic()
            await ws.close(code, reason)
            elapsed = time.monotonic() - started
            if ws.close_rcvd is None:
                raise AssertionError(f"sent close {code} {reason!r}, the server closed TCP without a close frame")
            got = (ws.close_rcvd.code, ws.close_rcvd.reason)
            if got != (code, reason):
                raise AssertionError(f"sent close {code} {reason!r}, got back close {got[0]} {got[1]!r}")
            if elapsed > PROMPT_TCP_CLOSE:
                raise AssertionError(f"close handshake took {elapsed:.1f} s: the server did not close TCP promptly")

    async def close_without_code(self):
        # An empty close payload is answered with an empty one (1005 is never put on the wire).
        async with self.connect() as ws:
            await ws.write_close_frame(websockets.frames.Close(1005, ""), b"")
            await asyncio.wait_for(ws.wait_closed(), 10)
            if ws.close_rcvd is None:
                raise AssertionError("sent an empty close, the server closed TCP without a close frame")
            if ws.close_rcvd.code != 1005:
                raise AssertionError(f"sent an empty close, got back close {ws.close_rcvd.code} {ws.close_rcvd.reason!r}")

    async def one_concurrent_client(self, index):
        async with self.connect() as ws:
            for round_ in range(20):
                message = f"client {index} message {round_} " + random_text(rng.randrange(0, 300))
                await ws.send(message)
                expect_equal_message(message, await ws.recv(), f"client {index}")
                payload = random_bytes(rng.randrange(0, 300))
                await ws.send(payload)
                expect_equal_message(payload, await ws.recv(), f"client {index}")
            await ws.close(1000, f"client {index} done")
            if ws.close_rcvd is None or ws.close_rcvd.code != 1000:
                raise AssertionError(f"client {index}: close answered with {ws.close_rcvd}")

    async def concurrent(self, count):
        results = await asyncio.gather(*(self.one_concurrent_client(i) for i in range(count)),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise AssertionError(f"{len(failures)} of {count} connections failed, first: "
                                 f"{type(failures[0]).__name__}: {failures[0]}")

    async def not_found(self):
        try:
            async with self.connect(f"ws://127.0.0.1:{self.port}/not-the-websocket-path"):
                pass
        except websockets.exceptions.InvalidStatusCode as error:
            if error.status_code != 404:
                raise AssertionError(f"expected HTTP 404, got {error.status_code}")
        else:
            raise AssertionError("the upgrade on another path was accepted, expected HTTP 404")
        # The server keeps serving.
        await self.round_trip("still serving after the 404")

    @staticmethod
    def plain_get(port, headers):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/ws", headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    async def plain_get_is_400(self):
        status = await asyncio.to_thread(self.plain_get, self.port, {})
        if status != 400:
            raise AssertionError(f"GET /ws without upgrade headers: expected HTTP 400, got {status}")
        await self.round_trip("still serving after the 400")

    async def server_still_serving(self):
        await self.round_trip(random_bytes(1000))


async def run_checks(suite):
    for size in SIZES:
        await suite.check(f"text message of {size} B round-trips", suite.round_trip, random_text(size))
        await suite.check(f"binary message of {size} B round-trips", suite.round_trip, random_bytes(size))
    await suite.check("non-ASCII text round-trips (code points split across the echo's frames)", suite.non_ascii)
    await suite.check("fragmented text message comes back whole", suite.fragmented, ["frag", "mented ", "tëxt", ""])
    await suite.check("fragmented binary message comes back whole", suite.fragmented,
                      [random_bytes(10), b"", random_bytes(5000), random_bytes(70000)])
    await suite.check("1000 pipelined messages come back in order", suite.pipelined, 1000)
    await suite.check("ping with payload is answered by its pong", suite.ping, b"data")
    await suite.check("ping with 125 B payload is answered by its pong", suite.ping, random_bytes(125))
    await suite.check("ping between fragments of a message", suite.ping_between_fragments)
    for code in CLOSE_CODES:
        reason = f"reason for {code}" if code % 2 == 0 else f"raison ünïcode {code} ✓"
        await suite.check(f"close {code} with reason is echoed", suite.close_with, code, reason)
    await suite.check("close 1000 with empty reason is echoed", suite.close_with, 1000, "")
    await suite.check("close with 123 B reason is echoed", suite.close_with, 4000, "r" * 123)
    await suite.check("close without status code is answered without one", suite.close_without_code)
    await suite.check("50 concurrent connections each echo", suite.concurrent, 50)
    await suite.check("upgrade on another path gets HTTP 404, server keeps serving", suite.not_found)
    await suite.check("plain GET /ws without upgrade headers gets HTTP 400", suite.plain_get_is_400)
    await suite.check("server still serving at the end", suite.server_still_serving)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", required=True, help="path to duplex-echo")
    parser.add_argument("--api", help="duplex-echo's --api (awaitable, tokens or handlers)")
    args = parser.parse_args()

    server = EchoServer(args.echo, ["--api", args.api] if args.api else [])
    passed = failed = 0
    try:
        port = server.wait_for_port()
        print(f"duplex-echo (pid {server.process.pid}) listening on port {port}", flush=True)
        suite = Suite(port)
        asyncio.run(run_checks(suite))
        passed, failed = suite.passed, suite.failed
        if server.alive():
            passed += 1
            print("PASS server process alive after all checks", flush=True)
        else:
            failed += 1
            print(f"FAIL server process died during the run (exit status {server.process.returncode})", flush=True)
    except Exception as error:
        failed += 1
        print(f"FAIL starting duplex-echo: {error}", flush=True)
    finally:
        server.stop()

    if failed and server.output:
        print("--- duplex-echo output (last 40 lines) ---")
        for line in server.output[-40:]:
            print(line)
        print("---")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
