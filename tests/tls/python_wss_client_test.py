#!/usr/bin/python3
"""Interop over TLS: Python's websockets client (wss://) and Python's ssl module against duplex-tls-echo.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_wss_client_test.py --echo build/examples/tls_echo/duplex-tls-echo \\
        --plain-echo build/examples/duplex-echo --make-certs examples/tls_echo/make-certs.sh --certs DIR

Makes a throwaway CA and server certificate into DIR, starts duplex-tls-echo with them on an ephemeral
port of 127.0.0.1, and checks, each bounded by a timeout: messages of every size class, fragments,
pings, close codes, concurrent connections, the host name check on both 127.0.0.1 and localhost, TLS 1.2
and 1.3, close_notify right after the WebSocket close, a client that does not trust the CA, plain HTTP
on the TLS port (400 and a clean close), a silent client (dropped after the handshake timeout), and TLS
sent to the plain duplex-echo (400 or a close). The last line is "N passed, M failed"; the exit status
is 1 when anything failed.
"""

import argparse
import asyncio
import http.client
import os
import queue
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import websockets
import websockets.exceptions

CHECK_TIMEOUT = 30.0
STARTUP_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT_MS = 1000
PROMPT = 2.0  # seconds within which a close or a refusal must have happened

SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024]
CLOSE_CODES = [1000, 1001, 1003, 1011, 3000, 4999]

rng = random.Random(8446)


def random_text(size):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_"
    return "".join(rng.choice(alphabet) for _ in range(size))


def expect_equal(sent, received, what="echo"):
    if type(received) is not type(sent) or received != sent:
        kind = lambda v: f"{'text' if isinstance(v, str) else 'binary'} of {len(v)}"
        raise AssertionError(f"{what}: sent {kind(sent)}, got back {kind(received)} or different content")


