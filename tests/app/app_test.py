#!/usr/bin/python3
"""The app host end to end: app_test_server driven by raw sockets and Debian's python3-websockets.

    /usr/bin/python3 tests/app/app_test.py --server build/tests/app-test-server

Each check prints PASS/FAIL; the last line is "N passed, M failed"; exit status 1 on any failure.
"""
import argparse
import asyncio
import base64
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import websockets

KEY = base64.b64encode(os.urandom(16)).decode()


class Server:
    def __init__(self, path, wwwroot):
        self.process = subprocess.Popen([path, "--urls", "http://127.0.0.1:0", "--wwwroot", wwwroot],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.output = []  # every line the server printed, for checks after it exited
        self.port = None
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.time() + 10
        while self.port is None and time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if " listening on http://127.0.0.1:" in line:
                self.port = int(line.rsplit(":", 1)[1])
        if self.port is None:
            raise RuntimeError("the test server did not start")
        self.events = []

    def _pump(self):
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def wait_event(self, prefix, timeout=5.0):
        """Returns the first EVENT line starting with prefix (seen now or within timeout)."""
        deadline = time.time() + timeout
        for e in self.events:
            if e.startswith(prefix):
                self.events.remove(e)
                return e
        while time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.startswith("EVENT "):
                e = line[6:]
                if e.startswith(prefix):
                    return e
                self.events.append(e)
        return None


def raw_request(port, data, read_timeout=5.0):
    """Sends raw bytes, returns everything received until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        received = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += chunk
        except socket.timeout:
            pass
        return received


def read_to_end(sock):
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def status_of(response):
    line = response.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def header_of(response, name):
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def upgrade_request(path, extra=""):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def read_frame(sock):
    """Reads one server frame from a raw socket: (opcode, payload)."""
    def exact(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data
    b0, b1 = exact(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(length)


class Suite:
    def __init__(self, server):
        self.server = server
        self.passed = self.failed = 0

    def check(self, name, fn):
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                asyncio.run(asyncio.wait_for(result, 30))
            print(f"PASS {name}", flush=True)
            self.passed += 1
        except Exception as e:  # noqa: BLE001 — every failure is reported, the suite goes on
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            self.failed += 1

    # ---- plain HTTP ----

    def pipeline_order(self):
        r = raw_request(self.server.port, b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 200, r[:200]
        assert r.endswith(b"hello x=1"), r[-50:]
        assert header_of(r, "X-Trace") == "A>B><B<A", header_of(r, "X-Trace")

    def not_found(self):
        r = raw_request(self.server.port, b"GET /nothing-here HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 404, r[:100]
        assert header_of(r, "X-Trace") == "A>B><B<A", "the pipeline unwinds through every middleware"

    def keep_alive_requests(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(b"GET /hello?n=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /hello?n=2 HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while data.count(b"hello n=") < 2:
                chunk = s.recv(65536)
                assert chunk, "connection closed before both responses"
                data += chunk
            assert b"hello n=1" in data and b"hello n=2" in data
            assert data.count(b"HTTP/1.1 200") == 2

    def request_body(self):
        r = raw_request(self.server.port,
                        b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello body!")
        assert status_of(r) == 200 and r.endswith(b"hello body!"), r[-60:]

    def handler_exception_is_500(self):
        r = raw_request(self.server.port, b"GET /throw HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(r) == 500, r[:100]

    def malformed_is_400(self):
        r = raw_request(self.server.port, b"GET /hello HTTP/1.1\r\nHost a\r\n\r\n")
        assert status_of(r) == 400, r[:100]

    def uri_too_long_is_414(self):
        r = raw_request(self.server.port, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(r) == 414, r[:100]

    def head_too_large_is_431(self):
        r = raw_request(self.server.port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 3000 + b"\r\n\r\n")
        assert status_of(r) == 431, r[:100]

    def wrong_version_is_426(self):
        r = raw_request(self.server.port, upgrade_request("/ws").replace(b"Version: 13", b"Version: 8"))
        assert status_of(r) == 426, r[:100]
        assert header_of(r, "Sec-WebSocket-Version") == "13"

    def plain_get_on_ws_is_400(self):
        r = raw_request(self.server.port, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 400, r[:100]

    def slowloris_is_closed(self):
        start = time.time()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n")
            for _ in range(40):  # trickle a byte every 100 ms
                try:
                    s.sendall(b"X")
                except OSError:
                    break
                time.sleep(0.1)
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    break
                finally:
                    s.setblocking(True)
            elapsed = time.time() - start
        assert elapsed < 3.0, f"the trickling client was not cut off (after {elapsed:.1f} s; request timeout 0.5 s)"

    def over_max_connections_is_503(self):
        # max_connections = 20: with 19 held, the 20th is served (and stays open); the 21st gets 503.
        # Held connections send nothing, so all of this must happen within the idle timeout (3 s).
        held = [socket.create_connection(("127.0.0.1", self.server.port), timeout=5) for _ in range(19)]
        try:
            twentieth = None
            refused_while_retrying = 0
            for _ in range(10):  # connections of earlier checks may take a moment to be released
                c = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
                c.sendall(b"GET /hello?n=20 HTTP/1.1\r\nHost: a\r\n\r\n")
                r = b""
                while not r.endswith(b"hello n=20"):
                    chunk = c.recv(65536)
                    if not chunk:  # a 503 ends the connection
                        break
                    r += chunk
                if status_of(r) == 200:
                    twentieth = c
                    break
                refused_while_retrying += 1
                c.close()
                time.sleep(0.05)
            assert twentieth is not None, "the 20th connection was not served"
            held.append(twentieth)
            for _ in range(4):
                r = raw_request(self.server.port, b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
                assert status_of(r) == 503, r[:100]
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        r = raw_request(self.server.port, b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 200, "serves again once connections are released"
        # The operator hears about it once when refusing starts and once when it ends, not once per refused
        # connection (4 in the last episode alone).
        time.sleep(0.1)
        reached = [line for line in self.server.output if "max_connections (20) reached" in line]
        assert 1 <= len(reached) <= 1 + refused_while_retrying, self.server.output[-8:]
        assert all(": warning: " in line for line in reached), reached
        assert any("again (" in line and "refused at max_connections" in line for line in self.server.output), \
            self.server.output[-5:]

    def body_limit_is_413(self):
        # max_request_body_size = 1024: exactly that is served, one byte more is 413.
        r = raw_request(self.server.port, b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n"
                        b"Connection: close\r\n\r\n" + b"b" * 1024)
        assert status_of(r) == 200 and r.endswith(b"b" * 1024), r[:100]
        r = raw_request(self.server.port, b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n"
                        b"Connection: close\r\n\r\n" + b"b" * 1025)
        assert status_of(r) == 413, r[:100]

    def idle_timeout_closes_connection(self):
        # idle_timeout = 3 s: a connection that sends nothing, and a keep-alive connection after its
        # response, are closed by the server (the socket's own timeout, 15 s, would fail the check).
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=15) as s:
            assert s.recv(1) == b"", "an idle connection got data"
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=15) as s:
            s.sendall(b"GET /hello?idle HTTP/1.1\r\nHost: a\r\n\r\n")
            data = read_to_end(s)
            assert status_of(data) == 200 and data.endswith(b"hello idle"), data[:100]

    def slow_download_outlives_request_timeout(self):
        # request_timeout (0.5 s) bounds each stalled write, not the response: 32 MiB read in 1 MiB steps
        # every 60 ms takes about 2 s and arrives whole.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            s.settimeout(10)
            s.connect(("127.0.0.1", self.server.port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            started = time.time()
            data = bytearray()
            while True:
                step = bytearray()
                while len(step) < 1 << 20:
                    chunk = s.recv((1 << 20) - len(step))
                    if not chunk:
                        break
                    step += chunk
                data += step
                if len(step) < 1 << 20:
                    break
                time.sleep(0.06)
            took = time.time() - started
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert status_of(head) == 200, head[:100]
        assert len(body) == 32 * 1024 * 1024, f"{len(body)} B of 32 MiB arrived in {took:.1f} s"
        assert took > 1.0, f"the download took only {took:.1f} s: it did not outlast request_timeout"

    def keep_alive_waits_idle_timeout_not_request_timeout(self):
        # Between requests only idle_timeout (3 s) applies; request_timeout (0.5 s) starts with a request's
        # first byte. A keep-alive client quiet for 1.5 s is still served, then closed about 3 s later.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=15) as s:
            for n in range(2):
                if n:
                    time.sleep(1.5)
                s.sendall(f"GET /hello?n={n} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                data = b""
                while not data.endswith(f"hello n={n}".encode()):
                    chunk = s.recv(65536)
                    assert chunk, f"the connection was closed after {1.5 * n} s idle, before request {n}"
                    data += chunk
                assert status_of(data) == 200, data[:100]
            answered = time.time()
            assert s.recv(1) == b"", "an idle connection got data"
            idle = time.time() - answered
            assert idle > 2.0, f"closed {idle:.1f} s after the last response: not the 3 s idle timeout"

    # ---- static files ----

    def static_index(self):
        r = raw_request(self.server.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 200 and b"index page" in r, r[:200]
        assert header_of(r, "Content-Type").startswith("text/html")
        r = raw_request(self.server.port, b"GET /style.css HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 200 and header_of(r, "Content-Type").startswith("text/css")

    def static_traversal(self):
        for path in [b"/../secret.txt", b"/%2e%2e/secret.txt", b"/%2E%2E/secret.txt", b"/..%2fsecret.txt",
                     b"/sub/../../secret.txt", b"/sub/%2e%2e/%2e%2e/secret.txt", b"//etc/passwd", b"/..\\secret.txt",
                     b"/link-out/secret.txt", b"/link-to-secret.txt", b"/%00index.html", b"/./../secret.txt"]:
            r = raw_request(self.server.port, b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            assert status_of(r) in (400, 404), f"{path!r} answered {r[:60]!r}"
            assert b"top secret" not in r, f"{path!r} leaked the file outside wwwroot"

    def static_validators(self):
        # ETag and Last-Modified; a copy that is current gets 304 without content or Content-Length.
        def get(extra=b"", method=b"GET"):
            return raw_request(self.server.port, method + b" /style.css HTTP/1.1\r\nHost: a\r\n" + extra +
                               b"Connection: close\r\n\r\n")
        r = get()
        etag, modified = header_of(r, "ETag"), header_of(r, "Last-Modified")
        assert status_of(r) == 200 and etag and etag.startswith('"') and modified.endswith(" GMT"), r[:300]
        assert header_of(r, "Accept-Ranges") == "bytes"
        for extra in [f"If-None-Match: {etag}\r\n", f'If-None-Match: "other", W/{etag}\r\n', "If-None-Match: *\r\n",
                      f"If-Modified-Since: {modified}\r\n", "If-Modified-Since: Fri, 31 Dec 2100 23:59:59 GMT\r\n"]:
            for method in [b"GET", b"HEAD"]:
                r = get(extra.encode(), method)
                head, _, body = r.partition(b"\r\n\r\n")
                assert status_of(r) == 304 and body == b"", f"{method} {extra!r}: {r[:120]!r}"
                assert header_of(r, "Content-Length") is None and header_of(r, "ETag") == etag, f"{extra!r}: {head!r}"
        # If-None-Match decides when present; an older date or another tag gets the file.
        for extra in ['If-None-Match: "other"\r\n', "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
                      f'If-None-Match: "other"\r\nIf-Modified-Since: {modified}\r\n', "If-Modified-Since: yesterday\r\n"]:
            r = get(extra.encode())
            assert status_of(r) == 200 and r.endswith(b"p { color: red }"), f"{extra!r}: {r[:120]!r}"

    def static_ranges(self):
        digits = b"0123456789" * 100  # digits.txt, 1000 bytes

        def get(range_header, extra=b"", method=b"GET"):
            return raw_request(self.server.port, method + b" /digits.txt HTTP/1.1\r\nHost: a\r\nRange: " +
                               range_header + b"\r\n" + extra + b"Connection: close\r\n\r\n")
        for spec, first, last in [(b"bytes=10-19", 10, 19), (b"bytes=990-", 990, 999), (b"bytes=-5", 995, 999),
                                  (b"bytes=995-5000", 995, 999), (b"Bytes=0-0", 0, 0)]:
            r = get(spec)
            head, _, body = r.partition(b"\r\n\r\n")
            assert status_of(r) == 206, f"{spec}: {head!r}"
            assert header_of(r, "Content-Range") == f"bytes {first}-{last}/1000", f"{spec}: {head!r}"
            assert body == digits[first:last + 1] and header_of(r, "Content-Length") == str(last - first + 1), spec
        for spec in [b"bytes=1000-", b"bytes=5000-6000", b"bytes=-0"]:
            r = get(spec)
            assert status_of(r) == 416 and header_of(r, "Content-Range") == "bytes */1000", f"{spec}: {r[:200]!r}"
        # Ignored: malformed, another unit, several ranges, HEAD, and an If-Range for another version.
        etag = header_of(raw_request(self.server.port, b"HEAD /digits.txt HTTP/1.1\r\nHost: a\r\n"
                                     b"Connection: close\r\n\r\n"), "ETag")
        for spec, extra, method in [(b"bytes=5-2", b"", b"GET"), (b"items=0-1", b"", b"GET"),
                                    (b"bytes=0-1,5-6", b"", b"GET"), (b"bytes=0-1", b"", b"HEAD"),
                                    (b"bytes=0-1", b'If-Range: "other"\r\n', b"GET")]:
            r = get(spec, extra, method)
            assert status_of(r) == 200 and header_of(r, "Content-Length") == "1000", f"{spec} {extra}: {r[:200]!r}"
            assert r.endswith(digits if method == b"GET" else b"\r\n\r\n"), f"{spec} {extra}"
        r = get(b"bytes=0-1", f"If-Range: {etag}\r\n".encode())
        assert status_of(r) == 206 and r.endswith(b"\r\n\r\n01"), r[:200]

    # ---- HTTP corner cases ----

    def host_is_checked(self):
        # RFC 9112 §3.2: an HTTP/1.1 request without Host, any with two or an invalid one gets 400.
        for head in [b"GET /hello HTTP/1.1\r\n", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
                     b"GET /hello HTTP/1.0\r\nHost: a\r\nhost: a\r\n", b"GET /hello HTTP/1.1\r\nHost: a b\r\n",
                     b"GET /hello HTTP/1.1\r\nHost: a/b\r\n", b"GET /hello HTTP/1.1\r\nHost: [::1\r\n",
                     b"GET /hello HTTP/1.1\r\nHost: a:8x\r\n", b"GET /hello HTTP/1.1\r\nHost: a@b\r\n",
                     upgrade_request("/ws").replace(b"Host: 127.0.0.1\r\n", b"")]:
            r = raw_request(self.server.port, head + b"\r\n" if not head.endswith(b"\r\n\r\n") else head)
            assert status_of(r) == 400, f"{head!r}: {r[:100]!r}"
        for host in [b"", b"example.com", b"example.com:8080", b"127.0.0.1:80", b"[::1]:80", b"xn--bcher-kva.example",
                     b"a%41b"]:
            r = raw_request(self.server.port, b"GET /hello?h HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            assert status_of(r) == 200, f"Host: {host!r}: {r[:100]!r}"
        r = raw_request(self.server.port, b"GET /hello?h HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs none
        assert status_of(r) == 200, r[:100]

    def absolute_form_is_routed_by_path(self):
        r = raw_request(self.server.port, b"GET http://127.0.0.1/hello?x=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Connection: close\r\n\r\n")
        assert status_of(r) == 200 and r.endswith(b"hello x=2"), r[:200]
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(upgrade_request(f"HTTP://127.0.0.1:{self.server.port}/ws"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                assert chunk, head
                head += chunk
            assert status_of(head) == 101, head[:100]
        r = raw_request(self.server.port, b"GET http://127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert status_of(r) == 200 and b"index page" in r, r[:100]

    def expect_100_continue(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            # The handler reads the body: 100 Continue first, the answer once the body came.
            s.sendall(b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                byte = s.recv(1)
                assert byte, f"the connection closed without 100 Continue: {interim!r}"
                interim += byte
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
            s.sendall(b"hello")
            data = b""
            while not data.endswith(b"hello"):
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
            assert status_of(data) == 200, data[:100]
        # The handler does not read it: the final answer at once, without 100, and the connection closes
        # (the client will not send the body).
        r = raw_request(self.server.port, b"POST /ignore-body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                        b"Expect: 100-continue\r\n\r\n")
        assert status_of(r) == 200 and r.endswith(b"ignored") and b"100 Continue" not in r, r[:200]
        assert header_of(r, "Connection") == "close", r[:200]
        # Too large: 413 at once; an unknown expectation: 417.
        r = raw_request(self.server.port, b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n"
                        b"Expect: 100-continue\r\n\r\n")
        assert status_of(r) == 413 and b"100 Continue" not in r, r[:100]
        r = raw_request(self.server.port, b"POST /echo-body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                        b"Expect: teapot\r\n\r\nhello")
        assert status_of(r) == 417, r[:100]

    def unread_body_is_dropped_before_the_next_request(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000 +
                      b"GET /hello?after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = read_to_end(s)
            assert data.count(b"HTTP/1.1 200") == 2 and data.endswith(b"hello after"), data[-200:]

    # ---- WebSockets ----

    async def echo(self):
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"

    async def origin_allowed(self):
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws", origin="https://allowed.example") as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws") as ws:  # no Origin: not a browser
            await ws.send("ok")
            assert await ws.recv() == "ok"

    def origin_refused(self):
        r = raw_request(self.server.port, upgrade_request("/ws", "Origin: https://evil.example\r\n"))
        assert status_of(r) == 403, r[:100]

    async def subprotocol(self):
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/subprotocol",
                                      subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2", ws.subprotocol
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/subprotocol") as ws:
            assert ws.subprotocol is None

    def unoffered_subprotocol_is_refused_before_answering(self):
        r = raw_request(self.server.port, upgrade_request("/ws/unoffered-subprotocol"))
        assert status_of(r) == 500, r[:100]

    async def compression_from_accept_context(self):
        # accept_context{dangerous_enable_compression, server_max_window_bits = 10,
        # disable_server_context_takeover} in the answer to python3-websockets' default offer.
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/compressed", max_size=None) as ws:
            assert len(ws.extensions) == 1, ws.extensions
            agreed = ws.extensions[0]
            assert agreed.name == "permessage-deflate", agreed.name
            assert agreed.remote_max_window_bits == 10, agreed.remote_max_window_bits
            assert agreed.remote_no_context_takeover, "server_no_context_takeover was not answered"
            for message in ["hello " * 1000, bytes(range(256)) * 300, ""]:
                await ws.send(message)
                assert await ws.recv() == message
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/compressed", compression=None) as ws:
            assert not ws.extensions
            await ws.send("plain")
            assert await ws.recv() == "plain"
        # Without dangerous_enable_compression (the default) an offer is declined.
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws") as ws:
            assert not ws.extensions, ws.extensions

    def compression_window_out_of_range_is_refused_before_answering(self):
        r = raw_request(self.server.port, upgrade_request("/ws/compressed-bad-window",
                                                          "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        assert status_of(r) == 500, r[:100]

    async def websocket_message_size_limit(self):
        # websocket_limits.max_message_size = 128 KiB: exactly that is echoed, one byte more gets 1009.
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws", compression=None) as ws:
            await ws.send(b"m" * (128 * 1024))
            assert await ws.recv() == b"m" * (128 * 1024)
            await ws.send(b"m" * (128 * 1024 + 1))
            try:
                await asyncio.wait_for(ws.recv(), 5)
                raise AssertionError("expected close 1009")
            except websockets.exceptions.ConnectionClosed:
                pass
            assert ws.close_code == 1009, ws.close_code

    async def websocket_fragment_limit(self):
        # websocket_limits.max_fragments_per_message = 100: 100 frames are echoed, 101 get 1008.
        # python3-websockets sends an iterable as one frame per item and an empty final frame.
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws", compression=None) as ws:
            await ws.send(iter([b"x"] * 99))
            assert await ws.recv() == b"x" * 99
            try:  # the close may come while the fragments are still being sent
                await ws.send(iter([b"y"] * 100))
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.exceptions.ConnectionClosed:
                pass
            assert ws.close_code == 1008, ws.close_code

    def websocket_send_queue_limit(self):
        # websocket_limits.max_send_queue_bytes = 128 KiB: 64 senders for a client that does not read.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(upgrade_request("/ws/flood"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert status_of(head) == 101
            e = self.server.wait_event("flood")
            assert e == "flood send_queue_full", e
            code = None
            try:
                while code is None:
                    opcode, payload = read_frame(s)
                    if opcode == 0x8:
                        code = struct.unpack("!H", payload[:2])[0]
            except (EOFError, ConnectionResetError):
                pass
            assert code == 1008, f"close code {code}"

    def keep_alive_pings(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(upgrade_request("/ws"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert status_of(head) == 101
            start = time.time()
            opcode, payload = read_frame(s)
            assert opcode == 0x9, f"expected a ping, got opcode {opcode}"
            assert time.time() - start < 2.0

    async def keep_alive_python_client_stays(self):
        # python3-websockets answers our pings, so the connection outlives many intervals.
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/keepalive-timeout",
                                      ping_interval=None) as ws:
            await asyncio.sleep(1.0)
            await ws.send("still here")
            await ws.close()
        assert self.server.wait_event("keepalive", timeout=0.5) is None, "a live client was timed out"

    def keep_alive_timeout_detects_silent_peer(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(upgrade_request("/ws/keepalive-timeout"))
            start = time.time()
            data = b""
            try:
                while True:  # read (never answer) until the server drops us
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            elapsed = time.time() - start
        assert elapsed < 3.0, f"silent peer not detected after {elapsed:.1f} s (interval 0.1 s, timeout 0.3 s)"
        e = self.server.wait_event("keepalive")
        assert e == "keepalive timeout", e

    async def use_after_request_ended(self):
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/after-end") as ws:
            try:
                await asyncio.wait_for(ws.recv(), 3)
            except websockets.exceptions.ConnectionClosed:
                pass
        e = self.server.wait_event("request_ended")
        assert e is not None and e.startswith("request_ended ok"), e

    async def background_processor(self):
        async with websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws/background") as ws:
            got = [await ws.recv() for _ in range(3)]
            assert got == ["tick 1", "tick 2", "tick 3"], got
            try:
                await asyncio.wait_for(ws.recv(), 3)
                raise AssertionError("expected the background processor's close")
            except websockets.exceptions.ConnectionClosedOK:
                pass
            assert ws.close_code == 1000 and ws.close_reason == "background done"
        e = self.server.wait_event("background finished")
        assert e is not None

    async def graceful_shutdown(self):
        clients = [await websockets.connect(f"ws://127.0.0.1:{self.server.port}/ws") for _ in range(3)]
        for c in clients:
            await c.send("before shutdown")
            assert await c.recv() == "before shutdown"
        # A keep-alive response still being written at SIGTERM (the client reads slowly) is finished, then
        # the connection is closed at once: the shutdown must not wait for a next request that never comes.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", self.server.port))
        slow.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(0.2)  # the server fills the socket buffers and waits for the client to read
        self.server.process.send_signal(signal.SIGTERM)
        received = bytearray()
        while True:
            chunk = await asyncio.get_running_loop().run_in_executor(None, slow.recv, 1 << 20)
            if not chunk:
                break
            received += chunk
        slow.close()
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert status_of(head) == 200, head[:100]
        assert len(body) == 32 * 1024 * 1024 and body.count(b"b") == len(body), f"{len(body)} B of 32 MiB"
        for c in clients:
            try:
                await asyncio.wait_for(c.recv(), 5)
                raise AssertionError("expected a close")
            except websockets.exceptions.ConnectionClosed:
                pass
            assert c.close_code == 1001, c.close_code
        code = await asyncio.get_running_loop().run_in_executor(None, lambda: self.server.process.wait(timeout=8))
        assert code == 0, f"exit status {code}"
        assert self.server.wait_event("stopped", timeout=1) is not None
        cut_off = [line for line in self.server.output if "shutdown_timeout passed" in line]
        assert not cut_off, cut_off


def make_wwwroot():
    base = tempfile.mkdtemp(prefix="duplex-app-test-")
    root = os.path.join(base, "wwwroot")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><title>t</title><p>index page</p>")
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("p { color: red }")
    with open(os.path.join(root, "digits.txt"), "w") as f:
        f.write("0123456789" * 100)
    outside = os.path.join(base, "outside")
    os.makedirs(outside)
    with open(os.path.join(base, "secret.txt"), "w") as f:
        f.write("top secret")
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("top secret")
    os.symlink(outside, os.path.join(root, "link-out"))
    os.symlink(os.path.join(base, "secret.txt"), os.path.join(root, "link-to-secret.txt"))
    return root


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    args = parser.parse_args()
    server = Server(args.server, make_wwwroot())
    suite = Suite(server)
    try:
        for name in ["pipeline_order", "not_found", "keep_alive_requests", "request_body", "handler_exception_is_500",
                     "malformed_is_400", "uri_too_long_is_414", "head_too_large_is_431", "wrong_version_is_426",
                     "plain_get_on_ws_is_400", "slowloris_is_closed", "over_max_connections_is_503", "body_limit_is_413",
                     "idle_timeout_closes_connection",
                     "keep_alive_waits_idle_timeout_not_request_timeout",
                     "slow_download_outlives_request_timeout", "static_index",
                     "static_traversal", "static_validators", "static_ranges", "host_is_checked",
                     "absolute_form_is_routed_by_path", "expect_100_continue",
                     "unread_body_is_dropped_before_the_next_request", "echo", "origin_allowed", "origin_refused", "subprotocol",
                     "unoffered_subprotocol_is_refused_before_answering", "compression_from_accept_context",
                     "compression_window_out_of_range_is_refused_before_answering", "websocket_message_size_limit",
                     "websocket_fragment_limit", "websocket_send_queue_limit", "keep_alive_pings",
                     "keep_alive_python_client_stays", "keep_alive_timeout_detects_silent_peer",
                     "use_after_request_ended", "background_processor", "graceful_shutdown"]:
            suite.check(name.replace("_", " "), getattr(suite, name))
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    print(f"{suite.passed} passed, {suite.failed} failed")
    sys.exit(1 if suite.failed else 0)


if __name__ == "__main__":
    main()
