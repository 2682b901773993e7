#!/usr/bin/python3
"""duplex-client against another implementation's RFC 8441 server: Debian's python3-hypercorn (0.13, on
h2 and wsproto) serving hypercorn_echo_app.py, started here on 127.0.0.1 (free ports):

    /usr/bin/python3 tests/http2/hypercorn_test.py --client build/examples/duplex-client \\
        --make-certs examples/tls_echo/make-certs.sh --certs DIR

Over h2 (TLS, ALPN h2) and h2c (prior knowledge, which hypercorn recognises from the preface): text and
binary echo over `--http2-only` with the app reporting scope["http_version"] "2", `--http2` (HTTP/2 over
TLS, asked through ALPN; over ws:// it is HTTP/1.1, as duplex-client --help says), the sub-protocol "chat",
permessage-deflate (`--compression`), and a clean close (exit status 0) after each: the client's at the
end of its input, or its answer to the app's. Some h2c runs go through a recording relay, so the wire is
checked too: HTTP/2 frames (hyperframe + hpack), the extended CONNECT's fields, the 200's
sec-websocket-extensions, RSV1 on the compressed messages both ways, and how each side ended the stream
(printed as a "----" line). Against hypercorn with ALPN http/1.1 only, `--http2` falls back to an HTTP/1.1
upgrade (the app reports "1.1") and `--http2-only` fails, exit status non-zero, with an error naming
HTTP/2. (Hypercorn cannot refuse h2c with prior knowledge, so the fallback is tested over TLS only.)

Hypercorn 0.13 drops a WebSocket's stream from its table once it answered the client's close frame, or
once the app returned after its own close, without ending the stream: after a client's close it sends
no END_STREAM (nor RST_STREAM), so the close takes as long as the client waits for the stream's end before
it resets it (duplex-client: 5 s); and any DATA the client sends after that - its END_STREAM, or its
answer to the app's close - raises KeyError in H2Protocol._handle_events, which closes the whole
connection without GOAWAY.

Every wait is bounded; processes started here are stopped by their PID. The last line is
"N passed, M failed"; the exit status is 1 when anything failed, and a missing python3-hypercorn (or h2)
fails the test.
"""

import argparse
import os
import queue
import re
import select
import socket
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "support"))
from checks import check, summary  # noqa: E402
import processes  # noqa: E402
try:
    import hpack
    import hyperframe.frame
    import h2peer
except ImportError as missing:
    print(f"FAIL: python3-h2 is missing ({missing}): apt-get install python3-h2 python3-hypercorn")
    print("0 passed, 1 failed")
    sys.exit(1)

APP = os.path.join(HERE, "hypercorn_echo_app.py")
RUNNING = re.compile(r"Running on (https?)://127\.0\.0\.1:(\d+)")
STARTUP_TIMEOUT = 15.0
CLIENT_TIMEOUT = 20.0


class Hypercorn:
    """hypercorn_echo_app.py in a process of its own; its ports come from hypercorn's "Running on" lines."""

    def __init__(self, args, schemes):
        self.process = subprocess.Popen([sys.executable, APP, *args], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout, self.stderr = [], []
        self.lines = queue.Queue()
        for stream, sink in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True).start()
        self.ports = {}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not all(scheme in self.ports for scheme in schemes):
            left = deadline - time.monotonic()
            if left <= 0 or (self.process.poll() is not None and self.lines.empty()):
                self.stop()
                raise RuntimeError("hypercorn did not start (%s): %s" % (
                    "exit status %s" % self.process.returncode if self.process.poll() is not None else "timeout",
                    " | ".join(self.stderr[-8:])))
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            match = RUNNING.search(line)
            if match:
                self.ports[match.group(1)] = int(match.group(2))

    def _drain(self, stream, sink):
        for line in iter(stream.readline, ""):
            sink.append(line.rstrip("\n"))
            self.lines.put(line)

    def websockets(self):
        """The app's line for each WebSocket so far."""
        return [line for line in self.stdout if line.startswith("websocket ")]

    def stop(self):
        return processes.stop(self.process)


