"""A strict, streaming RFC 6455 peer in plain Python: the suite's proof that its expectations can be met.

python-websockets (reference_echo.py / reference_client.py) legitimately differs from the suite's
stricter expectations in a few places (see the README). This peer is written to them, independently of
the suite's own code (standard library only, nothing shared with rawws.py):

  * it streams: a frame's payload is handled in chunks of at most 4 KiB as they arrive, like
    duplex-echo's 4 KiB receive buffer, so UTF-8 is validated as the octets come in (fail-fast) and
    the echo server sends each chunk back as soon as it has it, with the message type and
    end-of-message flag - echoed messages come back fragmented differently, as duplex-echo's do;
  * every violation fails the connection at once with close 1002 (framing, opcodes, reserved bits,
    fragmentation, control frames, close codes) or 1007 (invalid UTF-8 in a text message or close
    reason); the server then closes TCP, the client waits for the server to close it;
  * a close frame is answered with the same payload; messages are processed in order before it.

strict_echo.py and strict_client.py give it the command lines of duplex-echo and
duplex-autobahn-client.
"""

import base64
import hashlib
import os
import re
import socket
import struct
import sys
import threading
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = 4096


class ProtocolFailure(Exception):
    def __init__(self, code, why):
        super().__init__(why)
        self.code = code


class Closed(Exception):
    pass


class Utf8Validator:
    """Incremental UTF-8 validation (RFC 3629) that rejects an octet as soon as no valid text can follow."""

    def __init__(self):
        self.need = 0
        self.low = 0x80
        self.high = 0xBF

    def feed(self, data):
        if not self.need and data.isascii():
            return True
        need, low, high = self.need, self.low, self.high
        for octet in data:
            if need:
                if not low <= octet <= high:
                    return False
                need, low, high = need - 1, 0x80, 0xBF
            elif octet < 0x80:
                continue
            elif 0xC2 <= octet <= 0xDF:
                need = 1
            elif octet == 0xE0:
                need, low = 2, 0xA0
            elif octet == 0xED:
                need, high = 2, 0x9F
            elif 0xE1 <= octet <= 0xEF:
                need = 2
            elif octet == 0xF0:
                need, low = 3, 0x90
            elif 0xF1 <= octet <= 0xF3:
                need = 3
            elif octet == 0xF4:
                need, high = 3, 0x8F
            else:
                return False
        self.need, self.low, self.high = need, low, high
        return True

    def complete(self):
        return self.need == 0


def valid_close_code(code):
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999


def unmask(data, key, offset):
    if not data:
        return b""
    shift = offset % 4
    key = key[shift:] + key[:shift]
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(len(data), "little")


class Endpoint:
    def __init__(self, sock, is_server, buffered=b"", whole_messages=False, on_message=None):
        self.sock = sock
        self.is_server = is_server
        self.buf = bytearray(buffered)
        self.whole_messages = whole_messages
        self.on_message = on_message or (lambda opcode, data: self.send(opcode, data, True))
        self.message_opcode = None
        self.message_parts = []
        self.echo_started = False
        self.validator = None
        self.close_sent = False

    # -- transport

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise Closed()
        self.buf += data

    def take(self, count):
        while len(self.buf) < count:
            self.fill()
        data = bytes(self.buf[:count])
        del self.buf[:count]
        return data

    def take_some(self, limit):
        if not self.buf:
            self.fill()
        data = bytes(self.buf[:limit])
        del self.buf[: len(data)]
        return data

    def send(self, opcode, payload, fin):
        length = len(payload)
        first = (0x80 if fin else 0) | opcode
        mask_bit = 0 if self.is_server else 0x80
        if length <= 125:
            header = struct.pack("!BB", first, mask_bit | length)
        elif length <= 0xFFFF:
            header = struct.pack("!BBH", first, mask_bit | 126, length)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, length)
        if not self.is_server:
            key = os.urandom(4)
            header += key
            payload = unmask(payload, key, 0)
        self.sock.sendall(header + payload)

    # -- the receive loop

    def run(self):
        try:
            while True:
                self.frame()
        except ProtocolFailure as failure:
            self.fail(failure.code)
        except Closed:
            pass
        except OSError:
            pass
        finally:
            self.sock.close()

    def fail(self, code):
        try:
            if not self.close_sent:
                self.close_sent = True
                self.send(0x8, struct.pack("!H", code), True)
            self.finish()
        except OSError:
            pass

    def finish(self):
        """After the close frames: the server closes TCP first, the client waits for it (RFC 6455 7.1.1)."""
        if self.is_server:
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.settimeout(2.0)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def frame(self):
        b0, b1 = self.take(2)
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF
        masked, length = bool(b1 & 0x80), b1 & 0x7F
        if rsv:
            raise ProtocolFailure(1002, "RSV bits set")
        if masked != self.is_server:
            raise ProtocolFailure(1002, "wrong masking")
        if opcode in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF):
            raise ProtocolFailure(1002, "reserved opcode")
        if opcode >= 8 and (not fin or length > 125):
            raise ProtocolFailure(1002, "bad control frame")
        if length == 126:
            length = struct.unpack("!H", self.take(2))[0]
            if length < 126:
                raise ProtocolFailure(1002, "non-minimal length")
        elif length == 127:
            length = struct.unpack("!Q", self.take(8))[0]
            if length >> 63 or length <= 0xFFFF:
                raise ProtocolFailure(1002, "bad 64-bit length")
        if opcode == 0 and self.message_opcode is None:
            raise ProtocolFailure(1002, "nothing to continue")
        if opcode in (1, 2) and self.message_opcode is not None:
            raise ProtocolFailure(1002, "new message inside a fragmented one")
        key = self.take(4) if masked else b""
        if opcode >= 8:
            payload = unmask(self.take(length), key, 0) if masked else self.take(length)
            self.control(opcode, payload)
            return
        if opcode in (1, 2):
            self.message_opcode = opcode
            self.echo_started = False
            self.validator = Utf8Validator() if opcode == 1 else None
        offset = 0
        while True:
            chunk = self.take_some(min(CHUNK, length - offset)) if offset < length else b""
            if masked:
                chunk = unmask(chunk, key, offset)
            offset += len(chunk)
            last = offset == length
            if self.validator and not self.validator.feed(chunk):
                raise ProtocolFailure(1007, "invalid UTF-8")
            end_of_message = fin and last
            if end_of_message and self.validator and not self.validator.complete():
                raise ProtocolFailure(1007, "text ends inside a code point")
            self.data(chunk, end_of_message, last)
            if last:
                break
        if fin:
            self.message_opcode = None

    def data(self, chunk, end_of_message, frame_done):
        if self.whole_messages:
            self.message_parts.append(chunk)
            if end_of_message:
                data = b"".join(self.message_parts)
                self.message_parts = []
                self.on_message(self.message_opcode, data)
            return
        if not chunk and not frame_done:
            return
        self.send(0 if self.echo_started else self.message_opcode, chunk, end_of_message)
        self.echo_started = True

    def control(self, opcode, payload):
        if opcode == 0x9:
            self.send(0xA, payload, True)
        elif opcode == 0x8:
            if len(payload) == 1:
                raise ProtocolFailure(1002, "1-byte close payload")
            if len(payload) >= 2:
                if not valid_close_code(struct.unpack("!H", payload[:2])[0]):
                    raise ProtocolFailure(1002, "invalid close code")
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolFailure(1007, "invalid close reason") from None
            if not self.close_sent:
                self.close_sent = True
                self.send(0x8, payload, True)
            self.finish()
            raise Closed()


