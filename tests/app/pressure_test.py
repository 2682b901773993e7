#!/usr/bin/python3
"""The app host under pressure: each check starts app_test_server on its own, with the options it needs.

    /usr/bin/python3 tests/app/pressure_test.py --server build/tests/app-test-server \\
        --make-certs examples/tls_echo/make-certs.sh --certs DIR

- descriptors: with RLIMIT_NOFILE lowered, connections past the limit get 503 while the server stays
  idle (no accept loop spinning), and it serves again once sockets close;
- shutdown: SIGTERM while clients are in the middle of a fragmented message (ws:// and wss://, one and
  two threads) or reading a download slowly: every client gets close 1001, the server exits in time;
- slow readers: readers taking a steady 4-48 KiB/s for several send timeouts are not cut off, a reader
  that stops is;
- static files: ten clients of a 64 MiB file that do not read keep the server's memory small while a
  WebSocket echo goes on answering; HEAD does not read the file.

Each check prints PASS/FAIL; the last line is "N passed, M failed"; exit status 1 on any failure.
"""
import argparse
import asyncio
import hashlib
import http.client
import os
import queue
import re
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from app_test import read_to_end, status_of, upgrade_request

HERE = os.path.dirname(os.path.abspath(__file__))



class Server:
    """app_test_server on http:// (and https:// with certificates) of 127.0.0.1."""

    def __init__(self, path, args=(), certs=None, descriptor_limit=None, wwwroot=None):
        urls = "http://127.0.0.1:0" + (";https://127.0.0.1:0" if certs else "")
        command = [path, "--urls", urls, *args]
        if certs:
            command += ["--cert", os.path.join(certs, "server.pem"), "--key", os.path.join(certs, "server.key")]
        if wwwroot:
            command += ["--wwwroot", wwwroot]
        limit = None
        environment = dict(os.environ)
        if descriptor_limit:
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, descriptor_limit)  # noqa: E731
            # A sanitized server (scripts/sanitizers.sh) without UBSan's vptr check: to check a vptr, LLVM
            # 16's runtime first asks whether the vtable is readable by writing it into a pipe it opens for
            # the purpose, and in a process out of descriptors, which this server is on purpose, that fails
            # and any live object is reported to have an "invalid vptr" (seen on websocket_category()'s
            # static object and on a caught system_error). Newer runtimes check that pipe() succeeded.
            if "UBSAN_OPTIONS" in environment:
                environment["UBSAN_OPTIONS"] += ":suppressions=" + os.path.join(HERE, "out_of_descriptors.supp")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        preexec_fn=limit, env=environment)
        self.lines = queue.Queue()
        self.output = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = self.tls_port = None
        deadline = time.time() + 10
        while (self.port is None or (certs and self.tls_port is None)) and time.time() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            match = re.search(r" listening on (https?)://127\.0\.0\.1:(\d+)", line)
            if match:
                if match.group(1) == "https":
                    self.tls_port = int(match.group(2))
                else:
                    self.port = int(match.group(2))
        if self.port is None:
            self.stop()
            raise RuntimeError("the test server did not start: " + "\n".join(self.output))

    def _pump(self):
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def cpu_seconds(self):
        fields = open(f"/proc/{self.process.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status_field(self, name):
        """A /proc/PID/status field in bytes (VmRSS, VmHWM)."""
        for line in open(f"/proc/{self.process.pid}/status"):
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(name)

    def bytes_read(self):
        """Bytes the server read from files and sockets so far (/proc/PID/io rchar)."""
        for line in open(f"/proc/{self.process.pid}/io"):
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise KeyError("rchar")

    def wait_line(self, text, timeout):
        """Waits for a line containing `text` and returns it (None after the timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.lines_with(text)
            if found:
                return found[0]
            time.sleep(0.05)
        return None

    def wait_event(self, prefix, timeout):
        """Waits for a line "EVENT <prefix>..." and returns it (None after the timeout)."""
        return self.wait_line("EVENT " + prefix, timeout)

    def lines_with(self, text):
        return [line for line in self.output if text in line]

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def shed_answer(port, attempts=5):
    """A request to a server at its descriptor limit: its answer (503). The server closes a shed
    connection at once without reading the request, and the request's arrival after that close draws a
    reset, which can reach us before we read the answer, and then discards it: such a knock is
    repeated (bounded), since what is checked is the answer whenever one can be read."""
    for attempt in range(attempts):
        try:
            return raw_request(port, b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        except ConnectionResetError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def raw_request(port, data, read_timeout=5.0):
    """Sends raw bytes, returns everything received until the server closes.

    At its descriptor limit the server sheds a connection by answering it and closing at once, without
    waiting for the request (app/detail/descriptors.hpp): a request that arrives after that close draws a
    reset, which ends the read with ECONNRESET instead of the end of the stream once the answer has been
    read (the kernel hands over what arrived before the reset first). What came is then the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            if not received:
                raise
        return received


class PacedReader:
    """Reads server frames from a blocking socket, taking `rate` bytes a second at the most."""

    def __init__(self, sock, rate=None):
        self.sock, self.rate = sock, rate
        self.started, self.received = time.time(), 0

    def exact(self, n):
        data = b""
        while len(data) < n:
            wanted = n - len(data)
            if self.rate:
                wanted = min(wanted, int(self.rate * (time.time() - self.started)) - self.received)
                if wanted <= 0:
                    time.sleep(0.02)
                    continue
            chunk = self.sock.recv(min(wanted, 4096))
            if not chunk:
                raise EOFError
            data += chunk
            self.received += len(chunk)
        return data

    def frame(self):
        """(opcode, payload) of the next frame."""
        b0, b1 = self.exact(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.exact(8))[0]
        return b0 & 0x0F, self.exact(length)


def close_code_on(sock):
    """Reads server frames from a blocking socket until a close frame; its code, or None at the end."""
    reader = PacedReader(sock)
    try:
        while True:
            opcode, payload = reader.frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0]
    except (EOFError, ConnectionError, socket.timeout):
        return None


