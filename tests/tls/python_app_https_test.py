#!/usr/bin/python3
"""The app host over TLS: Python's websockets client (wss://) and ssl module against duplex-echo serving
http:// and https:// from one process.

Run with Debian's Python, which has python3-websockets 10.4:

    /usr/bin/python3 python_app_https_test.py --echo build/examples/duplex-echo \\
        --make-certs examples/tls_echo/make-certs.sh --certs DIR

Makes a throwaway CA and server certificate into DIR, starts `duplex-echo --urls
"http://127.0.0.1:0;https://127.0.0.1:0" --cert --key --handshake-timeout-ms 1000` and checks, each
bounded by a timeout: messages of every size over wss://, the sample page over https:// (200, and the
page picks wss:// for itself), ws:// and wss:// side by side, close_notify after the WebSocket close and
after an https response with Connection: close, our close_notify answered on an idle keep-alive
connection, plain HTTP on the TLS port, TLS on the plain port, silent clients (dropped after the
handshake timeout, without holding up other clients), clients that drop without close_notify (their
sockets released, nothing logged), refused start-ups (an https:// URL without --cert, a missing
certificate file), and last a graceful shutdown (SIGTERM): close 1001 on every wss:// socket,
close_notify to an idle https:// connection, exit status 0. Reuses the helpers of
python_wss_client_test.py. The last line is "N passed, M failed"; the exit status is 1 when anything
failed.
"""

import argparse
import asyncio
import http.client
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import websockets
import websockets.exceptions

import python_wss_client_test as wss
from python_wss_client_test import HANDSHAKE_TIMEOUT_MS, PROMPT, SIZES, expect_equal, random_text, rng

BANNER_HTTP = r"duplex-echo listening on http://127\.0\.0\.1:(\d+)"
BANNER_HTTPS = r"duplex-echo listening on https://127\.0\.0\.1:(\d+)"


class AppServer(wss.Server):
    """duplex-echo on an http:// and an https:// port of 127.0.0.1, in one process."""

    def __init__(self, echo, certs):
        super().__init__([echo, "--urls", "http://127.0.0.1:0;https://127.0.0.1:0",
                          "--cert", os.path.join(certs, "server.pem"), "--key", os.path.join(certs, "server.key"),
                          "--handshake-timeout-ms", str(HANDSHAKE_TIMEOUT_MS)], BANNER_HTTP)
        ports = {}
        while len(ports) < 2:
            ports.update(self.wait_for_port_line())
        self.plain_port, self.tls_port = ports["http"], ports["https"]

    def wait_for_port_line(self):
        """The next banner line, as {scheme: port}."""
        deadline = time.monotonic() + wss.STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"duplex-echo exited before listening (exit status {self.process.wait()})")
            for scheme, banner in (("https", BANNER_HTTPS), ("http", BANNER_HTTP)):
                match = re.search(banner, line)
                if match:
                    return {scheme: int(match.group(1))}
        raise RuntimeError(f"no 'listening on' lines within {wss.STARTUP_TIMEOUT:.0f} s")

    def open_sockets(self):
        """How many sockets the server holds (listening ones included), from /proc."""
        count = 0
        for fd in os.listdir(f"/proc/{self.process.pid}/fd"):
            try:
                if os.readlink(f"/proc/{self.process.pid}/fd/{fd}").startswith("socket:"):
                    count += 1
            except OSError:
                pass  # closed while we looked
        return count

    def wait_for_sockets(self, at_most, within):
        deadline = time.monotonic() + within
        while True:
            held = self.open_sockets()
            if held <= at_most or time.monotonic() >= deadline:
                return held
            time.sleep(0.05)


