"""An HTTP/2 test peer on Debian's python3-h2 (4.1): plain requests, RFC 8441 WebSockets (frames built
and parsed here, masked as a client must), and raw frames (hyperframe + hpack) for what h2 itself would
refuse to send. Also starts and stops the server under test, makes its certificates and checks that it
ended cleanly.

Every wait is bounded: `wait_for` raises TimeoutError past its deadline.
"""

import os
import re
import select
import socket
import ssl
import struct
import subprocess
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
import hyperframe.frame

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check  # noqa: E402

STARTUP_TIMEOUT = 10.0

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Server:
    """The server under test, started with `args`; its URLs are read from its "listening on" lines."""

    def __init__(self, binary, args):
        self.process = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.urls = {}
        deadline = time.monotonic() + STARTUP_TIMEOUT
        wanted = sum(1 for url in args[args.index("--urls") + 1].split(";")) if "--urls" in args else 1
        while len(self.urls) < wanted:
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the server did not start: " + "".join(self.lines))
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the server exited at start: " + "".join(self.lines))
            self.lines.append(line)
            match = re.search(r"listening on (https?)://127\.0\.0\.1:(\d+)", line)
            if match:
                self.urls[match.group(1)] = int(match.group(2))

    def port(self, scheme):
        return self.urls[scheme]

    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM (the graceful shutdown), SIGKILL past `timeout`; returns (exit status or None when it had
        to be killed, everything it printed). Its output is read while it shuts down (communicate), so a
        full pipe cannot stall it."""
        if self.alive():
            self.process.terminate()
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, _ = self.process.communicate()
            return None, "".join(self.lines) + out
        return self.process.returncode, "".join(self.lines) + out

    def check_clean_exit(self, expected_error=lambda line: False, what="logged no error"):
        """Stops the server and checks that it exited 0 and logged no error but those `expected_error`
        accepts (the ones a test provoked on purpose)."""
        status, output = self.stop()
        errors = [line for line in output.splitlines() if ": error:" in line and not expected_error(line)]
        check(f"{os.path.basename(self.process.args[0])} exits 0 and {what}", status == 0 and not errors,
              "\n".join(errors) or output[-800:])

    def kill(self):
        if self.alive():
            self.process.kill()


def make_certs(script, folder):
    """Runs the sample's make-certs.sh into `folder`: (the CA file, the server's --cert/--key arguments)."""
    subprocess.run(["bash", script, folder], check=True, capture_output=True)
    return (os.path.join(folder, "ca.pem"),
            ["--cert", os.path.join(folder, "server.pem"), "--key", os.path.join(folder, "server.key")])


def connect(port, ca_file=None, alpn=("h2",), timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ca_file:
        context = ssl.create_default_context(cafile=ca_file)
        context.set_alpn_protocols(list(alpn))
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def ws_frame(opcode, payload=b"", fin=True, rsv1=False, mask=True):
    """One WebSocket frame as a client sends it (masked)."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    if n == 0:
        return bytes(head) + key
    mask = (key * (n // 4 + 1))[:n]
    data = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return bytes(head) + key + data


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def parse_ws_frame(buffer, masked=False):
    """(fin, rsv1, opcode, payload, consumed) of the server frame at the front of `buffer`, or None; with
    masked=True of a client frame (which must be masked; the payload comes back unmasked)."""
    if len(buffer) < 2:
        return None
    b0, b1 = buffer[0], buffer[1]
    if bool(b1 & 0x80) != masked:
        raise AssertionError("the server masked a frame" if not masked else "the client sent an unmasked frame")
    if b0 & 0x30:
        raise AssertionError("RSV2/RSV3 set by the %s" % ("client" if masked else "server"))
    n, at = b1 & 0x7F, 2
    if n == 126:
        if len(buffer) < 4:
            return None
        n, at = struct.unpack("!H", buffer[2:4])[0], 4
    elif n == 127:
        if len(buffer) < 10:
            return None
        n, at = struct.unpack("!Q", buffer[2:10])[0], 10
    key = bytes(buffer[at:at + 4]) if masked else None
    at += 4 if masked else 0
    if len(buffer) < at + n:
        return None
    payload = bytes(buffer[at:at + n])
    if masked and n:
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, payload, at + n


class StreamState:
    def __init__(self):
        self.status = None
        self.headers = {}
        self.data = bytearray()
        self.ended = False
        self.reset = None  # error code of a RST_STREAM from the server
        self.auto_ack = True


class Connection:
    """What both clients share: the socket, bounded reads and bounded waits. A subclass handles what it read
    in `received(data)`."""

    def __init__(self, port, ca_file=None):
        self.sock = connect(port, ca_file)
        self.closed = False

    def pump(self, timeout):
        """Reads what arrives within `timeout` once and handles it; False when the server closed."""
        if self.closed:
            return False
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable and not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True
        try:
            data = self.sock.recv(1 << 20)
        except OSError:  # ConnectionResetError and ssl.SSLError among them
            data = b""
        if not data:
            self.closed = True
            return False
        self.received_data(data)
        return True

    def wait_for(self, predicate, timeout=10.0, what="the condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for " + what)
            if not self.pump(min(left, 0.2)) and not predicate():
                raise ConnectionError("the server closed the connection while waiting for " + what)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Events:
    """python3-h2 (`self.conn`) reading: `handle(event)` for each event the bytes bring, then `flush()`
    (what h2 answers: SETTINGS and PING acknowledgements, WINDOW_UPDATE)."""

    def received_data(self, data):
        for event in self.conn.receive_data(data):
            self.handle(event)
        self.flush()


class Client(Events, Connection):
    """One HTTP/2 connection through python3-h2. `validate=False` lets h2 send what it would refuse."""

    def __init__(self, port, ca_file=None, validate=True, settings=None):
        super().__init__(port, ca_file)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate, normalize_outbound_headers=validate,
                                           validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        if settings:  # sent in the first SETTINGS frame
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.streams = {}
        self.goaway = None  # error code of the server's GOAWAY
        self.server_settings = {}
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def handle(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.RemoteSettingsChanged):
            for code, setting in event.changed_settings.items():
                self.server_settings[int(code)] = setting.new_value
        elif isinstance(event, h2.events.ResponseReceived) and stream is not None:
            for name, value in event.headers:
                if name == ":status":
                    stream.status = int(value)
                else:
                    stream.headers.setdefault(name, []).append(value)
        elif isinstance(event, h2.events.InformationalResponseReceived) and stream is not None:
            stream.headers.setdefault(":informational", []).append(dict(event.headers).get(":status"))
        elif isinstance(event, h2.events.DataReceived) and stream is not None:
            stream.data += event.data
            if stream.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream.ended = True
        elif isinstance(event, h2.events.StreamReset) and stream is not None:
            stream.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code

    def wait_settings(self, timeout=5.0):
        self.wait_for(lambda: h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL in self.server_settings or
                      h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in self.server_settings,
                      timeout, "the server's SETTINGS")

    def request(self, method, path, headers=(), body=None, authority="127.0.0.1", scheme="http", end_stream=None):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = StreamState()
        fields = [(":method", method), (":scheme", scheme), (":authority", authority), (":path", path), *headers]
        end = body is None if end_stream is None else end_stream
        self.conn.send_headers(sid, fields, end_stream=end)
        if body is not None:
            self.send_data(sid, body, end_stream=True if end_stream is None else end_stream)
        self.flush()
        return sid

    def send_data(self, sid, data, end_stream=False, timeout=10.0):
        """Sends `data` on stream `sid` as the server's windows allow."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while True:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if len(view) == 0 or window > 0:
                chunk = view[:window]
                last = len(chunk) == len(view)
                self.conn.send_data(sid, bytes(chunk), end_stream=end_stream and last)
                self.flush()
                view = view[len(chunk):]
                if last:
                    return
            else:
                if time.monotonic() > deadline:
                    raise TimeoutError("the server's window stayed closed")
                self.pump(0.05)

    def response(self, sid, timeout=10.0):
        stream = self.streams[sid]
        self.wait_for(lambda: stream.ended or stream.reset is not None, timeout, f"the response on stream {sid}")
        return stream

    def open_websocket(self, path="/ws", headers=(), version="13", scheme="http", timeout=10.0):
        """An extended CONNECT; returns the stream id once the response HEADERS came."""
        self.wait_settings()
        fields = [(":protocol", "websocket")]
        if version is not None:
            fields.append(("sec-websocket-version", version))
        sid = self.request("CONNECT", path, [*fields, *headers], scheme=scheme, end_stream=False)
        stream = self.streams[sid]
        self.wait_for(lambda: stream.status is not None or stream.reset is not None, timeout, "the CONNECT response")
        return sid

    def ws_send(self, sid, opcode, payload=b"", fin=True, rsv1=False, end_stream=False):
        self.send_data(sid, ws_frame(opcode, payload, fin, rsv1), end_stream=end_stream)

    def ws_receive(self, sid, timeout=10.0):
        """The next WebSocket frame the server sent on `sid`: (fin, rsv1, opcode, payload)."""
        stream = self.streams[sid]
        frame = [None]

        def ready():
            frame[0] = parse_ws_frame(stream.data)
            return frame[0] is not None

        self.wait_for(ready, timeout, f"a WebSocket frame on stream {sid}")
        fin, rsv1, opcode, payload, consumed = frame[0]
        del stream.data[:consumed]
        return fin, rsv1, opcode, payload

    def ws_message(self, sid, timeout=10.0):
        """A whole data message, skipping pings and pongs (keep-alives) and answering nothing: (opcode,
        payload, rsv1 of its first frame)."""
        fin, rsv1, opcode, payload = self.ws_receive(sid, timeout)
        while opcode in (OP_PING, OP_PONG):
            fin, rsv1, opcode, payload = self.ws_receive(sid, timeout)
        first_opcode, first_rsv1, parts = opcode, rsv1, [payload]
        while not fin:
            fin, _, opcode, payload = self.ws_receive(sid, timeout)
            if opcode in (OP_PING, OP_PONG):
                fin = False
                continue
            if opcode != OP_CONT:
                raise AssertionError(f"opcode {opcode} inside a fragmented message")
            parts.append(payload)
        return first_opcode, b"".join(parts), first_rsv1

    def reset(self, sid, code=8):  # 8: CANCEL
        """RST_STREAM, also on a stream already closed at both ends (Chromium's after a clean close), which
        h2 will not send: then written by hand."""
        try:
            self.conn.reset_stream(sid, error_code=code)
            self.flush()
        except h2.exceptions.StreamClosedError:
            self.sock.sendall(hyperframe.frame.RstStreamFrame(sid, error_code=code).serialize())

class RawClient(Connection):
    """HTTP/2 by hand, frame by frame (hyperframe + hpack), for what a well-behaved client never sends."""

    def __init__(self, port, ca_file=None):
        super().__init__(port, ca_file)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buffer = bytearray()
        self.frames = []
        self.sock.sendall(PREFACE + hyperframe.frame.SettingsFrame(0).serialize())

    def send(self, *frames):
        try:
            self.sock.sendall(b"".join(f.serialize() for f in frames))
        except OSError:
            self.closed = True

    def headers_block(self, fields):
        return self.encoder.encode(fields)

    def data(self, sid, payload, end_stream=False):
        frame = hyperframe.frame.DataFrame(sid, data=payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame

    def received(self, sid):
        """The payload of every DATA frame on `sid` so far, and whether one carried END_STREAM."""
        frames = self.of_type(hyperframe.frame.DataFrame, sid)
        return b"".join(f.data for f in frames), any("END_STREAM" in f.flags for f in frames)

    def headers(self, sid, fields, end_stream=True, end_headers=True):
        frame = hyperframe.frame.HeadersFrame(sid)
        frame.data = self.headers_block(fields)
        if end_stream:
            frame.flags.add("END_STREAM")
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame

    def received_data(self, data):
        self.buffer += data
        while len(self.buffer) >= 9:
            frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self.buffer[9:9 + length]))
            del self.buffer[:9 + length]
            if isinstance(frame, hyperframe.frame.SettingsFrame) and "ACK" not in frame.flags:
                self.send(hyperframe.frame.SettingsFrame(0, flags=["ACK"]))
            if isinstance(frame, (hyperframe.frame.HeadersFrame,)):
                frame.decoded = self.decoder.decode(frame.data)
            self.frames.append(frame)

    def of_type(self, kind, sid=None):
        return [f for f in self.frames if isinstance(f, kind) and (sid is None or f.stream_id == sid)]

    def goaway(self):
        frames = self.of_type(hyperframe.frame.GoAwayFrame)
        return frames[0] if frames else None

    def wait_for_goaway(self, timeout=5.0):
        """Waits (bounded) for the server to end the connection; its GOAWAY frame, or None when none came
        (the connection closed without one, or the wait ran out)."""
        try:
            self.wait_for(lambda: self.goaway() is not None or self.closed, timeout, "GOAWAY")
        except (TimeoutError, ConnectionError):
            pass
        return self.goaway()

    def status(self, sid):
        for f in self.of_type(hyperframe.frame.HeadersFrame, sid):
            for name, value in f.decoded:
                if name in (":status", b":status"):
                    return int(value)
        return None

    def rst(self, sid):
        frames = self.of_type(hyperframe.frame.RstStreamFrame, sid)
        return frames[0].error_code if frames else None
