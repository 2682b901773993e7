"""The raw WebSocket peer over HTTP/2 (RFC 8441), in both roles: one HTTP/2 stream that rawws.Connection
uses as its socket.

Client role (server_suite.py --http2): `open_client` opens a new HTTP/2 connection (h2c with prior
knowledge, or h2 over TLS with ALPN), sends the extended CONNECT for /ws and returns a client-role
rawws.Connection over that one stream, a `StreamSocket`; tests/http2/h2peer.py's python3-h2 client does
the HTTP/2.

Server role (client_suite.py --http2): a `ServerConnection` is python3-h2 as a server on one accepted
connection (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1); every request the client opens on it becomes a
`ServerStream`, which the suite checks (`request_problem`: an extended CONNECT for websocket, version 13,
no HTTP/1.1 upgrade headers, :scheme http or https as the connection is) and answers: `reject(status)`,
or `accept(extension)`, the :status 200 that returns a server-role rawws.Connection over the stream.

Both make python3-h2 (Debian's python3-h2: run with /usr/bin/python3) non-blocking and give the stream
the calls of a non-blocking socket:

  send(data)  one write of the case's bytes: DATA frames, as many as the stream's and the connection's
              windows take now (each at most the peer's frame size), written at once; so a chop, a
              `sync` frame or a delayed part is a DATA frame of its own as it is a TCP write of its own
              over HTTP/1.1. BlockingIOError while the windows are closed or earlier frames are unwritten.
  recv(size)  the stream's DATA payload; b"" once the peer ended the stream (END_STREAM, what a FIN is to
              TCP) and ConnectionResetError once it reset it (RST_STREAM, what an RST is to TCP), in both
              cases after the data before it. HTTP/2 frames without stream data make the socket readable:
              then BlockingIOError, never the end. The client role reopens the windows as DATA arrives,
              the server role as the data is taken (recv).
  shutdown()  END_STREAM (our half-close).

Client role: the HTTP/2 connection itself must outlive every case: a GOAWAY, a closed TCP connection or
an HTTP/2 protocol error raise rawws.ConnectionLost, and after a case `check_open` requires a PING answer.

Server role: the client may close its connection once the stream is over (one connection per WebSocket
is fine). While the stream is open, the TCP connection's end is the stream's reset (ConnectionResetError);
an HTTP/2 protocol error of the client, its GOAWAY with an error code, or python3-h2 resetting the stream
for a breach of HTTP/2 raise rawws.ConnectionLost (the case fails). Closing TCP first (RFC 6455 7.1.1)
becomes ending the stream first: the client's END_STREAM after its close frame is a half-close that
recv reports only once we ended ours, so only its RST_STREAM (or its closed connection) before our
END_STREAM counts as closing first.
"""

import collections
import os
import select
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "http2"))
import h2peer  # noqa: E402
import rawws  # noqa: E402


def error_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return "error code %d" % code


class NonBlocking:
    """python3-h2 (`self.conn`) over a non-blocking socket (`self.sock`), either role. What h2 has to send
    waits in `self.backlog` while the socket is full; `self.peer` names the other end in messages. The
    bytes read go to `received_data` (h2peer.Events), and `buffered()` says how much stream data is
    waiting to be taken."""

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
                self.tcp_lost("writing to the TCP connection failed: %s" % exc)
                self.backlog.clear()
                return False
            del self.backlog[:sent]
        return True

    def read_socket(self, enough=1 << 20):
        """Hands h2 what the socket holds now, until `enough` stream bytes are waiting."""
        while self.lost is None and self.buffered() < enough:
            try:
                data = rawws.recv_some(self.sock, 1 << 20)
            except BlockingIOError:
                return
            except OSError as exc:  # ConnectionResetError, a TLS failure
                self.tcp_lost("the TCP connection failed: %s" % exc)
                return
            if not data:
                self.tcp_lost("the %s closed the TCP connection" % self.peer)
                return
            try:
                self.received_data(data)
            except h2.exceptions.ProtocolError as exc:
                self.protocol_error("HTTP/2 protocol error of the %s: %s" % (self.peer, exc))
                self.flush()  # h2's GOAWAY

    def tcp_lost(self, why):
        if self.lost is None:
            self.lost = why

    def protocol_error(self, why):
        self.lost = why


