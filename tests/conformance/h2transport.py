"""The raw WebSocket peer over HTTP/2 (RFC 8441): server_suite.py --http2.

`open_client` opens a new HTTP/2 connection (h2c with prior knowledge, or h2 over TLS with ALPN), sends
the extended CONNECT for /ws and returns a client-role rawws.Connection whose "socket" is that one stream,
a `StreamSocket`. tests/http2/h2peer.py's python3-h2 client does the HTTP/2 (Debian's python3-h2: run with
/usr/bin/python3); this module makes it non-blocking and gives it the calls of a non-blocking socket:

  send(data)  one write of the case's bytes: DATA frames, as many as the stream's and the connection's
              windows take now (each at most the server's frame size), written at once; so a chop, a
              `sync` frame or a delayed part is a DATA frame of its own as it is a TCP write of its own
              over HTTP/1.1. BlockingIOError while the windows are closed or earlier frames are unwritten.
  recv(size)  the stream's DATA payload (the windows are reopened as it is taken); b"" once the server
              ended the stream (END_STREAM, what a FIN is to TCP) and ConnectionResetError once it reset
              it (RST_STREAM, what an RST is to TCP), in both cases after the data before it. HTTP/2
              frames without stream data make the socket readable: then BlockingIOError, never the end.
  shutdown()  END_STREAM (our half-close).

The HTTP/2 connection itself must outlive every case: a GOAWAY, a closed TCP connection or an HTTP/2
protocol error raise rawws.ConnectionLost, and after a case `check_open` requires a PING answer.
"""

import os
import socket
import ssl
import sys

import h2.errors
import h2.events
import h2.exceptions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "http2"))
import h2peer  # noqa: E402
import rawws  # noqa: E402


def error_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return "error code %d" % code


