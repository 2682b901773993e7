"""A raw, hand-driven WebSocket peer for the conformance suites (standard library only).

It speaks RFC 6455 at the byte level so that the cases can send what no well-behaved library would:
reserved bits, reserved opcodes, fragmented control frames, invalid UTF-8, frames cut into chops.
Everything the peer under test sends back is checked just as strictly (masking direction, RSV bits,
opcodes, fragmentation order, control-frame rules, UTF-8 of text messages and close reasons, close
codes, frames after a close) and each breach is recorded as a violation that fails the case.

With permessage-deflate agreed (the suite sets `Connection.deflate` to a pmdeflate.Codec), RSV1 is
allowed on the first frame of a message, whose payload is then decompressed under the agreed parameters
(see pmdeflate.py); RSV1 anywhere else, RSV2/RSV3, and data that does not decompress are violations.

One `Connection` works in either role:
  role "client": what we send is masked, what we receive must not be (server suite);
  role "server": what we send is unmasked, what we receive must be masked (client suite).

Sending and receiving are interleaved by one select() loop, so a multi-megabyte send never deadlocks
against a peer that echoes while it reads.
"""

import base64
import hashlib
import os
import select
import ssl
import socket
import struct
import time

from pmdeflate import DeflateError

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OPCODE_NAMES = {0: "cont", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Codes an endpoint may put in a close frame (RFC 6455 7.4.1 and the IANA registry: 1012-1014 were
# registered later); 3000-4999 are for libraries, frameworks and applications.
SENDABLE_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def is_sendable_close_code(code):
    return code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999


def is_utf8(data):
    try:
        bytes(data).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def apply_mask(data, key):
    """XOR data with the 4-byte key; one big-integer operation, fast enough for 16 MiB payloads."""
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(n, "little")


def repeat_to(pattern, length):
    return (pattern * (length // len(pattern) + 1))[:length]


def encode_header(opcode, length, fin=True, rsv=0, mask_key=None):
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    mask_bit = 0x80 if mask_key is not None else 0
    if length <= 125:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask_key is not None:
        header += mask_key
    return header


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    """A complete frame; with mask=True a fresh random masking key is used (RFC 6455 5.3)."""
    payload = bytes(payload)
    key = os.urandom(4) if mask else None
    header = encode_header(opcode, len(payload), fin, rsv, key)
    return header + (apply_mask(payload, key) if mask else payload)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def accept_key(key):
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest()).decode("ascii")


def preview(data, limit=24):
    data = bytes(data)
    if len(data) <= limit:
        return repr(data)
    return "%r...(%d bytes)" % (data[:limit], len(data))


def describe_event(event):
    kind = event[0]
    if kind == "message":
        return "%s message %s" % (OPCODE_NAMES.get(event[1], event[1]), preview(event[2]))
    return "%s %s" % (kind, preview(event[1]))


def describe_events(events):
    if not events:
        return "nothing"
    if len(events) > 6:
        shown = [describe_event(e) for e in events[:3]] + ["..."] + [describe_event(e) for e in events[-2:]]
        return "%d events [%s]" % (len(events), ", ".join(shown))
    return "[" + ", ".join(describe_event(e) for e in events) + "]"


def describe_close(close):
    code, reason, _raw = close
    if code is None:
        return "an empty close frame"
    return "close %d%s" % (code, (" reason %s" % preview(reason)) if reason else "")


def text(payload):
    return ("message", OP_TEXT, bytes(payload))


def binary(payload):
    return ("message", OP_BINARY, bytes(payload))


def pong(payload=b""):
    return ("pong", bytes(payload))


# --------------------------------------------------------------------------------------------------
# wss:// — the same raw connections over TLS (server_suite.py --tls)

# When set (use_tls), connect() runs a TLS handshake trusting this context's CA, and every read and write
# goes through it: the cases then exercise the server's TLS layer under the WebSocket layer.
TLS_CONTEXT = None


def use_tls(ca_file):
    global TLS_CONTEXT
    TLS_CONTEXT = ssl.create_default_context(cafile=ca_file)
    TLS_CONTEXT.minimum_version = ssl.TLSVersion.TLSv1_2


def readable_now(sock):
    """Decrypted bytes waiting inside the TLS object (or stream data inside an h2transport.StreamSocket),
    which select() cannot see."""
    return hasattr(sock, "pending") and sock.pending() > 0


def wait_readable(sock, timeout):
    if readable_now(sock):
        return True
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def recv_some(sock, size):
    """sock.recv, with TLS's "would block" as BlockingIOError and its close_notify as the end of data."""
    try:
        return sock.recv(size)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError
    except ssl.SSLZeroReturnError:
        return b""


def send_some(sock, data):
    try:
        return sock.send(data)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError


# --------------------------------------------------------------------------------------------------
# Over HTTP/2 (server_suite.py --http2): `Connection` runs over an h2transport.StreamSocket, one stream of
# an HTTP/2 connection with a socket's calls (fileno, send, recv, pending, shutdown, close) and three more,
# which a socket does not need: `backlog` (HTTP/2 bytes of its own still to write), `write_backlog()` and
# `accepts_data()` (False while flow control holds our data back).


class ConnectionLost(Exception):
    """The HTTP/2 connection under the WebSocket's stream failed (GOAWAY, TCP closed): never a case's outcome."""


def holds_backlog(sock):
    return bool(getattr(sock, "backlog", None))


def write_backlog(sock):
    """True when the transport has nothing of its own left to write."""
    return sock.write_backlog() if holds_backlog(sock) else True


def accepts_data(sock):
    return sock.accepts_data() if hasattr(sock, "accepts_data") else True


# --------------------------------------------------------------------------------------------------
# HTTP/1.1 opening handshake helpers


class HandshakeError(Exception):
    pass


def read_http_head(sock, timeout, limit=65536):
    """Read up to and including the blank line; returns (head bytes, bytes that followed it)."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(data[: end + 4]), bytes(data[end + 4 :])
        if len(data) > limit:
            raise HandshakeError("HTTP head longer than %d bytes" % limit)
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeError("timeout after %.1f s reading the HTTP head (got %s)" % (timeout, preview(data, 60)))
        if not wait_readable(sock, left):
            continue
        try:
            chunk = recv_some(sock, 65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise HandshakeError("connection closed while reading the HTTP head (got %s)" % preview(data, 60))
        data += chunk


def parse_http_head(head):
    """Returns (start line, {lower-case name: [values]})."""
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError("malformed header line %r" % line)
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers


def header_tokens(headers, name):
    tokens = []
    for value in headers.get(name, []):
        tokens += [t.strip().lower() for t in value.split(",") if t.strip()]
    return tokens


def send_all(sock, data, timeout=10.0):
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandshakeError("timeout sending %d bytes" % len(data))
        _, writable, _ = select.select([], [sock], [], left)
        if writable:
            try:
                sent = send_some(sock, view)
            except BlockingIOError:
                continue
            view = view[sent:]


def new_client_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def connect(host, port, timeout=5.0):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TLS_CONTEXT is not None:
        try:
            sock = TLS_CONTEXT.wrap_socket(sock, server_hostname=host)  # handshake, bounded by `timeout`
        except BaseException:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


def http_request(sock, request_bytes, timeout=5.0):
    """Send a raw request; returns (status code, reason line, headers, leftover bytes)."""
    send_all(sock, request_bytes, timeout)
    head, rest = read_http_head(sock, timeout)
    start, headers = parse_http_head(head)
    parts = start.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError("malformed status line %r" % start)
    return int(parts[1]), start, headers, rest


def upgrade_request(host, port, path="/ws", key=None, extra=None, omit=(), version="13"):
    """A client opening handshake; `omit` drops headers by lower-case name, `extra` adds raw lines."""
    key = new_client_key() if key is None else key
    lines = ["GET %s HTTP/1.1" % path]
    fields = [
        ("host", "Host: %s:%d" % (host, port)),
        ("upgrade", "Upgrade: websocket"),
        ("connection", "Connection: Upgrade"),
        ("sec-websocket-key", "Sec-WebSocket-Key: %s" % key),
        ("sec-websocket-version", "Sec-WebSocket-Version: %s" % version),
    ]
    lines += [line for name, line in fields if name not in omit]
    lines += list(extra or [])
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii"), key


def check_upgrade_response(status, headers, key, extensions_offered=False):
    """Returns None if the response accepts the upgrade as RFC 6455 4.2.2 requires, else why not.
    With extensions_offered, Sec-WebSocket-Extensions is left to the caller to check."""
    if status != 101:
        return "expected status 101, got %d" % status
    if "websocket" not in header_tokens(headers, "upgrade"):
        return "101 response without 'Upgrade: websocket' (got %r)" % headers.get("upgrade")
    if "upgrade" not in header_tokens(headers, "connection"):
        return "101 response without 'Connection: Upgrade' (got %r)" % headers.get("connection")
    accept = headers.get("sec-websocket-accept", [])
    if accept != [accept_key(key)]:
        return "Sec-WebSocket-Accept is %r, expected %r" % (accept, accept_key(key))
    return unoffered_answer(headers, extensions_offered)


def unoffered_answer(headers, extensions_offered):
    """An extension or subprotocol the server selected though nobody offered one (HTTP/1.1 or HTTP/2)."""
    if headers.get("sec-websocket-extensions") and not extensions_offered:
        return "server accepted an extension nobody offered: %r" % headers["sec-websocket-extensions"]
    if headers.get("sec-websocket-protocol"):
        return "server selected a subprotocol nobody offered: %r" % headers["sec-websocket-protocol"]
    return None


def open_client(host, port, path="/ws", timeout=5.0, verbose=False, extensions=None):
    """TCP connect + opening handshake; returns a client-role Connection. `extensions` is the value of a
    Sec-WebSocket-Extensions header to send; the response's headers are kept in conn.response_headers."""
    sock = connect(host, port, timeout)
    try:
        extra = ["Sec-WebSocket-Extensions: %s" % extensions] if extensions else None
        request, key = upgrade_request(host, port, path, extra=extra)
        status, start, headers, rest = http_request(sock, request, timeout)
        problem = check_upgrade_response(status, headers, key, extensions_offered=bool(extensions))
        if problem:
            raise HandshakeError("opening handshake: %s (%s)" % (problem, start))
    except BaseException:
        sock.close()
        raise
    conn = Connection(sock, "client", initial=rest, verbose=verbose)
    conn.response_headers = headers
    return conn


def check_client_request(method, target, version, headers):
    """Returns None if the request is a valid RFC 6455 4.1 client handshake, else why not."""
    if method != "GET":
        return "method %s, expected GET" % method
    if version != "HTTP/1.1":
        return "version %s, expected HTTP/1.1" % version
    if not headers.get("host"):
        return "no Host header"
    if "websocket" not in header_tokens(headers, "upgrade"):
        return "no 'Upgrade: websocket' (got %r)" % headers.get("upgrade")
    if "upgrade" not in header_tokens(headers, "connection"):
        return "no 'Connection: Upgrade' (got %r)" % headers.get("connection")
    keys = headers.get("sec-websocket-key", [])
    if len(keys) != 1:
        return "expected one Sec-WebSocket-Key, got %r" % keys
    try:
        raw = base64.b64decode(keys[0].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        return "Sec-WebSocket-Key %r is not the base64 of 16 bytes" % keys[0]
    if headers.get("sec-websocket-version") != ["13"]:
        return "Sec-WebSocket-Version %r, expected 13" % headers.get("sec-websocket-version")
    return None


# --------------------------------------------------------------------------------------------------
# The connection


class Connection:
    """Non-blocking raw WebSocket endpoint: an output queue of writes and an input frame parser."""

    # Sleep between one-octet chops so the peer's parser really sees them one by one.
    OCTET_CHOP_DELAY = 0.0005

    def __init__(self, sock, role, initial=b"", verbose=False):
        assert role in ("client", "server")
        self.sock = sock
        # What carries the WebSocket and ends with it: "TCP connection", or over HTTP/2 "HTTP/2 stream".
        self.carrier = getattr(sock, "carrier", "TCP connection")
        self.role = role
        self.mask_outgoing = role == "client"
        self.expect_masked = role == "server"
        self.verbose = verbose
        self.started = time.monotonic()
        self.trace = []

        self.out = []  # list of [bytes, offset, delay_after]; each entry is written by separate send() calls
        self.out_head = 0
        self.merge_open = False  # may the next queued bytes join the last entry (same write)?
        self.next_send_at = 0.0
        self.send_failed = None
        self.sent_close = False

        self.rbuf = bytearray(initial)
        self.eof = False
        self.eof_at = None
        self.reset = False

        self.events = []  # completed messages and pongs, in arrival order
        self.close = None  # (code or None, reason bytes, raw payload) of the first close frame
        self.close_at = None
        self.events_before_close = None
        self.violations = []
        self.frames_received = 0
        self.data_frames_received = 0
        self.peer_pings = []
        self.message_opcode = None
        self.message_parts = []
        # permessage-deflate (pmdeflate.Codec), set by the suite when the handshake agreed on it.
        self.deflate = None
        self.message_compressed = False
        self.compressed_messages = 0
        self.uncompressed_messages = 0

    # -- bookkeeping

    def now(self):
        return time.monotonic() - self.started

    def note(self, text):
        if self.verbose:
            self.trace.append("%8.3f %s" % (self.now(), text))

    def violation(self, text):
        self.violations.append(text)
        self.note("VIOLATION " + text)

    def ended(self):
        """How the peer ended the carrier, e.g. "TCP connection closed", "HTTP/2 stream reset"."""
        return "%s %s" % (self.carrier, "reset" if self.reset else "closed")

    # -- output

    def pending_output(self):
        return self.out_head < len(self.out) and self.send_failed is None

    def queue(self, data, separate=False, delay_after=0.0):
        data = bytes(data)
        if not separate and self.merge_open and self.out_head < len(self.out) and self.out[-1][1] == 0:
            self.out[-1][0] += data
        else:
            self.out.append([bytearray(data), 0, delay_after])
        self.merge_open = not separate

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, chop=None, sync=False, mask=None):
        """Queue a frame. Default: it joins the previous unsynced frames in one write; sync=True:
        its own write; chop=N: the frame's bytes go out in writes of N octets."""
        mask = self.mask_outgoing if mask is None else mask
        frame = encode_frame(opcode, payload, fin, rsv, mask)
        self.note("send %s fin=%d rsv=%d len=%d%s%s" % (OPCODE_NAMES.get(opcode, "op%d" % opcode), fin, rsv,
                                                        len(payload), " chop=%d" % chop if chop else "",
                                                        " sync" if sync else ""))
        if opcode == OP_CLOSE:
            self.sent_close = True
        self.queue_bytes(frame, chop=chop, sync=sync)

    def queue_bytes(self, data, chop=None, sync=False):
        if chop:
            delay = self.OCTET_CHOP_DELAY if chop == 1 else 0.0
            for i in range(0, len(data), chop):
                self.queue(data[i : i + chop], separate=True, delay_after=delay)
        else:
            self.queue(data, separate=sync)
            if sync:
                self.merge_open = False

    def send_close(self, code=None, reason=b"", raw=None, sync=False):
        self.send_frame(OP_CLOSE, close_payload(code, reason) if raw is None else raw, sync=sync)

    def _write_some(self):
        if not write_backlog(self.sock):
            return
        writes = 0
        while self.pending_output() and time.monotonic() >= self.next_send_at and writes < 256:
            entry = self.out[self.out_head]
            data, offset, delay = entry
            try:
                sent = send_some(self.sock, memoryview(data)[offset:])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EPIPE / ECONNRESET: the peer is gone, which may be the expected outcome
                self.send_failed = exc.strerror or str(exc)
                self.note("send failed: %s" % self.send_failed)
                return
            writes += 1
            entry[1] += sent
            if entry[1] < len(data):
                return
            self.out[self.out_head] = None
            self.out_head += 1
            if delay:
                self.next_send_at = time.monotonic() + delay
                return
        if self.out_head == len(self.out):
            self.out = []
            self.out_head = 0
            self.merge_open = False

    # -- input

    def _read_some(self):
        tls = isinstance(self.sock, ssl.SSLSocket)
        for _ in range(256 if tls else 16):
            try:
                chunk = recv_some(self.sock, 1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionResetError as exc:
                self.reset = True
                chunk = b""
                self.note("%s reset (%s)" % (self.carrier, exc))
            if not chunk:
                self.eof = True
                self.eof_at = time.monotonic()
                if not self.reset:
                    self.note("%s EOF" % self.carrier)
                break
            self.rbuf += chunk
            # A short read emptied the socket; over TLS it is one record, and more may follow.
            if len(chunk) < (1 << 20) and not tls:
                break
        self._parse()

    def _parse(self):
        buf = self.rbuf
        size = len(buf)
        pos = 0
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                header = 4
                if length < 126:
                    self.violation("frame length %d not in minimal encoding (16-bit form)" % length)
            elif length == 127:
                if size - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                header = 10
                if length >> 63:
                    self.violation("64-bit frame length with the most significant bit set")
                    self.rbuf = bytearray()
                    return
                if length <= 0xFFFF:
                    self.violation("frame length %d not in minimal encoding (64-bit form)" % length)
            masked = bool(b1 & 0x80)
            if masked:
                header += 4
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            if masked:
                payload = apply_mask(payload, bytes(buf[pos + header - 4 : pos + header]))
            pos += header + length
            self._on_frame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0xF, masked, payload)
        if pos:
            del buf[:pos]

    def _on_frame(self, fin, rsv, opcode, masked, payload):
        self.frames_received += 1
        self.note("recv %s fin=%d rsv=%d%s len=%d %s" % (OPCODE_NAMES.get(opcode, "op%d" % opcode), fin, rsv,
                                                     " masked" if masked else "", len(payload),
                                                     preview(payload, 16) if opcode >= 8 or len(payload) <= 16 else ""))
        if self.close is not None:
            self.violation("%s frame received after the close frame" % OPCODE_NAMES.get(opcode, "op%d" % opcode))
            return
        if masked != self.expect_masked:
            self.violation("%s sent a%s frame" % ("client" if self.role == "server" else "server",
                                                  "n unmasked" if self.expect_masked else " masked"))
        if rsv:
            if self.deflate is None:
                self.violation("frame with RSV bits %d (no extension negotiated)" % rsv)
            elif rsv & 3:
                self.violation("frame with RSV bits %d (permessage-deflate only defines RSV1)" % rsv)
            elif opcode >= 8:
                self.violation("RSV1 on a control frame (RFC 7692 6.1)")
            elif opcode == OP_CONTINUATION:
                self.violation("RSV1 on a continuation frame (RFC 7692 6.1)")
        if opcode >= 8:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                self.violation("frame with reserved control opcode %d" % opcode)
                return
            if not fin:
                self.violation("fragmented control frame (opcode %d)" % opcode)
            if len(payload) > 125:
                self.violation("control frame with %d-byte payload" % len(payload))
            if opcode == OP_PONG:
                self.events.append(("pong", payload))
            elif opcode == OP_PING:
                self.peer_pings.append(payload)
                if not self.sent_close:
                    self.send_frame(OP_PONG, payload)
            else:
                self._on_close(payload)
            return
        if opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            self.violation("frame with reserved data opcode %d" % opcode)
            return
        self.data_frames_received += 1
        if opcode == OP_CONTINUATION:
            if self.message_opcode is None:
                self.violation("continuation frame with no message to continue")
                return
        else:
            if self.message_opcode is not None:
                self.violation("new %s frame while a fragmented message is unfinished" % OPCODE_NAMES[opcode])
                self.message_parts = []
            self.message_opcode = opcode
            self.message_compressed = bool(rsv & 4) and self.deflate is not None
        self.message_parts.append(payload)
        if fin:
            data = b"".join(self.message_parts)
            op = self.message_opcode
            self.message_opcode = None
            self.message_parts = []
            if self.deflate is not None:
                if self.message_compressed:
                    self.compressed_messages += 1
                    try:
                        data = self.deflate.decompress(data)
                    except DeflateError as exc:
                        self.violation("compressed %s message that does not decompress under the agreed "
                                       "parameters (%s): %s" % (OPCODE_NAMES[op], self.deflate.negotiated, exc))
                else:
                    self.uncompressed_messages += 1
            if op == OP_TEXT and not is_utf8(data):
                self.violation("text message that is not valid UTF-8: %s" % preview(data))
            self.events.append(("message", op, data))

    def _on_close(self, payload):
        code = None
        reason = b""
        if len(payload) == 1:
            self.violation("close frame with a 1-byte payload")
        elif len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            reason = payload[2:]
            if not is_sendable_close_code(code):
                self.violation("close frame with code %d, which must not be sent" % code)
            if not is_utf8(reason):
                self.violation("close reason that is not valid UTF-8: %s" % preview(reason))
        self.close = (code, reason, payload)
        self.close_at = time.monotonic()
        self.events_before_close = list(self.events)

    # -- the loop

    def pump(self, timeout):
        """One select() round: write what may be written, read what is there, parse it."""
        now = time.monotonic()
        can_write = self.pending_output() and now >= self.next_send_at and accepts_data(self.sock)
        wait = max(0.0, timeout)
        if self.pending_output() and now < self.next_send_at:
            wait = min(wait, self.next_send_at - now)
        rlist = [] if self.eof else [self.sock]
        wlist = [self.sock] if can_write or holds_backlog(self.sock) else []
        if not rlist and not wlist:
            time.sleep(wait)
            return
        if rlist and readable_now(self.sock):
            wait = 0.0
        readable, writable, _ = select.select(rlist, wlist, [], wait)
        if rlist and readable_now(self.sock):
            readable = rlist
        if writable:
            self._write_some()
        if readable:
            self._read_some()

    def run_until(self, predicate, timeout):
        """Pump until predicate() holds or timeout; returns predicate()."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return predicate()
            if self.eof and not self.pending_output():
                return predicate()
            self.pump(min(left, 0.25))

    def flush(self, timeout):
        return self.run_until(lambda: not self.pending_output(), timeout)

    def wait(self, seconds):
        """Pump for the given time (less if the connection is finished)."""
        self.run_until(lambda: False, seconds)

    def shutdown_and_close(self, drain=1.0):
        """Close our side first (FIN), give the peer a moment to close its side, then release."""
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                # TLS's end of our sending direction is close_notify. (socket.shutdown on an SSLSocket
                # would drop the TLS object and leave raw records to read.) Unwrapping sends it; it
                # completes only once the peer's close_notify is in, which then means the end.
                self.sock.unwrap()
                self.eof = True
            else:
                self.sock.shutdown(socket.SHUT_WR)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except OSError:
            pass
        deadline = time.monotonic() + drain
        while not self.eof and time.monotonic() < deadline:
            if wait_readable(self.sock, max(0.0, deadline - time.monotonic())):
                self._read_some()
        self.sock.close()

    def abort(self):
        try:
            self.sock.close()
        except OSError:
            pass