# ---- a raw WebSocket client on asyncio streams (ws:// and wss://) ----

def mask(payload, key):
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def client_frame(opcode, payload=b"", fin=True):
    key = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n <= 125:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + key + mask(payload, key)


async def read_frame(reader):
    """One server frame: (fin, opcode, payload)."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return bool(b0 & 0x80), b0 & 0x0F, await reader.readexactly(length)


def trusting_context(certs):
    context = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    context.check_hostname = False
    return context


async def open_websocket(port, path, tls=None, receive_buffer=None):
    """Connects and upgrades; returns (reader, writer) after the 101."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=tls, server_hostname="127.0.0.1" if tls else None,
                                                   limit=1 << 20)
    writer.write(upgrade_request(path))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"upgrade refused: {head[:60]!r}")
    return reader, writer


async def read_until_close(reader, on_data=None):
    """Reads frames until the server's close; returns its code (None at EOF or reset without one)."""
    try:
        while True:
            fin, opcode, payload = await read_frame(reader)
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            if on_data:
                await on_data(opcode, payload)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return None


async def answer_close(reader, writer):
    """Answers the server's close, then reads until its end of the connection and closes ours."""
    try:
        writer.write(client_frame(0x8, struct.pack("!H", 1001)))
        await writer.drain()
        while await reader.read(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    writer.close()


class Suite:
    def __init__(self, args):
        self.args = args
        self.passed = self.failed = 0

    def check(self, name, fn):
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                asyncio.run(asyncio.wait_for(result, 120))
            print(f"PASS {name}", flush=True)
            self.passed += 1
        except Exception as e:  # noqa: BLE001 — every failure is reported, the suite goes on
            # Where in this file it failed (the line of the innermost frame of it), for a failure that a
            # message alone does not place, such as a reset.
            here = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            where = f" (line {here[-1].lineno}: {here[-1].line})" if here else ""
            print(f"FAIL {name}: {type(e).__name__}: {e}{where}", flush=True)
            self.failed += 1

    # ---- out of file descriptors ----

    def descriptor_exhaustion(self):
        """RLIMIT_NOFILE 40 (hard 48): the server raises it to 48 and says so. WebSockets are opened until
        the descriptors run out: those past the limit get 503, and the server, at its limit with clients
        knocking, uses next to no CPU. Once some sockets close it serves again."""
        server = Server(self.args.server, ["--max-connections", "1000"], descriptor_limit=(40, 48))
        held = []
        try:
            assert server.wait_line("file descriptor limit 48 (raised from 40)", 5), server.output[:3]
            statuses = []
            for _ in range(60):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                s.sendall(upgrade_request("/ws"))
                head = b""
                while b"\r\n\r\n" not in head:
                    try:
                        chunk = s.recv(4096)
                    except ConnectionResetError:  # a shed connection's reset, after its 503 (raw_request)
                        if not head:
                            raise
                        break
                    if not chunk:
                        break
                    head += chunk
                statuses.append(status_of(head))
                if statuses[-1] == 101:
                    held.append(s)
                else:
                    s.close()
            served = statuses.count(101)
            assert 20 < served < 48 and statuses == [101] * served + [503] * (60 - served), statuses

            started, cpu_before = time.time(), server.cpu_seconds()
            for _ in range(5):  # clients keep knocking while the server is at its limit
                assert status_of(shed_answer(server.port)) == 503
                time.sleep(0.4)
            busy = server.cpu_seconds() - cpu_before
            elapsed = time.time() - started
            assert busy < 0.25 * elapsed, f"{busy:.2f} s of CPU in {elapsed:.1f} s at the descriptor limit: spinning"
            server.wait_line("out of file descriptors", 5)
            shortage = server.lines_with("out of file descriptors")
            assert len(shortage) == 1, shortage

            for s in held[:10]:
                s.close()
            deadline = time.time() + 5
            while True:
                try:
                    r = raw_request(server.port, b"GET /hello?again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                except ConnectionResetError:  # still shed, and its reset discarded the 503 (shed_answer)
                    r = b""
                if status_of(r) == 200 or time.time() > deadline:
                    break
                time.sleep(0.1)
            assert status_of(r) == 200 and r.endswith(b"hello again"), r[:80]
            assert server.wait_line("file descriptors available again", 5), server.output[-3:]
        finally:
            for s in held:
                s.close()
            server.stop()

    # ---- send_timeout: progress is progress ----

    def slow_readers(self):
        """send_timeout 2 s. Readers taking a steady 4, 12 and 48 KiB/s of a download for 10 s (five send
        timeouts) are not cut off; one that takes 12 KiB/s for 2 s and then stops is, with close 1008.

        The readers' receive buffers are 4 KiB: on loopback a segment may be 64 KiB, so with a larger
        buffer a reader's window reopens only every 64 KiB (16 s at 4 KiB/s) and the server could see no
        progress within 2 s; over a real network segments are 1448 bytes."""
        server = Server(self.args.server, ["--send-timeout-ms", "2000"])
        try:
            results = {}

            def read(name, rate, seconds):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    s.settimeout(10)
                    s.connect(("127.0.0.1", server.port))
                    s.sendall(upgrade_request("/ws/download/1000000000"))
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        head += s.recv(1)
                    reader = PacedReader(s, rate)
                    try:
                        while time.time() - reader.started < seconds:  # whole frames: pings come between
                            reader.frame()
                    except EOFError:
                        results[name] = f"closed by the server after {time.time() - reader.started:.1f} s"
                        return
                    results[name] = reader.received
                    if name == "stops":
                        if server.wait_event("download failed", 20) is None:
                            results[name] = "not cut off"
                            return
                        results[name] = close_code_on(s)

            readers = [threading.Thread(target=read, args=(f"{kib} KiB/s", kib * 1024, 10)) for kib in (4, 12, 48)]
            readers.append(threading.Thread(target=read, args=("stops", 12 * 1024, 2)))  # after a frame past 2 s
            for r in readers:
                r.start()
            for r in readers:
                r.join(60)
            timeouts = server.lines_with("EVENT download failed: send_timeout")
            assert len(timeouts) == 1, f"{len(timeouts)} downloads timed out, not only the reader that stopped"
            for kib in (4, 12, 48):
                got = results.get(f"{kib} KiB/s")
                assert isinstance(got, int) and got >= kib * 1024 * 9, f"{kib} KiB/s reader: {got}"
            assert results.get("stops") == 1008, f"the reader that stopped: {results.get('stops')}"
        finally:
            server.stop()

    # ---- static files are streamed ----

    def large_static_file(self):
        """A 64 MiB file. Ten clients request it and do not read: the server's peak RSS grows by less than
        one copy of the file over its RSS at start (a sanitized server starts 45-55 MiB higher than a plain
        one, so the bound is on the growth) and a WebSocket echo answers meanwhile. Five HEAD requests give its size and read none of
        it. A client that reads gets every byte; one asking for a range gets exactly that range."""
        wwwroot = tempfile.mkdtemp(prefix="duplex-pressure-")
        content = hashlib.sha256()
        with open(os.path.join(wwwroot, "big.bin"), "wb") as f:
            for i in range(64):
                block = hashlib.sha256(str(i).encode()).digest() * (1 << 15)  # 1 MiB, different per block
                content.update(block)
                f.write(block)
        server = Server(self.args.server, ["--request-timeout-ms", "20000"], wwwroot=wwwroot, certs=self.args.certs)
        stalled = []
        try:
            at_start = server.status_field("VmRSS")
            for _ in range(10):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                s.connect(("127.0.0.1", server.port))
                s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                stalled.append(s)
            time.sleep(1.0)  # the server fills what the sockets take and waits
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as ws:
                ws.sendall(upgrade_request("/ws"))
                head = b""
                while b"\r\n\r\n" not in head:
                    head += ws.recv(1)
                ws.sendall(client_frame(0x1, b"still here"))
                reader = PacedReader(ws)
                while True:
                    opcode, payload = reader.frame()
                    if opcode == 0x1:
                        break
                assert payload == b"still here", payload
            peak = server.status_field("VmHWM")
            assert peak - at_start < 64 * 1024 * 1024, (f"peak RSS {peak / 2**20:.0f} MiB, {at_start / 2**20:.0f} MiB at "
                                                        "start, with ten stalled downloads of 64 MiB")

            read_before = server.bytes_read()
            for _ in range(5):
                r = raw_request(server.port, b"HEAD /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                head, _, body = r.partition(b"\r\n\r\n")
                assert status_of(head) == 200 and b"Content-Length: 67108864\r\n" in head + b"\r\n", head
                assert body == b"", f"HEAD sent {len(body)} B of body"
            read = server.bytes_read() - read_before
            assert read < 1 << 20, f"five HEAD requests read {read / 2**20:.1f} MiB"

            whole = raw_request(server.port, b"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 20)
            head, _, file_bytes = whole.partition(b"\r\n\r\n")
            assert status_of(head) == 200 and len(file_bytes) == 64 << 20, (head[:60], len(file_bytes))
            assert hashlib.sha256(file_bytes).digest() == content.digest(), "the file arrived changed"
            part = raw_request(server.port, b"GET /big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=33554430-33554439\r\n"
                               b"Connection: close\r\n\r\n")
            head, _, body = part.partition(b"\r\n\r\n")
            assert status_of(head) == 206 and body == file_bytes[33554430:33554440], head
            # The same over https://, where the file goes through the TLS layer chunk by chunk.
            for headers, status, expected in [({}, 200, file_bytes), ({"Range": "bytes=-100000"}, 206, file_bytes[-100000:])]:
                connection = http.client.HTTPSConnection("127.0.0.1", server.tls_port, timeout=20,
                                                         context=trusting_context(self.args.certs))
                connection.request("GET", "/big.bin", headers=headers)
                response = connection.getresponse()
                got = response.read()
                connection.close()
                assert response.status == status and got == expected, f"https {headers}: {response.status}, {len(got)} B"
        finally:
            for s in stalled:
                s.close()
            server.stop()
            shutil.rmtree(wwwroot, ignore_errors=True)

    def idle_uploads(self):
        """100 clients each send 900 KiB of a 1 MiB body to a handler that does not read it, then stall: the
        server holds none of it (its RSS grows by less than 20 MiB of the 88 MiB sent; measured 3 MiB, plain
        and under ASan); each gets its answer once the body is complete."""
        server = Server(self.args.server, ["--request-timeout-ms", "20000", "--max-connections", "1000",
                                           "--max-body-bytes", str(1 << 20)])
        uploads = []
        try:
            at_start = server.status_field("VmRSS")
            for _ in range(100):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                s.sendall(b"POST /ignore-body HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n" +
                          b"u" * (900 << 10))
                uploads.append(s)
            time.sleep(1.0)
            rss = server.status_field("VmRSS")
            assert rss - at_start < 20 * 1024 * 1024, (f"RSS {rss / 2**20:.0f} MiB, {at_start / 2**20:.0f} MiB at start, "
                                                       "with 100 stalled uploads of 900 KiB")
            for s in uploads:
                s.sendall(b"u" * (124 << 10) + b"GET /hello?next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            for s in uploads:
                answer = read_to_end(s)
                assert answer.count(b"HTTP/1.1 200") == 2 and answer.endswith(b"hello next"), answer[-80:]
        finally:
            for s in uploads:
                s.close()
            server.stop()

    # ---- shutdown reaches every client ----

    async def shutdown_mid_message(self, threads):
        """SIGTERM while 16 clients (8 over ws://, 8 over wss://) stream a fragmented message to the echo,
        and 2 read a download slowly (their handler waits in send): each gets close 1001."""
        server = Server(self.args.server, ["--threads", str(threads), "--max-message-size", str(1 << 30),
                                           "--max-fragments", str(1 << 20)], certs=self.args.certs)
        try:
            tls = trusting_context(self.args.certs)
            sigterm_sent = asyncio.Event()

            async def fragmenting_client(port, context):
                reader, writer = await open_websocket(port, "/ws/echo-reporting", context, receive_buffer=16384)
                fragment = os.urandom(4096)

                async def send_fragments():
                    # One message of 4 KiB fragments, streamed as fast as the echo takes them, which is as
                    # fast as we read the echo (slowly, below): the message is unfinished when SIGTERM
                    # comes, and the handler is busy sending, its writes waiting on us.
                    opcode = 0x2
                    while not writer.is_closing() and not reader.at_eof():
                        writer.write(client_frame(opcode, fragment, fin=False))
                        opcode = 0x0
                        await writer.drain()
                        await asyncio.sleep(0)  # let the reader run; drain() need not yield

                sender = asyncio.create_task(send_fragments())
                echoed = 0

                async def count(opcode, payload):
                    nonlocal echoed
                    echoed += len(payload)
                    await asyncio.sleep(0.001)

                code = await read_until_close(reader, count)
                sender.cancel()
                await answer_close(reader, writer)
                return code, echoed

            async def slow_download_client(port, context):
                reader, writer = await open_websocket(port, "/ws/download/104857600", context, receive_buffer=8192)

                async def slowly(opcode, payload):
                    await asyncio.sleep(0.001)

                code = await read_until_close(reader, slowly)
                await answer_close(reader, writer)
                return code, None

            clients = [fragmenting_client(server.port, None) for _ in range(8)]
            clients += [fragmenting_client(server.tls_port, tls) for _ in range(8)]
            clients += [slow_download_client(server.port, None), slow_download_client(server.tls_port, tls)]
            tasks = [asyncio.create_task(c) for c in clients]
            await asyncio.sleep(0.4)
            server.process.send_signal(signal.SIGTERM)
            sigterm_sent.set()
            results = await asyncio.wait_for(asyncio.gather(*tasks), 15)
            codes = [code for code, _ in results]
            assert all(echoed for _, echoed in results[:16]), "a client was not mid-message"
            assert codes == [1001] * len(codes), f"close codes {codes} (expected 1001 for all {len(codes)})"
            status = await asyncio.to_thread(server.process.wait, 10)
            assert status == 0, f"exit status {status}"
            # Each handler ended on its own terms: it saw the peer's close, or a send that says why it failed.
            endings = server.lines_with("EVENT echo ended")
            assert len(endings) == 16, endings
            for ending in endings:
                assert ending == "EVENT echo ended normally" or "send after close" in ending and "1001" in ending, ending
            cut_off = server.lines_with("shutdown_timeout passed")
            assert not cut_off, cut_off
        finally:
            server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--make-certs", required=True)
    parser.add_argument("--certs", required=True)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.certs, "server.pem")):
        subprocess.run(["bash", args.make_certs, args.certs], check=True, stdout=subprocess.DEVNULL)
    suite = Suite(args)
    suite.check("descriptor exhaustion", suite.descriptor_exhaustion)
    suite.check("steady slow readers are not timed out, one that stops is", suite.slow_readers)
    suite.check("large static file: stalled downloads hold no file in memory, HEAD reads nothing",
                suite.large_static_file)
    suite.check("idle uploads hold no body in memory", suite.idle_uploads)
    suite.check("shutdown mid-message, two threads", lambda: suite.shutdown_mid_message(2))
    suite.check("shutdown mid-message, one thread", lambda: suite.shutdown_mid_message(1))
    print(f"{suite.passed} passed, {suite.failed} failed")
    sys.exit(1 if suite.failed else 0)


if __name__ == "__main__":
    main()