class StreamCalls:
    """The socket calls of rawws.Connection over the stream `self.sid` (its h2peer.StreamState is
    `self.stream`) of a NonBlocking connection, either role. The subclass says when the stream's end is
    there to report (`end_reached`) and reports it (`end`: b"" or an exception)."""

    carrier = "HTTP/2 stream"

    def fileno(self):
        return self.sock.fileno()

    def pending(self):
        """What select() cannot see: stream data or the stream's end already read, bytes inside TLS."""
        tls = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        return len(self.stream.data) + int(self.end_reached()) + tls

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
            self.taken(len(chunk))
            return chunk
        if self.end_reached():
            return self.end()
        raise BlockingIOError

    def taken(self, size):
        """`size` octets of stream data were handed on."""

    def shutdown(self, how=socket.SHUT_WR):
        """Our half-close: END_STREAM."""
        try:
            self.conn.end_stream(self.sid)
        except h2.exceptions.StreamClosedError:
            raise BrokenPipeError("the HTTP/2 stream is closed")
        self.flush()


# --------------------------------------------------------------------------------------------------
# Client role


class StreamSocket(NonBlocking, StreamCalls, h2peer.Client):
    """One HTTP/2 connection carrying one WebSocket, seen by rawws.Connection as a non-blocking socket."""

    peer = "server"

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

    def buffered(self):
        return 0 if self.sid is None else len(self.stream.data)

    def pump(self, timeout):
        """h2peer.Client's bounded waits (the CONNECT, check_open): reads once within `timeout`."""
        self.write_backlog()
        if self.lost is None and rawws.wait_readable(self.sock, timeout):
            self.read_socket()
        return self.problem() is None

    def handle(self, event):  # DATA is acknowledged as it arrives (h2peer.Client): recv hands it on at once
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

    def end_reached(self):
        stream = self.stream
        return stream.ended or stream.reset is not None or self.problem() is not None

    def end(self):
        if self.stream.reset is not None:
            raise ConnectionResetError("RST_STREAM %s" % error_name(self.stream.reset))
        if self.stream.ended:
            return b""
        raise rawws.ConnectionLost(self.problem())

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


# --------------------------------------------------------------------------------------------------
# Server role