class Server:
    """A server program as a child process: started, its banner parsed, its output drained, stopped by PID."""

    def __init__(self, command, banner):
        self.banner = re.compile(banner)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
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
            match = self.banner.search(line)
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
    def __init__(self, port, plain_port, ca_file):
        self.port = port
        self.plain_port = plain_port
        self.uri = f"wss://127.0.0.1:{port}/ws"
        self.ca_file = ca_file
        self.trusting = ssl.create_default_context(cafile=ca_file)
        # Python 3.11's default context sets OP_IGNORE_UNEXPECTED_EOF: a TCP end without close_notify then
        # reads as a clean end. The raw TLS checks need to tell the two apart.
        self.strict = ssl.create_default_context(cafile=ca_file)
        self.strict.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        self.passed = 0
        self.failed = 0

    def connect(self, uri=None, context=None):
        return websockets.connect(uri or self.uri, ssl=context or self.trusting, max_size=None, compression=None,
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

    # ---- WebSocket over TLS ----

    async def round_trip(self, message, uri=None, context=None):
        async with self.connect(uri, context) as ws:
            await ws.send(message)
            expect_equal(message, await ws.recv())

    async def fragmented(self, fragments):
        async with self.connect() as ws:
            await ws.send(fragments)
            whole = "".join(fragments) if isinstance(fragments[0], str) else b"".join(fragments)
            expect_equal(whole, await ws.recv(), "fragmented message")

    async def ping(self):
        async with self.connect() as ws:
            await asyncio.wait_for(await ws.ping(b"over TLS"), 5)
            await ws.send(b"\x01\x02")
            expect_equal(b"\x01\x02", await ws.recv(), "message after ping")

    async def close_with(self, code, reason):
        async with self.connect() as ws:
            await ws.send("before close")
            expect_equal("before close", await ws.recv())
            started = time.monotonic()
            await ws.close(code, reason)
            elapsed = time.monotonic() - started
            got = ws.close_rcvd
            if got is None or (got.code, got.reason) != (code, reason):
                raise AssertionError(f"sent close {code} {reason!r}, got back {got}")
            if elapsed > PROMPT:
                raise AssertionError(f"close handshake took {elapsed:.1f} s")

    async def one_concurrent_client(self, index):
        async with self.connect() as ws:
            for round_ in range(10):
                message = f"client {index} message {round_} " + random_text(rng.randrange(0, 300))
                await ws.send(message)
                expect_equal(message, await ws.recv(), f"client {index}")

    async def concurrent(self, count):
        results = await asyncio.gather(*(self.one_concurrent_client(i) for i in range(count)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise AssertionError(f"{len(failures)} of {count} connections failed, first: {failures[0]!r}")

    async def tls_version(self, version, name):
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = version
        context.maximum_version = version
        async with self.connect(context=context) as ws:
            negotiated = ws.transport.get_extra_info("ssl_object").version()
            if negotiated != name:
                raise AssertionError(f"negotiated {negotiated}, expected {name}")
            await ws.send("versioned")
            expect_equal("versioned", await ws.recv())

    async def alpn(self):
        context = ssl.create_default_context(cafile=self.ca_file)
        context.set_alpn_protocols(["h2", "http/1.1"])
        async with self.connect(context=context) as ws:
            selected = ws.transport.get_extra_info("ssl_object").selected_alpn_protocol()
            if selected != "http/1.1":
                raise AssertionError(f"ALPN selected {selected!r}, expected 'http/1.1'")

    async def not_found(self):
        try:
            async with self.connect(f"wss://127.0.0.1:{self.port}/elsewhere"):
                pass
        except websockets.exceptions.InvalidStatusCode as error:
            if error.status_code != 404:
                raise AssertionError(f"expected HTTP 404, got {error.status_code}")
        else:
            raise AssertionError("the upgrade on another path was accepted")

    def https_get_without_upgrade(self):
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.trusting)
        try:
            connection.request("GET", "/ws")
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    async def https_get_is_400(self):
        status = await asyncio.to_thread(self.https_get_without_upgrade)
        if status != 400:
            raise AssertionError(f"GET /ws over https without upgrade headers: expected 400, got {status}")

    # ---- TLS itself, with Python's ssl module on blocking sockets (run in a thread) ----

    def tls_socket(self, port=None, context=None):
        raw = socket.create_connection(("127.0.0.1", port or self.port), timeout=10)
        # Without suppress_ragged_eofs, a TCP close that no close_notify preceded raises SSLEOFError.
        return (context or self.strict).wrap_socket(raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)

    @staticmethod
    def read_until(sock, marker, limit=1 << 16):
        data = b""
        while marker not in data and len(data) < limit:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    def close_notify_after_close(self):
        with self.tls_socket() as tls:
            tls.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            head = self.read_until(tls, b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise AssertionError(f"upgrade answered with {head[:40]!r}")
            rest = head.split(b"\r\n\r\n", 1)[1]
            key = bytes([1, 2, 3, 4])
            payload = (1000).to_bytes(2, "big") + b"done"
            tls.sendall(bytes([0x88, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload)))
            started = time.monotonic()
            frame = rest
            while len(frame) < 2 + len(payload):
                chunk = tls.recv(4096)
                if not chunk:
                    raise AssertionError("the connection ended before the server's close frame")
                frame += chunk
            if frame[:2] != bytes([0x88, len(payload)]) or frame[2:2 + len(payload)] != payload:
                raise AssertionError(f"expected the close frame echoed, got {frame!r}")
            try:
                after = tls.recv(4096)  # b"" only when the server's close_notify arrived
            except ssl.SSLError as error:  # UNEXPECTED_EOF_WHILE_READING: no close_notify
                raise AssertionError(f"the server closed TCP without close_notify ({error})") from None
            if after != b"":
                raise AssertionError(f"data after the close frame: {after!r}")
            elapsed = time.monotonic() - started
            if elapsed > PROMPT:
                raise AssertionError(f"close_notify came {elapsed:.1f} s after the close frame")
            tls.unwrap()  # our close_notify: the server's lingering close ends on it

    async def close_notify(self):
        await asyncio.to_thread(self.close_notify_after_close)

    async def untrusted_refused(self):
        untrusting = ssl.create_default_context()  # the system store, which does not know the test CA
        try:
            async with self.connect(context=untrusting):
                pass
        except ssl.SSLCertVerificationError as error:
            if "unable to get local issuer certificate" not in str(error):
                raise AssertionError(f"refused for another reason: {error}")
        else:
            raise AssertionError("a client that does not trust the test CA connected")

    async def wrong_name_refused(self):
        try:
            async with websockets.connect(self.uri, ssl=self.trusting, server_hostname="wrong.example",
                                          open_timeout=10, ping_interval=None):
                pass
        except ssl.SSLCertVerificationError as error:
            if "Hostname mismatch" not in str(error) and "hostname mismatch" not in str(error):
                raise AssertionError(f"refused for another reason: {error}")
        else:
            raise AssertionError("a certificate for localhost/127.0.0.1 was accepted for wrong.example")

    def plain_http(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as plain:
            plain.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while True:
                chunk = plain.recv(4096)  # ConnectionResetError here would be an unclean close
                if not chunk:
                    break
                answer += chunk
        if not answer.startswith(b"HTTP/1.1 400 ") or b"plain HTTP" not in answer:
            raise AssertionError(f"plain HTTP on the TLS port was answered with {answer[:80]!r}")

    async def plain_http_gets_400(self):
        await asyncio.to_thread(self.plain_http)

    def silent(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as plain:
            started = time.monotonic()
            if plain.recv(1) != b"":
                raise AssertionError("the server sent something to a client that never spoke TLS")
            elapsed = time.monotonic() - started
        if not HANDSHAKE_TIMEOUT_MS / 1000 * 0.8 <= elapsed <= HANDSHAKE_TIMEOUT_MS / 1000 + PROMPT:
            raise AssertionError(f"a silent client was dropped after {elapsed:.2f} s, "
                                 f"expected about {HANDSHAKE_TIMEOUT_MS / 1000:.1f} s")

    async def silent_client_dropped(self):
        await asyncio.to_thread(self.silent)

    def tls_to_plain(self):
        started = time.monotonic()
        try:
            with self.tls_socket(port=self.plain_port):
                raise AssertionError("a TLS handshake succeeded with the plain duplex-echo")
        except ssl.SSLError:
            pass  # e.g. WRONG_VERSION_NUMBER: the plain server answered in HTTP
        except (ConnectionResetError, BrokenPipeError):
            pass  # or it closed
        elapsed = time.monotonic() - started
        if elapsed > PROMPT:
            raise AssertionError(f"the failed handshake took {elapsed:.1f} s")
        # What the plain server answers to a ClientHello, seen raw: 400 or nothing, then the end.
        outgoing = ssl.MemoryBIO()
        hello = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="127.0.0.1")
        try:
            hello.do_handshake()
        except ssl.SSLWantReadError:
            pass
        with socket.create_connection(("127.0.0.1", self.plain_port), timeout=10) as plain:
            plain.sendall(outgoing.read())
            answer = b""
            while True:
                chunk = plain.recv(4096)
                if not chunk:
                    break
                answer += chunk
        if answer and not answer.startswith(b"HTTP/1.1 400 "):
            raise AssertionError(f"a ClientHello to the plain port was answered with {answer[:60]!r}")

    async def tls_to_plain_port(self):
        await asyncio.to_thread(self.tls_to_plain)


async def run_checks(suite):
    for size in SIZES:
        await suite.check(f"text message of {size} B round-trips over wss://", suite.round_trip, random_text(size))
        await suite.check(f"binary message of {size} B round-trips over wss://", suite.round_trip, rng.randbytes(size))
    await suite.check("wss://localhost (a DNS name, checked against the certificate) round-trips", suite.round_trip,
                      "via localhost", f"wss://localhost:{suite.port}/ws")
    await suite.check("fragmented text comes back whole", suite.fragmented, ["frag", "mented ", "tëxt"])
    await suite.check("fragmented binary comes back whole", suite.fragmented,
                      [rng.randbytes(10), b"", rng.randbytes(70000)])
    await suite.check("ping is answered by its pong", suite.ping)
    for code in CLOSE_CODES:
        await suite.check(f"close {code} is echoed promptly", suite.close_with, code, f"reason {code}")
    await suite.check("20 concurrent wss:// connections echo", suite.concurrent, 20)
    await suite.check("TLS 1.2 works", suite.tls_version, ssl.TLSVersion.TLSv1_2, "TLSv1.2")
    await suite.check("TLS 1.3 works", suite.tls_version, ssl.TLSVersion.TLSv1_3, "TLSv1.3")
    await suite.check("ALPN picks http/1.1 from h2, http/1.1", suite.alpn)
    await suite.check("upgrade on another path gets 404", suite.not_found)
    await suite.check("https GET /ws without upgrade headers gets 400", suite.https_get_is_400)
    await suite.check("close_notify follows the WebSocket close promptly", suite.close_notify)
    await suite.check("a client that does not trust the CA refuses the certificate", suite.untrusted_refused)
    await suite.check("a client expecting another host name refuses the certificate", suite.wrong_name_refused)
    await suite.check("plain HTTP on the TLS port gets 400 and a clean close", suite.plain_http_gets_400)
    await suite.check("a client that never speaks TLS is dropped after the handshake timeout", suite.silent_client_dropped)
    await suite.check("TLS sent to the plain duplex-echo gets 400 or a close, quickly", suite.tls_to_plain_port)
    await suite.check("still serving at the end", suite.round_trip, "still serving")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", required=True, help="path to duplex-tls-echo")
    parser.add_argument("--plain-echo", required=True, help="path to duplex-echo")
    parser.add_argument("--make-certs", required=True, help="path to make-certs.sh")
    parser.add_argument("--certs", required=True, help="directory for the throwaway certificates")
    args = parser.parse_args()

    passed = failed = 0
    servers = []
    try:
        subprocess.run(["bash", args.make_certs, args.certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
        ca_file = os.path.join(args.certs, "ca.pem")
        tls_echo = Server([args.echo, "--urls", "https://127.0.0.1:0", "--cert", os.path.join(args.certs, "server.pem"),
                           "--key", os.path.join(args.certs, "server.key"),
                           "--handshake-timeout-ms", str(HANDSHAKE_TIMEOUT_MS)],
                          r"duplex-tls-echo listening on https://127\.0\.0\.1:(\d+)")
        servers.append(tls_echo)
        plain_echo = Server([args.plain_echo, "--urls", "http://127.0.0.1:0"], r"listening on http://127\.0\.0\.1:(\d+)")
        servers.append(plain_echo)
        port, plain_port = tls_echo.wait_for_port(), plain_echo.wait_for_port()
        print(f"duplex-tls-echo (pid {tls_echo.process.pid}) on port {port}, "
              f"duplex-echo (pid {plain_echo.process.pid}) on port {plain_port}", flush=True)
        suite = Suite(port, plain_port, ca_file)
        asyncio.run(run_checks(suite))
        passed, failed = suite.passed, suite.failed
        for server, name in ((tls_echo, "duplex-tls-echo"), (plain_echo, "duplex-echo")):
            if server.alive():
                passed += 1
                print(f"PASS {name} alive after all checks", flush=True)
            else:
                failed += 1
                print(f"FAIL {name} died during the run (exit status {server.process.returncode})", flush=True)
    except Exception as error:
        failed += 1
        print(f"FAIL setting up: {type(error).__name__}: {error}", flush=True)
    finally:
        for server in servers:
            server.stop()

    if failed:
        for server in servers:
            if server.output:
                print(f"--- output of pid {server.process.pid} (last 40 lines) ---")
                for line in server.output[-40:]:
                    print(line)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