class Relay:
    """A TCP relay to `port` that records each connection's bytes both ways with their times: what the
    client and hypercorn said over h2c."""

    def __init__(self, port):
        self.port_to = port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = []  # {"up": [(t, bytes)], "down": [(t, bytes)], "closed": [(t, who)]}
        self.stopping = False
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            if not select.select([self.listener], [], [], 0.1)[0]:
                continue
            client, _ = self.listener.accept()
            record = {"up": [], "down": [], "closed": []}
            self.connections.append(record)
            threading.Thread(target=self._relay, args=(client, record), daemon=True).start()

    def _relay(self, client, record):
        try:
            server = socket.create_connection(("127.0.0.1", self.port_to), timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, server):  # each chunk goes on at once (Nagle would hold back small ones)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ends = {client: (server, "up", "client"), server: (client, "down", "hypercorn")}
        open_ = [client, server]
        while open_ and not self.stopping:
            for sock in select.select(open_, [], [], 0.1)[0]:
                other, direction, who = ends[sock]
                try:
                    data = sock.recv(1 << 16)
                except OSError:
                    data = b""
                now = time.monotonic() - self.started
                if data:
                    record[direction].append((now, data))
                    try:
                        other.sendall(data)
                    except OSError:
                        pass
                    continue
                record["closed"].append((now, who))
                open_.remove(sock)
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        client.close()
        server.close()

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.listener.close()


def h2_frames(chunks, preface):
    """[(time, hyperframe frame)] of one direction's bytes (the client's start with the preface)."""
    buffer, frames = bytearray(), []
    skip = len(h2peer.PREFACE) if preface else 0
    for at, data in chunks:
        buffer += data
        if skip:
            if len(buffer) < skip:
                continue
            if bytes(buffer[:skip]) != h2peer.PREFACE:
                raise AssertionError("the client's bytes do not start with the HTTP/2 preface: %r" % bytes(buffer[:24]))
            del buffer[:skip]
            skip = 0
        while len(buffer) >= 9:
            frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
            if len(buffer) < 9 + length:
                break
            frame.parse_body(memoryview(bytes(buffer[9:9 + length])))
            del buffer[:9 + length]
            frames.append((at, frame))
    return frames


class Wire:
    """One recorded h2c connection, decoded: per stream its header blocks, the WebSocket frames inside its
    DATA, and the ends (close frames, END_STREAM, RST_STREAM, GOAWAY, TCP), for both directions."""

    def __init__(self, record):
        self.events = []  # (time, "client"/"hypercorn", text): what ended what
        self.headers = {}  # (who, stream) -> [{name: value}]
        self.data = {}  # (who, stream) -> DATA payload not yet parsed into WebSocket frames
        self.ws_frames = {}  # (who, stream) -> [(fin, rsv1, opcode, payload)]
        for direction, who in (("up", "client"), ("down", "hypercorn")):
            decoder = hpack.Decoder()
            block = None
            for at, frame in h2_frames(record[direction], preface=direction == "up"):
                sid = frame.stream_id
                if isinstance(frame, (hyperframe.frame.HeadersFrame, hyperframe.frame.ContinuationFrame)):
                    block = (block or b"") + frame.data
                    if "END_HEADERS" in frame.flags:
                        fields = {str(n, "latin-1") if isinstance(n, bytes) else n:
                                  str(v, "latin-1") if isinstance(v, bytes) else v for n, v in decoder.decode(block)}
                        self.headers.setdefault((who, sid), []).append(fields)
                        block = None
                elif isinstance(frame, hyperframe.frame.DataFrame):
                    self.received(at, who, sid, frame.data)
                elif isinstance(frame, hyperframe.frame.RstStreamFrame):
                    self.events.append((at, who, "RST_STREAM(%d) on stream %d" % (frame.error_code, sid)))
                elif isinstance(frame, hyperframe.frame.GoAwayFrame):
                    self.events.append((at, who, "GOAWAY(%d)" % frame.error_code))
                if "END_STREAM" in getattr(frame, "flags", ()) and sid:
                    self.events.append((at, who, "END_STREAM on stream %d" % sid))
        for at, who in record["closed"]:
            self.events.append((at, who, "closed the TCP connection"))
        self.events.sort()

    def websocket_stream(self):
        for (who, sid), blocks in self.headers.items():
            if who == "client" and blocks[0].get(":protocol") == "websocket":
                return sid
        return None

    def received(self, at, who, sid, data):
        """DATA `who` sent on `sid` at `at`: the WebSocket frames it completes."""
        data = self.data.get((who, sid), b"") + data
        while True:
            frame = h2peer.parse_ws_frame(data, masked=who == "client")
            if frame is None:
                break
            self.ws_frames.setdefault((who, sid), []).append(frame[:4])
            if frame[2] == 8:
                self.events.append((at, who, "close frame on stream %d" % sid))
            data = data[frame[4]:]
        self.data[(who, sid)] = data

    def frames(self, who, sid):
        """(fin, rsv1, opcode, payload) of each WebSocket frame `who` sent on `sid`."""
        return self.ws_frames.get((who, sid), [])

    def story(self):
        """How the stream and the connection ended, in order from the first close frame: close frames,
        END_STREAM, RST_STREAM, GOAWAY, the TCP connection's end."""
        closes = [at for at, _, what in self.events if what.startswith("close frame")]
        since = closes[0] if closes else 0.0
        return "; ".join("%.3f s %s %s" % (at - since, who, what) for at, who, what in self.events
                         if at >= since) or "nothing"