class ServerConnection(NonBlocking, h2peer.Events):
    """python3-h2 as the server of one accepted connection (plain: h2c with prior knowledge; TLS: ALPN
    must have selected h2), non-blocking. Its SETTINGS go out at once, with ENABLE_CONNECT_PROTOCOL = 1.
    Each request the client opens is queued in `requests` as a ServerStream."""

    peer = "client"

    def __init__(self, sock, number):
        self.sock = sock
        self.number = number  # the connection's rank, for messages
        self.scheme = "https" if isinstance(sock, ssl.SSLSocket) else "http"
        self.backlog = bytearray()
        self.lost = None  # why the connection is over: the TCP connection's end, or an HTTP/2 error
        self.failure = None  # an HTTP/2 error of the client's (fails the stream that is open)
        self.failure_reported = False  # by the suite
        self.goaway = None  # error code of the client's GOAWAY
        self.streams = {}
        self.requests = collections.deque()
        self.served = 0  # requests taken from `requests`
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
        })
        self.conn.initiate_connection()
        self.flush()

    def name(self):
        return "HTTP/2 connection %d" % self.number

    def alpn_problem(self):
        """Over TLS the client must have offered h2, the only protocol we select."""
        if self.scheme == "https" and self.sock.selected_alpn_protocol() != "h2":
            return "TLS: the client did not offer ALPN 'h2' (selected %r)" % self.sock.selected_alpn_protocol()
        return None

    def buffered(self):
        return 0  # flow control bounds what the client may send ahead of recv

    def protocol_error(self, why):
        self.lost = self.failure = why

    def handle(self, event):
        stream = self.streams.get(getattr(event, "stream_id", None))
        if isinstance(event, h2.events.RequestReceived):
            stream = ServerStream(self, event.stream_id, event.headers)
            self.streams[event.stream_id] = stream
            self.requests.append(stream)
        elif isinstance(event, h2.events.DataReceived):
            if stream is None or stream.released:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                stream.state.data += event.data
                if event.flow_controlled_length > len(event.data):  # padding: nothing to hand on
                    self.conn.acknowledge_received_data(event.flow_controlled_length - len(event.data),
                                                        event.stream_id)
        elif isinstance(event, h2.events.StreamEnded) and stream is not None:
            stream.state.ended = True
        elif isinstance(event, h2.events.StreamReset):
            if not event.remote_reset:
                self.failure = "python3-h2 reset stream %d: the client broke HTTP/2 on it (%s)" % (
                    event.stream_id, error_name(event.error_code))
            elif stream is not None:
                stream.state.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event.error_code
            if event.error_code != h2.errors.ErrorCodes.NO_ERROR:
                self.failure = "the client sent GOAWAY (%s%s)" % (
                    error_name(event.error_code),
                    ", %r" % event.additional_data if event.additional_data else "")

    def problem(self):
        """An HTTP/2 error: the client's protocol error, its GOAWAY with an error code, h2 resetting a stream."""
        return self.failure

    def open_streams(self):
        return [s for s in self.streams.values() if not s.released]

    def finished(self):
        """Nothing more will come: the TCP connection is over, or the client said GOAWAY and every stream
        it opened has been served and released."""
        return self.lost is not None or (self.goaway is not None and not self.requests and not self.open_streams())

    def close(self):
        if self.lost is None:
            try:
                self.conn.close_connection()
                self.flush()
            except h2.exceptions.ProtocolError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass


class ServerStream(StreamCalls):
    """One request of a ServerConnection: an extended CONNECT to check and answer, then the WebSocket's
    stream, seen by a server-role rawws.Connection as a non-blocking socket."""

    def __init__(self, link, sid, headers):
        self.link = link
        self.sid = sid
        self.state = h2peer.StreamState()
        self.pseudo = {}
        self.headers = {}  # {lower-case name: [values]}, as rawws.parse_http_head gives them
        for name, value in headers:
            if name.startswith(":"):
                self.pseudo[name] = value
            else:
                self.headers.setdefault(name, []).append(value)
        self.target = self.pseudo.get(":path", "")
        self.websocket = None  # the rawws.Connection, once accepted
        self.ended_by_us = False
        self.released = False

    # what StreamCalls works on: the connection's
    conn = property(lambda self: self.link.conn)
    sock = property(lambda self: self.link.sock)
    backlog = property(lambda self: self.link.backlog)

    @property
    def stream(self):
        return self.state

    def flush(self):
        self.link.flush()

    def write_backlog(self):
        return self.link.write_backlog()

    def read_socket(self, enough=1 << 20):
        self.link.read_socket(enough)

    def problem(self):
        return self.link.problem()

    def describe(self):
        return " ".join("%s %s" % item for item in self.pseudo.items())

    def request_problem(self):
        """None if the request is an RFC 8441 extended CONNECT for a WebSocket, else why not."""
        pseudo, headers = self.pseudo, self.headers
        if pseudo.get(":method") != "CONNECT":
            return ":method %s, expected CONNECT (RFC 8441 4)" % pseudo.get(":method")
        if pseudo.get(":protocol") != "websocket":
            return ":protocol %r, expected 'websocket' (RFC 8441 4)" % pseudo.get(":protocol")
        if pseudo.get(":scheme") != self.link.scheme:
            return ":scheme %r over %s, expected %r (RFC 8441 4)" % (
                pseudo.get(":scheme"), "TLS" if self.link.scheme == "https" else "h2c", self.link.scheme)
        if not pseudo.get(":path"):
            return "no :path (RFC 8441 4)"
        if not pseudo.get(":authority"):
            return "no :authority (RFC 8441 4)"
        if headers.get("sec-websocket-version") != ["13"]:
            return "sec-websocket-version %r, expected 13" % headers.get("sec-websocket-version")
        for name in ("sec-websocket-key", "upgrade", "connection"):  # (h2 itself refuses the last two)
            if name in headers:
                return "%s %r: not part of an extended CONNECT (RFC 8441 5)" % (name, headers[name])
        return None

    def reject(self, status, reason=None):
        """An answer without a WebSocket: :status, END_STREAM."""
        try:
            self.conn.send_headers(self.sid, [(":status", str(status))], end_stream=True)
            self.flush()
        except h2.exceptions.StreamClosedError:
            pass
        self.ended_by_us = True

    def accept(self, extension=None, verbose=False):
        """:status 200 (with `extension` as sec-websocket-extensions): the server-role rawws.Connection."""
        self.conn.send_headers(self.sid, [(":status", "200")] +
                               ([("sec-websocket-extensions", extension)] if extension else []))
        self.flush()
        self.websocket = rawws.Connection(self, "server", verbose=verbose)
        self.websocket.note("%s stream %d: %s" % (self.link.name(), self.sid, self.describe()))
        return self.websocket

    # -- the end of the stream

    def end_reached(self):
        state = self.state
        if state.reset is not None or self.problem() is not None or self.link.lost is not None:
            return True
        # The client's END_STREAM after its close frame: its half-close, reported once we ended ours.
        return state.ended and (self.ended_by_us or self.websocket is None or self.websocket.close is None)

    def end(self):
        state = self.state
        if state.reset is not None:
            raise ConnectionResetError("RST_STREAM %s" % error_name(state.reset))
        if self.problem() is not None:
            raise rawws.ConnectionLost(self.problem())
        if state.ended:
            return b""
        raise ConnectionResetError("%s with the stream open" % self.link.lost)

    def taken(self, size):
        self.conn.acknowledge_received_data(size, self.sid)
        self.flush()

    def send(self, data):
        if self.link.lost is not None and self.problem() is None:
            raise BrokenPipeError(self.link.lost)  # what EPIPE is to TCP
        return super().send(data)

    def shutdown(self, how=socket.SHUT_WR):
        super().shutdown(how)
        self.ended_by_us = True

    def close(self):
        """Releases the stream: unless both ends ended it, RST_STREAM, NO_ERROR after our END_STREAM (the
        client need not send the rest, RFC 9113 8.1) or CANCEL before it (a TCP close with data unread
        resets too); the data left unread gives its window back to the connection."""
        if self.released:
            return
        self.released = True
        if self.state.data:
            self.conn.acknowledge_received_data(len(self.state.data), self.sid)
            self.state.data.clear()
        if self.link.lost is None:
            if not (self.state.ended and self.ended_by_us) and self.state.reset is None:
                try:
                    self.conn.reset_stream(self.sid, h2.errors.ErrorCodes.NO_ERROR if self.ended_by_us else
                                           h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.StreamClosedError:
                    pass
            self.flush()


def poll(links, others, timeout):
    """One select() round over the ServerConnections `links` (read what they hold, write their backlogs)
    and the sockets `others` (a listener); returns those of `others` that are readable."""
    live = [link for link in links if link.lost is None]
    wait = 0.0 if any(isinstance(l.sock, ssl.SSLSocket) and l.sock.pending() for l in live) else timeout
    readable, writable, _ = select.select(list(others) + [l.sock for l in live],
                                          [l.sock for l in live if l.backlog], [], wait)
    for link in live:
        if link.sock in writable:
            link.write_backlog()
        if link.sock in readable or (isinstance(link.sock, ssl.SSLSocket) and link.sock.pending()):
            link.read_socket()
    return [s for s in others if s in readable]