# --------------------------------------------------------------------------------------------------
# Opening handshakes


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > 65536:
            raise Closed()
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], headers, rest


def tokens(headers, name):
    return [t.strip().lower() for v in headers.get(name, []) for t in v.split(",")]


def reply(sock, status, reason, extra=()):
    head = ["HTTP/1.1 %d %s" % (status, reason)] + list(extra)
    if status != 101:
        head += ["Content-Length: 0", "Connection: close"]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("ascii"))


def serve_connection(sock):
    try:
        start, headers, rest = read_head(sock)
        method, target, _version = (start.split(" ") + ["", "", ""])[:3]
        if urllib.parse.urlsplit(target).path != "/ws":
            return reply(sock, 404, "Not Found")
        if method != "GET" or "websocket" not in tokens(headers, "upgrade") or \
                "upgrade" not in tokens(headers, "connection"):
            return reply(sock, 400, "Bad Request")
        keys = headers.get("sec-websocket-key", [])
        try:
            key_ok = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
        except ValueError:
            key_ok = False
        if not key_ok:
            return reply(sock, 400, "Bad Request")
        if headers.get("sec-websocket-version") != ["13"]:
            return reply(sock, 426, "Upgrade Required", ["Sec-WebSocket-Version: 13"])
        reply(sock, 101, "Switching Protocols",
              ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: " + accept_for(keys[0])])
        Endpoint(sock, True, rest).run()
    except (Closed, OSError):
        pass
    finally:
        sock.close()


def echo_main(argv):
    urls = "http://127.0.0.1:5000"
    argv = [arg for arg in argv if arg != "--compression"]  # accepted, but this peer never compresses
    if len(argv) == 2 and argv[0] == "--urls":
        urls = argv[1]
    match = re.match(r"http://(\[[^\]]+\]|[^:/]+):(\d+)/?$", urls.split(";")[0])
    if not match:
        print("usage: strict_echo.py [--urls http://HOST:PORT]", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((match.group(1).strip("[]"), int(match.group(2))))
    listener.listen(128)
    host, port = listener.getsockname()[:2]
    print("duplex-echo listening on http://%s:%d" % (host, port), flush=True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


def client_connect(base, path_and_query):
    url = urllib.parse.urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port or 80), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                  % (path_and_query, url.hostname, url.port or 80, key)).encode("ascii"))
    start, headers, rest = read_head(sock)
    if start.split(" ")[1:2] != ["101"] or headers.get("sec-websocket-accept") != [accept_for(key)]:
        sock.close()
        raise Closed()
    sock.settimeout(None)
    return sock, rest


def client_main(argv):
    if len(argv) != 2:
        print("usage: strict_client.py ws://HOST:PORT AGENT", file=sys.stderr)
        return 2
    base = argv[0].rstrip("/").replace("ws://", "http://", 1)
    agent = urllib.parse.quote(argv[1])
    messages = []
    sock, rest = client_connect(base, "/getCaseCount")
    Endpoint(sock, False, rest, whole_messages=True, on_message=lambda op, data: messages.append(data)).run()
    for case in range(1, int(messages[0]) + 1):
        try:
            sock, rest = client_connect(base, "/runCase?case=%d&agent=%s" % (case, agent))
        except (Closed, OSError):
            continue
        endpoint = Endpoint(sock, False, rest, whole_messages=True)
        endpoint.on_message = lambda op, data, endpoint=endpoint: endpoint.send(op, data, True)
        endpoint.run()
    sock, rest = client_connect(base, "/updateReports?agent=%s" % agent)
    endpoint = Endpoint(sock, False, rest)
    endpoint.close_sent = True
    endpoint.send(0x8, struct.pack("!H", 1000), True)
    endpoint.run()
    return 0