class ClientRun:
    """duplex-client in a process of its own: lines (or bytes) go to its standard input one by one, what it
    prints is read as it comes; `finish` ends the input (the client then closes) and waits, bounded."""

    def __init__(self, binary, url, options):
        self.args = [binary, *options, url]
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
        self.out, self.err = bytearray(), bytearray()
        self.lock = threading.Lock()
        self.readers = [threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                        for stream, sink in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()
        self.status = None
        self.close_started = None

    def _drain(self, stream, sink):
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            with self.lock:
                sink += chunk

    def write(self, data):
        try:
            self.process.stdin.write(data)
            self.process.stdin.flush()
        except OSError:
            pass  # it exited: what it printed says why

    def lines(self):
        with self.lock:
            return bytes(self.out).decode("utf-8", "replace").split("\n")[:-1]

    def wait_output(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.02)
        return predicate()

    def exchange(self, lines, timeout=10.0):
        """Sends the lines, one message each; returns the lines printed once as many came (or the time ran
        out)."""
        for line in lines:
            self.write(line.encode("utf-8") + b"\n")
        self.wait_output(lambda: len(self.lines()) >= len(lines), timeout)
        return self.lines()

    def finish(self, timeout=CLIENT_TIMEOUT, end_input=True):
        """Ends the input (the client then closes) and waits for the exit, or with end_input=False waits for
        the client to exit on its own; the status (None: killed after `timeout`)."""
        self.close_started = time.monotonic()
        if end_input:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            processes.stop(self.process, grace=2.0)  # SIGTERM ends the input too; then SIGKILL
            self.status = None
        self.close_time = time.monotonic() - self.close_started
        for reader in self.readers:
            reader.join(2)
        return self.status

    def stderr(self):
        with self.lock:
            return bytes(self.err).decode("utf-8", "replace").strip()

    def detail(self):
        if self.close_started is None:
            status = "still running" if self.process.poll() is None else "exited %s" % self.process.returncode
        else:
            status = "exit status %s" % ("none: killed %.0f s after the end of the input" % CLIENT_TIMEOUT
                                         if self.status is None else self.status)
        err = self.stderr()
        return "%s; stdout %r; stderr %r" % (status, [line[:60] for line in self.lines()[-6:]],
                                             err[:500] + ("..." if len(err) > 500 else ""))


def finished_cleanly(name, run, server_closes=False):
    """The client's close at the end of its input, or with server_closes the answer to the app's close
    (the client must then exit on its own): exit status 0."""
    status = run.finish(end_input=not server_closes)
    what = "answers hypercorn's close and exits on its own" if server_closes else "clean close at the end of the input"
    check(f"{name}: {what}, exit status 0 ({run.close_time:.2f} s)", status == 0, run.detail())


def echo_checks(name, client, url, options, server):
    """Text echo over HTTP/2 with the app's http_version, then --binary, the sub-protocol and
    permessage-deflate, each a client run of its own that must close cleanly. The client closes first in
    the text and binary runs; in the others the app does ("close?"), since hypercorn 0.13 never ends its
    side of the stream after answering a client's close, which costs each such run the client's
    close_timeout (5 s)."""
    lines = ["hello", "version?", "Grüße ✓ 🚀", "y" * 70000, "last line"]
    expected = ["hello", "2", "Grüße ✓ 🚀", "y" * 70000, "last line"]
    before = len(server.websockets())
    run = ClientRun(client, url, [*options, "--http2-only"])
    got = run.exchange(lines)
    check(f"{name}: --http2-only echoes {len(lines)} text lines; the app reports http_version 2", got == expected,
          f"expected {[e[:40] for e in expected]}, got {[g[:40] for g in got]}; {run.detail()}")
    finished_cleanly(f"{name} --http2-only", run)
    seen = server.websockets()[before:]
    check(f"{name}: the app saw one WebSocket, over HTTP/2", len(seen) == 1 and "http_version=2 " in seen[0],
          f"app lines {seen}")

    # --http2 asks through ALPN: HTTP/2 over TLS; ws:// has no ALPN, so HTTP/1.1 (duplex-client --help)
    version = "2" if url.startswith("wss:") else "1.1"
    run = ClientRun(client, url, [*options, "--http2"])
    got = run.exchange(["version?", "close?"])
    check(f"{name}: --http2 gives HTTP/{version} (the app reports {version})", got == [version], run.detail())
    finished_cleanly(f"{name} --http2", run, server_closes=True)

    run = ClientRun(client, url, [*options, "--http2-only"])
    got = run.exchange(["hello", "close?"])
    check(f"{name}: echo, then the app closes (hypercorn: close frame, END_STREAM)", got == ["hello"], run.detail())
    finished_cleanly(f"{name} --http2-only", run, server_closes=True)

    payload = bytes(range(256)) * 16
    run = ClientRun(client, url, [*options, "--http2-only", "--binary"])
    run.write(payload)
    run.wait_output(lambda: len(run.out) >= len(payload))
    with run.lock:
        echoed = bytes(run.out)
    check(f"{name}: --http2-only --binary echoes {len(payload)} octets", echoed == payload,
          f"got {len(echoed)} octets{', different' if echoed and echoed != payload[:len(echoed)] else ''}; "
          f"{run.detail()}")
    finished_cleanly(f"{name} --binary", run)

    run = ClientRun(client, url, [*options, "--http2-only", "--protocol", "chat", "-v"])
    got = run.exchange(["subprotocol?", "version?", "close?"])
    check(f"{name}: sub-protocol 'chat' negotiated (the app accepted it, the client says so)",
          got == ["chat", "2"] and "sub-protocol chat" in run.stderr(), run.detail())
    finished_cleanly(f"{name} --protocol chat", run, server_closes=True)

    text = "permessage-deflate " * 400
    run = ClientRun(client, url, [*options, "--http2-only", "--compression"])
    got = run.exchange(["extensions?", text, "version?", "close?"])
    check(f"{name}: --compression offers permessage-deflate and the echo of a compressible line is exact",
          len(got) == 3 and "permessage-deflate" in got[0] and got[1:] == [text, "2"], run.detail())
    finished_cleanly(f"{name} --compression", run, server_closes=True)


def wire_checks(name, wire, compressed, server_closes=False):
    """What went over h2c: an extended CONNECT answered with 200, WebSocket frames in DATA, RSV1 as agreed."""
    sid = wire.websocket_stream()
    check(f"{name}: on the wire, an extended CONNECT (:protocol websocket) answered with :status 200",
          sid is not None and wire.headers.get(("hypercorn", sid), [{}])[0].get(":status") == "200",
          f"client header blocks {[(k, v) for k, v in wire.headers.items()]}")
    if sid is None:
        return
    request = wire.headers[("client", sid)][0]
    check(f"{name}: the CONNECT has :scheme http, :authority, sec-websocket-version 13 and no HTTP/1.1 upgrade"
          f" headers", request.get(":scheme") == "http" and request.get(":authority") and
          request.get("sec-websocket-version") == "13" and
          not {"sec-websocket-key", "upgrade", "connection"} & set(request), f"request {request}")
    client_frames, server_frames = wire.frames("client", sid), wire.frames("hypercorn", sid)
    data_frames = [f for f in client_frames + server_frames if f[2] in (1, 2)]
    if compressed:
        response = wire.headers[("hypercorn", sid)][0]
        check(f"{name}: hypercorn accepts permessage-deflate in the 200",
              "permessage-deflate" in response.get("sec-websocket-extensions", ""), f"response {response}")
        check(f"{name}: every message both ways is compressed (RSV1 on its first frame)",
              data_frames and all(f[1] for f in data_frames),
              f"(sender, rsv1, opcode, length): {[('c', f[1], f[2], len(f[3])) for f in client_frames]} "
              f"{[('h', f[1], f[2], len(f[3])) for f in server_frames]}")
    closes = {who: [f[3][:2] for f in frames if f[2] == 8]
              for who, frames in (("client", client_frames), ("hypercorn", server_frames))}
    first, second = ("hypercorn", "client") if server_closes else ("client", "hypercorn")
    check(f"{name}: {first}'s close frame (1000) is on the stream, answered by {second}'s",
          closes[first] == [b"\x03\xe8"] and len(closes[second]) == 1,
          f"client frames {[(f[2], f[3][:8]) for f in client_frames[-3:]]}, "
          f"hypercorn's {[(f[2], f[3][:8]) for f in server_frames[-3:]]}")


RELAYED = (  # label, options, lines sent, lines expected, messages compressed, the app closes
    ("h2c wire", [], ["hello", "version?"], ["hello", "2"], False, False),
    ("h2c wire --compression", ["--compression"], ["permessage-deflate " * 50, "version?"],
     ["permessage-deflate " * 50, "2"], True, False),
    ("h2c wire, the app closes", [], ["hello", "close?"], ["hello"], False, True),
)


def relayed_checks(client, server):
    """h2c runs again through a recording relay, for what went over the wire."""
    for label, options, lines, expected, compressed, server_closes in RELAYED:
        relay = Relay(server.ports["http"])
        try:
            run = ClientRun(client, f"ws://127.0.0.1:{relay.port}/ws", ["--http2-only", *options])
            got = run.exchange(lines)
            check(f"{label}: echo through the relay", got == expected, run.detail())
            finished_cleanly(label, run, server_closes)
            time.sleep(0.3)  # the relay sees the last bytes
        finally:
            relay.close()
        if len(relay.connections) != 1:
            check(f"{label}: one HTTP/2 connection", False, f"{len(relay.connections)} connections")
            continue
        wire = Wire(relay.connections[0])
        wire_checks(label, wire, compressed, server_closes)
        print(f"---- {label}: from the first close frame on: {wire.story()}", flush=True)


def fallback_checks(client, port, ca_file):
    """Hypercorn with ALPN http/1.1 only: --http2 falls back, --http2-only fails naming HTTP/2."""
    url = f"wss://127.0.0.1:{port}/ws"
    run = ClientRun(client, url, ["--ca", ca_file, "--http2"])
    got = run.exchange(["hello", "version?"])
    check("HTTP/1.1-only hypercorn: --http2 falls back to HTTP/1.1 and echoes (the app reports 1.1)",
          got == ["hello", "1.1"], run.detail())
    finished_cleanly("HTTP/1.1-only hypercorn --http2", run)

    run = ClientRun(client, url, ["--ca", ca_file, "--http2-only"])
    got = run.exchange(["hello"], timeout=5.0)
    status = run.finish()
    check("HTTP/1.1-only hypercorn: --http2-only fails with a non-zero exit status and an error naming HTTP/2",
          status not in (0, None) and not got and re.search(r"HTTP/2|h2\b", run.stderr()), run.detail())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", required=True, help="duplex-client")
    parser.add_argument("--make-certs", required=True, help="examples/tls_echo/make-certs.sh")
    parser.add_argument("--certs", required=True, help="directory for the throwaway CA and certificates")
    args = parser.parse_args()
    ca_file, cert_args = h2peer.make_certs(args.make_certs, args.certs)
    tls_args = ["--cert", cert_args[1], "--key", cert_args[3]]
    servers = []
    try:
        try:
            dual = Hypercorn(tls_args, ("https", "http"))
            servers.append(dual)
            check("hypercorn starts: TLS (ALPN h2, http/1.1) and plain ports", True)
        except RuntimeError as e:
            check("hypercorn starts: TLS (ALPN h2, http/1.1) and plain ports", False, str(e))
            return summary()
        for name, url, options in (("h2", f"wss://127.0.0.1:{dual.ports['https']}/ws", ["--ca", ca_file]),
                                   ("h2c", f"ws://127.0.0.1:{dual.ports['http']}/ws", [])):
            try:
                echo_checks(name, args.client, url, options, dual)
            except Exception as e:  # noqa: BLE001 - a bug here must not hide the other checks
                check(f"{name}: the checks ran", False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
        try:
            relayed_checks(args.client, dual)
        except Exception as e:  # noqa: BLE001
            check("h2c wire: the checks ran", False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")
        try:
            http1 = Hypercorn([*tls_args, "--http1-only"], ("https",))
            servers.append(http1)
            fallback_checks(args.client, http1.ports["https"], ca_file)
        except RuntimeError as e:
            check("hypercorn with ALPN http/1.1 only starts", False, str(e))
    finally:
        for server in servers:
            server.stop()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