class StreamSocket(h2peer.Client):
    """One HTTP/2 connection carrying one WebSocket, seen by rawws.Connection as a non-blocking socket."""

    carrier = "HTTP/2 stream"

    def __init__(self, port, ca_file=None):
        self.backlog = bytearray()  # HTTP/2 bytes not yet written
        self.lost = None  # why the HTTP/2 connection is unusable: the TCP connection's end, a protocol error
        self.sid = None
        self.ping_acks = []
        self.scheme = "https" if ca_file else "http"
        super().__init__(port, ca_file)  # connects (blocking, bounded) and sends the preface
        self.sock.setblocking(False)
        alpn = self.sock.selected_alpn_protocol() if ca_file else "h2"
        if alpn != "h2":
            self.close()
            raise rawws.HandshakeError("TLS: the server selected ALPN %r, expected 'h2'" % alpn)

    # -- h2peer.Client, non-blocking

    def flush(self):
        self.backlog += self.conn.data_to_send()
        self.write_backlog()

    def write_backlog(self):
        """Writes what the socket takes now; True when nothing is left."""
        while self.backlog:
            try:
                sent = rawws.send_some(self.sock, self.backlog)
            except BlockingIOError:
                return False
            except OSError as exc:
                self.lost = "writing to the TCP connection failed: %s" % exc
                self.backlog.clear()
                return False
            del self.backlog[:sent]
        return True

    def pump(self, timeout):
        """h2peer.Client's bounded waits (the CONNECT, check_open): reads once within `timeout`."""
        self.write_backlog()
        if self.lost is None and rawws.wait_readable(self.sock, timeout):
            self.read_socket()
        return self.problem() is None

    def read_socket(self, enough=1 << 20):
        """Hands h2 what the socket holds now, until `enough` stream bytes are waiting."""
        while self.lost is None and (self.sid is None or len(self.stream.data) < enough):
            try:
                data = rawws.recv_some(self.sock, 1 << 20)
            except BlockingIOError:
                return
            except OSError as exc:  # ConnectionResetError, a TLS failure
                self.lost = "the TCP connection failed: %s" % exc
                return
            if not data:
                self.lost = "the server closed the TCP connection"
                return
            try:
                self.received_data(data)  # DATA is acknowledged as it arrives: recv hands it on at once
            except h2.exceptions.ProtocolError as exc:
                self.lost = "HTTP/2 protocol error of the server: %s" % exc

    def handle(self, event):
        if isinstance(event, h2.events.PingAckReceived):
            self.ping_acks.append(event.ping_data)
        elif isinstance(event, h2.events.StreamReset) and not event.remote_reset:
            self.lost = "python3-h2 reset stream %d: the server broke HTTP/2 on it (%s)" % (
                event.stream_id, error_name(event.error_code))
        super().handle(event)

    def problem(self):
        if self.goaway is not None:
            return "the server sent GOAWAY (%s)" % error_name(self.goaway)
        return self.lost

    # -- the WebSocket's stream

    def open(self, path, extensions=None, timeout=5.0):
        """The extended CONNECT; returns the 200 response's headers ({name: [values]})."""
        headers = [("sec-websocket-extensions", extensions)] if extensions else []
        try:
            self.sid = self.open_websocket(path, headers, scheme=self.scheme, timeout=timeout)
        except (TimeoutError, ConnectionError) as exc:
            raise rawws.HandshakeError("extended CONNECT: %s%s" % (
                exc, "" if self.problem() is None else " (%s)" % self.problem()))
        if self.stream.reset is not None:
            raise rawws.HandshakeError("extended CONNECT answered with RST_STREAM (%s)" % error_name(self.stream.reset))
        if self.stream.status != 200:
            raise rawws.HandshakeError("extended CONNECT: expected :status 200, got %s" % self.stream.status)
        problem = rawws.unoffered_answer(self.stream.headers, bool(extensions))
        if problem:
            raise rawws.HandshakeError("extended CONNECT: %s" % problem)
        return self.stream.headers

    @property
    def stream(self):
        return self.streams[self.sid]

    def check_open(self, timeout=2.0):
        """After a case: the HTTP/2 connection is still open (no GOAWAY came, a PING is answered)."""
        data = os.urandom(8)
        if self.problem() is None:
            self.conn.ping(data)
            self.flush()
        try:
            self.wait_for(lambda: data in self.ping_acks or self.problem() is not None, timeout, "a PING answer")
        except (TimeoutError, ConnectionError) as exc:
            raise rawws.ConnectionLost("after the stream: %s" % exc)
        if self.problem() is not None:
            raise rawws.ConnectionLost("after the stream: %s" % self.problem())

    # -- the socket calls of rawws.Connection

    def fileno(self):
        return self.sock.fileno()

    def pending(self):
        """What select() cannot see: stream data or the stream's end already read, bytes inside TLS."""
        stream = self.stream
        ended = stream.ended or stream.reset is not None or self.problem() is not None
        tls = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        return len(stream.data) + int(ended) + tls

    def accepts_data(self):
        """False while the windows hold our data back (a WINDOW_UPDATE will make the socket readable)."""
        try:
            return self.conn.local_flow_control_window(self.sid) > 0
        except h2.exceptions.StreamClosedError:
            return True  # send() reports the closed stream

    def send(self, data):
        if self.problem() is not None:
            raise rawws.ConnectionLost(self.problem())
        if not self.write_backlog():
            raise BlockingIOError
        try:
            window = self.conn.local_flow_control_window(self.sid)
            if data and window <= 0:
                raise BlockingIOError
            size = min(len(data), max(window, 0))
            step = self.conn.max_outbound_frame_size
            for at in range(0, size, step):
                self.conn.send_data(self.sid, bytes(data[at : min(at + step, size)]))
        except h2.exceptions.StreamClosedError:
            raise BrokenPipeError("the HTTP/2 stream is closed")  # what EPIPE is to TCP
        self.flush()
        return size

    def recv(self, size):
        self.read_socket(size)
        stream = self.stream
        if stream.data:
            chunk = bytes(stream.data[:size])
            del stream.data[:size]
            return chunk
        if stream.reset is not None:
            raise ConnectionResetError("RST_STREAM %s" % error_name(stream.reset))
        if stream.ended:
            return b""
        if self.problem() is not None:
            raise rawws.ConnectionLost(self.problem())
        raise BlockingIOError

    def shutdown(self, how=socket.SHUT_WR):
        """Our half-close: END_STREAM."""
        try:
            self.conn.end_stream(self.sid)
        except h2.exceptions.StreamClosedError:
            raise BrokenPipeError("the HTTP/2 stream is closed")
        self.flush()


def open_client(host, port, path="/ws", timeout=5.0, verbose=False, extensions=None, ca_file=None):
    """rawws.open_client over HTTP/2: with ca_file, h2 over TLS (ALPN h2, that CA trusted), else h2c.
    `host` must be 127.0.0.1 (h2peer connects there)."""
    assert host == "127.0.0.1"
    stream = StreamSocket(port, ca_file)
    try:
        headers = stream.open(path, extensions, timeout)
    except BaseException:
        stream.close()
        raise
    conn = rawws.Connection(stream, "client", verbose=verbose)
    conn.response_headers = headers
    return conn
