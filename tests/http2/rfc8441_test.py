#!/usr/bin/python3
"""WebSockets over HTTP/2 (RFC 8441): Debian's python3-h2 as the client, over h2c (prior knowledge) and
h2 (TLS, ALPN), against duplex-echo and app-test-server, started here:

    /usr/bin/python3 rfc8441_test.py --echo build/examples/duplex-echo --app-server build/tests/app-test-server \
        --make-certs examples/tls_echo/make-certs.sh --certs DIR

Echo of sizes across DATA frame boundaries, fragments with an interleaved ping, permessage-deflate,
several WebSockets and requests on one connection, the close handshake both ways (END_STREAM on the
last DATA, the peer's RST_STREAM(CANCEL) after it as Chromium sends it), RST_STREAM mid-message
(connection_closed_prematurely on the handler's side), flow control per stream, version 8 (426),
CONNECT without :protocol and with another protocol (501), the h2c preface cut at every place, and the
graceful shutdown (GOAWAY, 1001), also with a peer that ignores it (cut off after shutdown_timeout).
Every wait is bounded; the last line is "N passed, M failed", and the exit status is 1 when anything
failed, or when a peer (python3-h2) is missing.
"""

import argparse
import os
import select
import socket
import subprocess
import sys
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402
try:
    import h2.errors
    import h2.settings
    import h2peer
    from h2peer import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT
except ImportError as missing:
    print(f"FAIL: the HTTP/2 peer is missing ({missing}): apt-get install python3-h2")
    print("0 passed, 1 failed")
    sys.exit(1)