class AppSuite(wss.Suite):
    def __init__(self, server, ca_file):
        super().__init__(server.tls_port, server.plain_port, ca_file)
        self.server = server
        self.plain_uri = f"ws://127.0.0.1:{server.plain_port}/ws"

    def https_get(self, path, headers=None):
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.trusting)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type"), response.read()
        finally:
            connection.close()

    async def page_over_https(self):
        status, content_type, body = await asyncio.to_thread(self.https_get, "/")
        if status != 200 or not content_type.startswith("text/html"):
            raise AssertionError(f"GET / over https: {status} {content_type}")
        if b"WebSocket Sample Application" not in body:
            raise AssertionError("GET / over https did not serve the sample page")
        # The page fills in its WebSocket URL from its own location: wss:// when it came over https.
        if b'document.location.protocol === "https:" ? "wss" : "ws"' not in body:
            raise AssertionError("the page does not pick wss:// when served over https")
        status, _, _ = await asyncio.to_thread(self.https_get, "/missing.html")
        if status != 404:
            raise AssertionError(f"GET /missing.html over https: expected 404, got {status}")

    async def both_schemes_at_once(self):
        async with websockets.connect(self.plain_uri, max_size=None, ping_interval=None) as plain, \
                self.connect() as secure:
            for round_ in range(20):
                a, b = f"plain {round_} " + random_text(100), rng.randbytes(3000)
                await asyncio.gather(plain.send(a), secure.send(b))
                expect_equal(a, await plain.recv(), "ws:// echo")
                expect_equal(b, await secure.recv(), "wss:// echo")
            if plain.transport.get_extra_info("ssl_object") is not None:
                raise AssertionError("the http:// port spoke TLS")
            if secure.transport.get_extra_info("ssl_object") is None:
                raise AssertionError("the https:// port did not speak TLS")

    def response_then_close_notify(self):
        with self.tls_socket() as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while True:
                try:
                    chunk = tls.recv(65536)
                except ssl.SSLError as error:  # UNEXPECTED_EOF_WHILE_READING: no close_notify
                    raise AssertionError(f"the response ended without close_notify ({error})") from None
                if not chunk:
                    break  # the server's close_notify
                answer += chunk
            if not answer.startswith(b"HTTP/1.1 200 ") or b"Connection: close" not in answer:
                raise AssertionError(f"answered with {answer[:60]!r}")
            tls.unwrap()

    async def connection_close_response(self):
        await asyncio.to_thread(self.response_then_close_notify)

    def read_response(self, tls):
        """One whole response with Content-Length: (head, body)."""
        head, body = self.read_until(tls, b"\r\n\r\n").split(b"\r\n\r\n", 1)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            body += chunk
        return head, body

    def idle_keep_alive_closed_by_client(self):
        with self.tls_socket() as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head, _ = self.read_response(tls)
            if not head.startswith(b"HTTP/1.1 200 ") or b"Connection: keep-alive" not in head:
                raise AssertionError(f"answered with {head[:60]!r}")
            started = time.monotonic()
            tls.settimeout(PROMPT + 1)
            try:
                tls.unwrap()  # sends our close_notify and waits for the server's
            except (ssl.SSLError, OSError) as error:
                raise AssertionError(f"the server did not answer our close_notify with its own ({error!r})") from None
            if time.monotonic() - started > PROMPT:
                raise AssertionError("the server's close_notify took too long")

    async def client_close_notify_answered(self):
        await asyncio.to_thread(self.idle_keep_alive_closed_by_client)

    async def silent_clients_do_not_hold_up_others(self):
        """Three clients that connect and say nothing, then a wss:// round trip: it must not wait for their
        handshake timeouts (each connection's handshake runs on its own, not in the accept loop)."""
        silent = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(3)]
        try:
            started = time.monotonic()
            await self.round_trip("past the silent clients")
            elapsed = time.monotonic() - started
            if elapsed > HANDSHAKE_TIMEOUT_MS / 1000 / 2:
                raise AssertionError(f"the round trip took {elapsed:.2f} s next to silent clients")
        finally:
            for s in silent:
                s.close()

    async def drop_without_close_notify(self, count=10):
        """wss:// clients that vanish mid-conversation (TCP closed, no close frame, no close_notify), plus one
        mid-request and one mid-handshake: every socket is released and nothing is logged."""
        logged_before = len(self.server.output)
        baseline = self.server.wait_for_sockets(0, 0)
        clients = []
        for _ in range(count):
            ws = await self.connect()
            await ws.send("about to vanish")
            expect_equal("about to vanish", await ws.recv())
            clients.append(ws)
        with self.tls_socket() as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0")  # half a request head; Python's close sends no close_notify
        hello = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        hello.sendall(b"\x16\x03\x01\x00\xf0\x01\x00")  # the start of a ClientHello
        hello.close()
        for ws in clients:
            ws.transport.abort()  # TCP closed without close_notify
        held = await asyncio.to_thread(self.server.wait_for_sockets, baseline, 3.0)
        if held > baseline:
            raise AssertionError(f"the server still holds {held - baseline} socket(s) of the dropped clients")
        await self.round_trip("still serving after the drops")
        logged = [line for line in self.server.output[logged_before:] if "listening on" not in line]
        if logged:
            raise AssertionError(f"the drops were logged: {logged[:3]}")


def refused_startups(echo, certs):
    """(name, error or None) for each start-up that must fail with a clear message."""
    cases = [
        ("an https:// URL without --cert", [echo, "--urls", "https://127.0.0.1:0"],
         "cannot serve https://127.0.0.1:0: https:// needs a certificate"),
        ("a certificate file that does not exist",
         [echo, "--urls", "https://127.0.0.1:0", "--cert", os.path.join(certs, "missing.pem"),
          "--key", os.path.join(certs, "server.key")],
         f"cannot load the certificate file '{os.path.join(certs, 'missing.pem')}'"),
    ]
    results = []
    for name, command, expected in cases:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=10)
            error = None
            if done.returncode != 1:
                error = f"exit status {done.returncode}, expected 1"
            elif expected not in done.stderr:
                error = f"stderr {done.stderr.strip()!r} does not say {expected!r}"
            elif "listening on" in done.stdout:
                error = "it listened before failing"
        except subprocess.TimeoutExpired:
            error = "it did not exit within 10 s"
        results.append((f"start-up refused: {name}", error))
    return results