def case(function):
    """Runs a case; an exception is its failure."""
    def run(*args):
        name = function.__name__.replace("_", " ") + " " + " ".join(str(a) for a in args if isinstance(a, str))
        try:
            function(*args)
        except Exception as e:  # noqa: BLE001 - any escape is a failed case
            check(name.strip(), False, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    return run


class Target:
    """Where a case connects: h2c (cleartext) or h2 (TLS) to one server."""

    def __init__(self, server, scheme, ca_file):
        self.server, self.scheme, self.ca_file = server, scheme, ca_file
        self.name = "h2c" if scheme == "http" else "h2"

    def client(self, **kwargs):
        return h2peer.Client(self.server.port(self.scheme), self.ca_file if self.scheme == "https" else None, **kwargs)


def echo_round(client, sid, opcode, payload):
    client.ws_send(sid, opcode, payload)
    got_opcode, got, _ = client.ws_message(sid, timeout=20)
    return got_opcode == opcode and got == payload, f"sent {len(payload)} B opcode {opcode}, got {len(got)} B opcode {got_opcode}"


def close_cleanly(client, sid, code=1000, reason=b"bye"):
    """Client-initiated close as Chromium does it: Close with END_STREAM, then RST_STREAM(CANCEL)."""
    client.ws_send(sid, OP_CLOSE, h2peer.close_payload(code, reason), end_stream=True)
    fin, _, opcode, payload = client.ws_receive(sid)
    stream = client.streams[sid]
    client.wait_for(lambda: stream.ended or stream.reset is not None, 5, "the server's END_STREAM")
    client.reset(sid, h2.errors.ErrorCodes.CANCEL)
    return opcode, payload, stream


@case
def settings_advertise_connect_protocol(target):
    client = target.client()
    client.wait_settings()
    value = client.server_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
    check(f"{target.name}: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1", value == 1, f"got {value}")
    client.close()


@case
def echo_sizes(target):
    client = target.client()
    sid = client.open_websocket(scheme=target.scheme)
    stream = client.streams[sid]
    check(f"{target.name}: extended CONNECT answered 200 without Sec-WebSocket-Accept",
          stream.status == 200 and "sec-websocket-accept" not in stream.headers, f"{stream.status} {stream.headers}")
    for size in (0, 1, 125, 126, 16383, 16384, 65536, 1024 * 1024 + 3):
        for opcode in (OP_TEXT, OP_BINARY):
            payload = (b"x" * size) if opcode == OP_TEXT else os.urandom(size)
            ok, detail = echo_round(client, sid, opcode, payload)
            check(f"{target.name}: echo {size} B {'text' if opcode == OP_TEXT else 'binary'}", ok, detail)
    opcode, payload, end = close_cleanly(client, sid)
    check(f"{target.name}: close handshake, the server's Close then END_STREAM",
          opcode == OP_CLOSE and payload[:2] == b"\x03\xe8" and end.ended and end.reset is None,
          f"opcode {opcode} payload {payload!r} ended {end.ended} reset {end.reset}")
    # The connection goes on after the RST_STREAM(CANCEL): a new WebSocket on it echoes.
    sid2 = client.open_websocket(scheme=target.scheme)
    ok, detail = echo_round(client, sid2, OP_TEXT, b"after a cancelled stream")
    check(f"{target.name}: the connection serves a new WebSocket after RST_STREAM(CANCEL)", ok, detail)
    check(f"{target.name}: no GOAWAY for a clean close and CANCEL", client.goaway is None, f"GOAWAY {client.goaway}")
    client.close()


@case
def fragments_and_ping(target):
    client = target.client()
    sid = client.open_websocket(scheme=target.scheme)
    client.ws_send(sid, OP_TEXT, b"frag", fin=False)
    client.ws_send(sid, OP_PING, b"in between")
    client.ws_send(sid, OP_CONT, b"ment", fin=False)
    client.ws_send(sid, OP_CONT, b"ed", fin=True)
    # The echo hands back pieces with their end-of-message flags; the pong comes among them.
    frames, pong = [], None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fin, _, opcode, payload = client.ws_receive(sid)
        if opcode == OP_PONG:
            pong = payload
            continue
        frames.append((opcode, payload))
        if fin:
            break
    text = b"".join(p for _, p in frames)
    check(f"{target.name}: a fragmented text message comes back whole, first frame text",
          text == b"fragmented" and frames[0][0] == OP_TEXT and all(o == OP_CONT for o, _ in frames[1:]), f"{frames}")
    check(f"{target.name}: a ping between fragments is answered", pong == b"in between", f"pong {pong!r}")
    close_cleanly(client, sid)
    client.close()


@case
def close_without_end_stream(target, app):
    """The client's Close without END_STREAM: the server answers Close and ends its side with END_STREAM
    (it closes first, RFC 6455 §7.1.1), the client ends its side, and the handler saw a normal close."""
    client = h2peer.Client(app.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    before = len(read_events(app))
    sid = client.open_websocket("/ws/echo-reporting", scheme=target.scheme)
    client.ws_send(sid, OP_CLOSE, h2peer.close_payload(4000, b"client"), end_stream=False)
    fin, _, opcode, payload = client.ws_receive(sid)
    stream = client.streams[sid]
    client.wait_for(lambda: stream.ended or stream.reset is not None, 5, "END_STREAM after the server's Close")
    check(f"{target.name}: the server answers Close 4000 and ends its side with END_STREAM",
          opcode == OP_CLOSE and payload[:2] == (4000).to_bytes(2, "big") and stream.ended and stream.reset is None,
          f"opcode {opcode} {payload!r} ended {stream.ended} reset {stream.reset}")
    client.conn.end_stream(sid)
    client.flush()
    deadline = time.monotonic() + 5
    ended = []
    while time.monotonic() < deadline and not ended:
        ended = [l for l in read_events(app)[before:] if "echo ended" in l]
        time.sleep(0.05)
    check(f"{target.name}: the handler saw a normal close", ended and "echo ended normally" in ended[0], f"{ended}")
    client.close()


def read_events(server):
    """Lines the server printed so far (non-blocking)."""
    while True:
        readable, _, _ = select.select([server.process.stdout], [], [], 0)
        if not readable:
            break
        line = server.process.stdout.readline()
        if not line:
            break
        server.lines.append(line)
    return server.lines


@case
def reset_mid_message(target, app):
    client = h2peer.Client(app.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    before = len(read_events(app))
    sid = client.open_websocket("/ws/echo-reporting", scheme=target.scheme)
    client.ws_send(sid, OP_TEXT, b"half a mess", fin=False)
    client.ws_receive(sid)  # the echo has taken the first piece
    client.reset(sid, h2.errors.ErrorCodes.CANCEL)
    deadline = time.monotonic() + 5
    ended = []
    while time.monotonic() < deadline and not ended:
        ended = [l for l in read_events(app)[before:] if "echo ended" in l]
        time.sleep(0.05)
    check(f"{target.name}: RST_STREAM mid-message ends the handler's receive with connection_closed_prematurely",
          ended and "without completing the close handshake" in ended[0], f"{ended}")
    sid2 = client.open_websocket("/ws", scheme=target.scheme)
    ok, detail = echo_round(client, sid2, OP_BINARY, b"still here")
    check(f"{target.name}: the other streams go on after a reset", ok, detail)
    client.close()


@case
def many_websockets_and_requests_on_one_connection(target):
    client = target.client()
    sids = [client.open_websocket(scheme=target.scheme) for _ in range(8)]
    page = client.request("GET", "/", scheme=target.scheme)
    for round_ in range(3):
        for i, sid in enumerate(sids):
            client.ws_send(sid, OP_TEXT, f"socket {i} round {round_}".encode())
    ok = True
    for round_ in range(3):
        for i, sid in enumerate(sids):
            _, got, _ = client.ws_message(sid)
            ok = ok and got == f"socket {i} round {round_}".encode()
    check(f"{target.name}: 8 WebSockets on one connection echo in order", ok)
    response = client.response(page)
    check(f"{target.name}: a page request beside them gets its page",
          response.status == 200 and b"WebSocket" in response.data, f"{response.status} {len(response.data)} B")
    for sid in sids:
        close_cleanly(client, sid)
    client.close()


@case
def compression(target, compressing_echo):
    client = h2peer.Client(compressing_echo.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    sid = client.open_websocket(headers=[("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")],
                                scheme=target.scheme)
    agreed = client.streams[sid].headers.get("sec-websocket-extensions", [""])[0]
    check(f"{target.name}: permessage-deflate negotiated in the 200", agreed.startswith("permessage-deflate"), agreed)
    message = b"compress me, compress me, compress me " * 100
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    client.ws_send(sid, OP_TEXT, body[:-4], rsv1=True)
    opcode, got, rsv1 = client.ws_message(sid)
    inflated = zlib.decompressobj(wbits=-15).decompress(got + b"\x00\x00\xff\xff") if rsv1 else got
    check(f"{target.name}: a compressed message echoes compressed", rsv1 and inflated == message,
          f"rsv1 {rsv1}, {len(inflated)} B")
    close_cleanly(client, sid)
    client.close()


@case
def version_8_and_bad_connects(target):
    client = target.client(validate=False)
    sid = client.open_websocket(version="8", scheme=target.scheme)
    stream = client.response(sid)
    check(f"{target.name}: Sec-WebSocket-Version 8 gets 426 naming 13",
          stream.status == 426 and stream.headers.get("sec-websocket-version") == ["13"],
          f"{stream.status} {stream.headers}")
    sid = client.request("CONNECT", "/ws", [(":protocol", "not-websocket"), ("sec-websocket-version", "13")],
                         scheme=target.scheme, end_stream=False)
    stream = client.response(sid)
    check(f"{target.name}: CONNECT for another :protocol gets 501, never a tunnel", stream.status == 501,
          f"{stream.status} reset {stream.reset}")
    client.close()
    # A classic CONNECT (no :protocol, no :scheme or :path), which python3-h2 will not build: by hand.
    raw = h2peer.RawClient(target.server.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    raw.send(raw.headers(1, [(":method", "CONNECT"), (":authority", "127.0.0.1:443")], end_stream=False))
    raw.wait_for(lambda: raw.status(1) is not None or raw.rst(1) is not None, 5, "an answer to CONNECT")
    check(f"{target.name}: CONNECT without :protocol gets 501, never a tunnel", raw.status(1) == 501,
          f"status {raw.status(1)} rst {raw.rst(1)}")
    # :protocol without CONNECT is malformed (RFC 8441 §4): RST_STREAM(PROTOCOL_ERROR) from nghttp2.
    raw.send(raw.headers(3, [(":method", "GET"), (":scheme", target.scheme), (":authority", "127.0.0.1"),
                             (":path", "/ws"), (":protocol", "websocket")]))
    raw.wait_for(lambda: raw.status(3) is not None or raw.rst(3) is not None, 5, "an answer to GET with :protocol")
    check(f"{target.name}: :protocol on a GET is a stream error PROTOCOL_ERROR", raw.rst(3) == 1,
          f"status {raw.status(3)} rst {raw.rst(3)}")
    raw.close()


@case
def flow_control_per_stream(target, app):
    """Handlers that do not receive stop their own peers at the stream window (64 KiB here), and hold
    more together than the connection's window (128 KiB): another stream still echoes."""
    client = h2peer.Client(app.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    stalled = [client.open_websocket("/ws/stall", scheme=target.scheme) for _ in range(3)]
    windows = [client.conn.local_flow_control_window(sid) for sid in stalled]
    messages = [h2peer.ws_frame(OP_BINARY, bytes([65 + i]) * windows[i]) for i in range(3)]
    for sid, window, message in zip(stalled, windows, messages):
        client.send_data(sid, message[:window], timeout=5)
    blocked = all(client.conn.local_flow_control_window(sid) == 0 for sid in stalled)
    client.pump(0.3)
    still_blocked = all(client.conn.local_flow_control_window(sid) == 0 for sid in stalled)
    other = client.open_websocket("/ws", scheme=target.scheme)
    ok, detail = echo_round(client, other, OP_BINARY, os.urandom(100_000))
    check(f"{target.name}: 3 stalled handlers' streams stay at window 0 ({sum(windows)} B in all, past the "
          f"connection's window) while another stream echoes", blocked and still_blocked and ok,
          f"windows {windows} blocked {blocked} {still_blocked}; {detail}")
    # Once the handlers receive, the windows reopen (WINDOW_UPDATE) and the rest of the messages go.
    for sid, window, message in zip(stalled, windows, messages):
        client.send_data(sid, message[window:], timeout=10)
    got = [client.ws_message(sid, timeout=10)[1] for sid in stalled]
    check(f"{target.name}: the windows reopen as the handlers receive",
          all(g == bytes([65 + i]) * windows[i] for i, g in enumerate(got)), f"{[len(g) for g in got]}")
    client.close()


def open_raw_websocket(server, target, path):
    """A raw-frame connection to `server` whose stream 1 is an accepted extended CONNECT for `path`."""
    raw = h2peer.RawClient(server.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    raw.send(raw.headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", target.scheme),
                             (":authority", "127.0.0.1"), (":path", path), ("sec-websocket-version", "13")],
                         end_stream=False))
    raw.wait_for(lambda: raw.status(1) is not None, 5, "the 200")
    return raw


@case
def close_then_cancel_at_once(target, binary, extra_args):
    """Chromium's answer to a server's Close: its Close with END_STREAM and RST_STREAM(CANCEL) in one go.
    The handler must see the Close (a normal end), not the reset."""
    server = h2peer.Server(binary, ["--urls", f"{target.scheme}://127.0.0.1:0", *extra_args])
    try:
        raw = open_raw_websocket(server, target, "/ws/echo-reporting")
        server.process.send_signal(2)  # the server's Close 1001 comes with the graceful shutdown
        raw.wait_for(lambda: h2peer.parse_ws_frame(raw.received(1)[0]) is not None, 5, "the server's Close")
        raw.send(raw.data(1, h2peer.ws_frame(OP_CLOSE, (1001).to_bytes(2, "big")), end_stream=True),
                 h2peer.hyperframe.frame.RstStreamFrame(1, error_code=h2.errors.ErrorCodes.CANCEL))
        status, output = server.stop(timeout=10)
        check(f"{target.name}: Close + END_STREAM + RST_STREAM(CANCEL) at once: the handler saw the Close",
              status == 0 and "echo ended normally" in output and "prematurely" not in output,
              f"{status}: {output[-600:]}")
        raw.close()
    finally:
        server.kill()


@case
def peer_that_never_opens_its_window(target, app):
    """A client whose streams' window is 0 takes nothing: the handler's send waits, fails with send_timeout
    (1 s here) and the stream is reset once close_timeout has passed; other connections are served."""
    client = h2peer.Client(app.port(target.scheme), target.ca_file if target.scheme == "https" else None,
                           settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    before = len(read_events(app))
    sid = client.open_websocket("/ws/download/200000", scheme=target.scheme)
    other = h2peer.Client(app.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    other_sid = other.open_websocket("/ws", scheme=target.scheme)
    ok, detail = echo_round(other, other_sid, OP_TEXT, b"served meanwhile")
    check(f"{target.name}: another connection is served while one never opens its window", ok, detail)
    deadline = time.monotonic() + 5
    failed_with = []
    while time.monotonic() < deadline and not failed_with:
        failed_with = [l for l in read_events(app)[before:] if "download" in l]
        time.sleep(0.05)
    check(f"{target.name}: the handler's send fails with send_timeout", failed_with and "send_timeout" in failed_with[0],
          f"{failed_with}")
    stream = client.streams[sid]
    client.wait_for(lambda: stream.reset is not None, 10, "the stream's reset")
    check(f"{target.name}: the stream is reset (CANCEL) once close_timeout has passed",
          stream.reset == h2.errors.ErrorCodes.CANCEL, f"reset {stream.reset}")
    client.close()
    other.close()


@case
def idle_connection_goes_away(target, app):
    """app-test-server's idle_timeout is 3 s: an HTTP/2 connection with no stream gets GOAWAY and a close."""
    raw = h2peer.RawClient(app.port(target.scheme), target.ca_file if target.scheme == "https" else None)
    raw.send(raw.headers(1, [(":method", "GET"), (":scheme", target.scheme), (":authority", "127.0.0.1"),
                             (":path", "/hello")]))
    raw.wait_for(lambda: raw.status(1) is not None, 5, "the answer")
    started = time.monotonic()
    try:
        raw.wait_for(lambda: raw.closed, 8, "the close")
    except TimeoutError:
        pass
    waited = time.monotonic() - started
    goaway = raw.goaway()
    check(f"{target.name}: idle past idle_timeout: GOAWAY(NO_ERROR, last stream 1), then the close",
          raw.closed and goaway is not None and goaway.error_code == 0 and goaway.last_stream_id == 1 and
          2.5 < waited < 6, f"closed {raw.closed} goaway {goaway} after {waited:.1f} s")
    raw.close()


@case
def message_driven_api(target, binary, extra_args):
    """map_websocket sessions over HTTP/2: duplex-echo --api handlers echoes whole messages."""
    server = h2peer.Server(binary, ["--urls", f"{target.scheme}://127.0.0.1:0", "--api", "handlers", *extra_args])
    try:
        client = h2peer.Client(server.port(target.scheme), target.ca_file if target.scheme == "https" else None)
        sid = client.open_websocket(scheme=target.scheme)
        ok = client.streams[sid].status == 200
        for size in (0, 1000, 70000):
            good, _ = echo_round(client, sid, OP_BINARY, os.urandom(size))
            ok = ok and good
        opcode, payload, end = close_cleanly(client, sid)
        check(f"{target.name}: --api handlers (map_websocket) accepts the extended CONNECT, echoes and closes",
              ok and opcode == OP_CLOSE and end.ended, f"ok {ok} opcode {opcode} ended {end.ended}")
        client.close()
        server.check_clean_exit(what=f"logged no error, --api handlers over {target.name}")
    finally:
        server.kill()


@case
def graceful_shutdown(target, binary, extra_args):
    """SIGINT: GOAWAY(NO_ERROR) and Close 1001 to the open WebSocket; once the client has answered the
    close, the stream ends with END_STREAM and the server exits 0. By hand (python3-h2 treats GOAWAY as
    the connection's end, refusing the frames of the streams that may still finish)."""
    server = h2peer.Server(binary, ["--urls", f"{target.scheme}://127.0.0.1:0", *extra_args])
    try:
        raw = open_raw_websocket(server, target, "/ws")
        raw.send(raw.data(1, h2peer.ws_frame(OP_TEXT, b"before")))
        raw.wait_for(lambda: len(raw.received(1)[0]) >= 8, 5, "the echo")
        echoed = raw.received(1)[0][:8]
        server.process.send_signal(2)  # SIGINT: the graceful shutdown
        raw.wait_for(lambda: raw.goaway() is not None and len(raw.received(1)[0]) >= 8 + 4, 5, "GOAWAY and Close")
        close = h2peer.parse_ws_frame(raw.received(1)[0][8:])
        check(f"{target.name}: shutdown sends GOAWAY(NO_ERROR) and Close 1001 to the WebSocket",
              raw.status(1) == 200 and echoed == b"\x81\x06before" and raw.goaway().error_code == 0 and
              close is not None and close[2] == OP_CLOSE and close[3][:2] == (1001).to_bytes(2, "big"),
              f"goaway {raw.goaway()} close {close}")
        raw.send(raw.data(1, h2peer.ws_frame(OP_CLOSE, (1001).to_bytes(2, "big")), end_stream=True))
        raw.wait_for(lambda: raw.received(1)[1] or raw.rst(1) is not None, 5, "the stream's end")
        check(f"{target.name}: after the close handshake the stream ends with END_STREAM, not a reset",
              raw.received(1)[1] and raw.rst(1) is None, f"rst {raw.rst(1)}")
        status, output = server.stop(timeout=10)
        check(f"{target.name}: the server exits 0 once the close handshake is done", status == 0,
              f"{status}: {output[-500:]}")
        raw.close()
    finally:
        server.kill()


@case
def shutdown_with_a_peer_that_ignores_it(target, binary, extra_args):
    """SIGINT with a client that ignores the GOAWAY and the Close 1001 and keeps its stream open: the app
    waits shutdown_timeout (1 s here) for it, then ends the connection and exits 0, saying so in its log."""
    server = h2peer.Server(binary, ["--urls", f"{target.scheme}://127.0.0.1:0", "--shutdown-timeout-ms", "1000",
                                    *extra_args])
    try:
        raw = open_raw_websocket(server, target, "/ws")
        server.process.send_signal(2)
        raw.wait_for(lambda: raw.goaway() is not None and h2peer.parse_ws_frame(raw.received(1)[0]) is not None, 5,
                     "GOAWAY and the Close")
        # Nothing answered: the connection must be ended by the server, the process must exit.
        try:
            raw.wait_for(lambda: raw.closed, 10, "the server ending the connection")
        except (TimeoutError, ConnectionError):
            pass
        try:  # the app exits by itself once shutdown_timeout has passed; a signal now would race its exit
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        status, output = server.stop(timeout=10)
        check(f"{target.name}: a peer ignoring GOAWAY and Close 1001 is cut off after shutdown_timeout; exit 0",
              raw.closed and status == 0 and "shutdown_timeout passed with 1 connection still open" in output,
              f"closed {raw.closed}, exit {status}: {output[-500:]}")
        raw.close()
    finally:
        server.kill()


@case
def h2c_preface_in_pieces(server):
    """TCP may deliver the h2c preface in any pieces: each cut of it (and of the SETTINGS after it) must
    still be HTTP/2, never an HTTP/1.1 answer to its first line (once 505 for a cut inside that line)."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + empty SETTINGS
    wrong = []
    for cut in range(1, len(preface)):
        with socket.create_connection(("127.0.0.1", server.port("http")), timeout=5) as s:
            s.sendall(preface[:cut])
            time.sleep(0.02)  # so that the server reads the first piece alone
            s.sendall(preface[cut:])
            answer = b""
            while len(answer) < 9:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            if len(answer) < 9 or answer.startswith(b"HTTP/") or answer[3] != 4:  # a SETTINGS frame first
                wrong.append((cut, answer[:40]))
    check("h2c: the preface cut at each of its 32 places still opens HTTP/2 (the server's SETTINGS)", not wrong,
          f"{len(wrong)} cuts answered otherwise, e.g. {wrong[:3]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    parser.add_argument("--app-server", required=True)
    parser.add_argument("--make-certs", required=True)
    parser.add_argument("--certs", required=True)
    args = parser.parse_args()
    ca, tls = h2peer.make_certs(args.make_certs, args.certs)
    urls = ["--urls", "http://127.0.0.1:0;https://127.0.0.1:0"]
    servers = []
    try:
        echo = h2peer.Server(args.echo, [*urls, "--h2c", *tls])
        compressing = h2peer.Server(args.echo, [*urls, "--h2c", "--compression", *tls])
        app = h2peer.Server(args.app_server, [*urls, "--h2c", "--max-message-size", str(4 << 20),
                                              "--h2-stream-window", str(64 << 10), "--h2-connection-window",
                                              str(128 << 10), "--send-timeout-ms", "1000", *tls])
        servers = [echo, compressing, app]
        for scheme in ("http", "https"):
            target = Target(echo, scheme, ca)
            settings_advertise_connect_protocol(target)
            if scheme == "http":
                h2c_preface_in_pieces(echo)
            echo_sizes(target)
            fragments_and_ping(target)
            many_websockets_and_requests_on_one_connection(target)
            version_8_and_bad_connects(target)
            compression(target, compressing)
            close_without_end_stream(target, app)
            reset_mid_message(target, app)
            flow_control_per_stream(target, app)
            idle_connection_goes_away(target, app)
            peer_that_never_opens_its_window(target, app)
            close_then_cancel_at_once(target, args.app_server, ["--h2c", *tls])
            message_driven_api(target, args.echo, ["--h2c", *tls])
            graceful_shutdown(target, args.echo, ["--h2c", *tls])
            shutdown_with_a_peer_that_ignores_it(target, args.app_server, ["--h2c", *tls])
        for server in servers:
            # The only errors logged: the handshakes refused on purpose (version 8), as over HTTP/1.1.
            server.check_clean_exit(lambda line: "Sec-WebSocket-Version" in line,
                                    "logged no error but the refused version-8 handshakes")
    finally:
        for server in servers:
            server.kill()
    sys.exit(summary())


if __name__ == "__main__":
    main()