async def graceful_shutdown(suite):
    """SIGTERM with three wss:// clients and an idle https:// keep-alive connection open."""
    server = suite.server
    clients = [await suite.connect() for _ in range(3)]
    for ws in clients:
        await ws.send("before shutdown")
        expect_equal("before shutdown", await ws.recv())
    idle = await asyncio.to_thread(suite.tls_socket)
    try:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, _ = await asyncio.to_thread(suite.read_response, idle)
        if not head.startswith(b"HTTP/1.1 200 "):
            raise AssertionError(f"the idle connection's request was answered with {head[:40]!r}")
        started = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        for ws in clients:
            try:
                await asyncio.wait_for(ws.recv(), 5)
                raise AssertionError("expected the server's close")
            except websockets.exceptions.ConnectionClosed:
                pass
            if ws.close_code != 1001:
                raise AssertionError(f"closed with {ws.close_code}, expected 1001")
        try:
            after = await asyncio.to_thread(idle.recv, 4096)
        except ssl.SSLError as error:  # UNEXPECTED_EOF_WHILE_READING: no close_notify
            raise AssertionError(f"the idle https:// connection was closed without close_notify ({error})") from None
        if after != b"":
            raise AssertionError(f"the idle connection got {after[:40]!r} instead of close_notify")
    finally:
        idle.close()
    status = await asyncio.to_thread(server.process.wait, 8)
    if status != 0:
        raise AssertionError(f"exit status {status}")
    if time.monotonic() - started > 3:
        raise AssertionError(f"the shutdown took {time.monotonic() - started:.1f} s")


async def run_checks(suite):
    for size in SIZES:
        await suite.check(f"text message of {size} B round-trips over wss://", suite.round_trip, random_text(size))
        await suite.check(f"binary message of {size} B round-trips over wss://", suite.round_trip, rng.randbytes(size))
    await suite.check("20 concurrent wss:// connections echo", suite.concurrent, 20)
    await suite.check("close 1000 is echoed promptly over wss://", suite.close_with, 1000, "done")
    await suite.check("GET / over https serves the sample page, which picks wss:// for itself", suite.page_over_https)
    await suite.check("ws:// and wss:// served side by side by one process", suite.both_schemes_at_once)
    await suite.check("close_notify follows the WebSocket close promptly", suite.close_notify)
    await suite.check("an https response with Connection: close ends with close_notify",
                      suite.connection_close_response)
    await suite.check("our close_notify on an idle keep-alive connection is answered with the server's",
                      suite.client_close_notify_answered)
    await suite.check("plain HTTP on the TLS port gets 400 and a clean close", suite.plain_http_gets_400)
    await suite.check("TLS sent to the plain port gets 400 or a close, quickly", suite.tls_to_plain_port)
    await suite.check("a client that never speaks TLS is dropped after the handshake timeout",
                      suite.silent_client_dropped)
    await suite.check("silent clients do not hold up others' handshakes", suite.silent_clients_do_not_hold_up_others)
    await suite.check("clients that drop without close_notify are released, nothing logged",
                      suite.drop_without_close_notify)
    await suite.check("still serving wss:// at the end", suite.round_trip, "still serving")
    await suite.check("SIGTERM: 1001 on every wss:// socket, close_notify on idle https://, exit 0",
                      graceful_shutdown, suite)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--echo", required=True, help="path to duplex-echo")
    parser.add_argument("--make-certs", required=True, help="path to make-certs.sh")
    parser.add_argument("--certs", required=True, help="directory for the throwaway certificates")
    args = parser.parse_args()

    passed = failed = 0
    server = None
    try:
        subprocess.run(["bash", args.make_certs, args.certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
        for name, error in refused_startups(args.echo, args.certs):
            if error:
                failed += 1
                print(f"FAIL {name}: {error}", flush=True)
            else:
                passed += 1
                print(f"PASS {name}", flush=True)
        server = AppServer(args.echo, args.certs)
        print(f"duplex-echo (pid {server.process.pid}) on http port {server.plain_port}, https port {server.tls_port}",
              flush=True)
        suite = AppSuite(server, os.path.join(args.certs, "ca.pem"))
        asyncio.run(run_checks(suite))
        passed += suite.passed
        failed += suite.failed
    except Exception as error:
        failed += 1
        print(f"FAIL setting up: {type(error).__name__}: {error}", flush=True)
    finally:
        if server:
            server.stop()

    if failed and server and server.output:
        print(f"--- output of pid {server.process.pid} (last 40 lines) ---")
        for line in server.output[-40:]:
            print(line)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
