"""What a case may do and expect, the same in both directions.

A case is a function taking a `Tester`: it sends frames through `t.frame(...)`, `t.close(...)`,
`t.message(...)`, waits with `t.wait(...)`, and ends with one outcome:

  t.expect_echo(events)      the peer answers with exactly these events (messages, pongs); we then
                             close with 1000 and the peer must answer with 1000 (Autobahn: "closedByMe")
  t.expect_close_reply(...)  we already sent a close frame; the peer answers it with the given code
  t.expect_fail(code, ...)   the peer fails the connection: a close frame with exactly this code,
                             after exactly these events

The TCP rule follows the roles (RFC 6455 7.1.1): the server closes the TCP connection first.
  Our role "client" (server suite): after the close frames, the server must close TCP within
    EOF_TIMEOUT; when the server fails the connection we do not answer its close frame, it must
    close TCP on its own (7.1.7). Over HTTP/2 (RFC 8441) the WebSocket's stream takes the place of the
    TCP connection: the server must end it (END_STREAM, or RST_STREAM as a TCP reset).
  Our role "server" (client suite): after the close handshake we close TCP; the client must not have
    closed it before us. When the client fails the connection we answer its close and close TCP.
"""

import fnmatch
import os

from rawws import OP_CONTINUATION, OP_TEXT, apply_mask, describe_close, describe_events, encode_frame, encode_header

EOF_TIMEOUT = 1.0
PREMATURE_CLOSE_WINDOW = 0.02


class CaseFailure(Exception):
    pass


class Case:
    def __init__(self, case_id, description, expectation, run, timeout=2.0, deflate=None):
        self.id = case_id
        self.description = description
        self.expectation = expectation
        self.run = run
        self.timeout = timeout  # bound for each wait of the case (events, close frame)
        self.deflate = deflate  # compression_cases.DeflateSpec: the case runs with permessage-deflate

    def sort_key(self):
        return tuple(int(p) for p in self.id.split("."))


def select_cases(cases, patterns):
    if not patterns:
        return list(cases)
    wanted = []
    for pattern in patterns:
        wanted += [p.strip() for p in pattern.split(",") if p.strip()]
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in wanted)]


class Tester:
    def __init__(self, conn, case, echo_close_reason=True):
        self.conn = conn
        self.case = case
        self.timeout = case.timeout
        self.echo_close_reason = echo_close_reason
        self.role = conn.role

    # -- sending

    def frame(self, opcode, payload=b"", fin=True, rsv=0, chop=None, sync=False):
        self.conn.send_frame(opcode, payload, fin=fin, rsv=rsv, chop=chop, sync=sync)

    def message(self, opcode, payload, fragment_size=None, chop=None, sync=False):
        """A whole message, optionally cut into frames of fragment_size octets."""
        payload = bytes(payload)
        if not fragment_size or len(payload) <= fragment_size:
            self.frame(opcode, payload, chop=chop, sync=sync)
            return
        pieces = [payload[i : i + fragment_size] for i in range(0, len(payload), fragment_size)]
        frames = bytearray()
        for index, piece in enumerate(pieces):
            frames += encode_frame(opcode if index == 0 else OP_CONTINUATION, piece, fin=index == len(pieces) - 1,
                                   mask=self.conn.mask_outgoing)
        self.conn.note("send %s message of %d bytes in %d frames" % (
            "text" if opcode == OP_TEXT else "binary", len(payload), len(pieces)))
        self.conn.queue_bytes(bytes(frames), chop=chop, sync=sync)

    def compressed_message(self, opcode, payload, fragment_size=None):
        """A whole message compressed under the agreed parameters, RSV1 on its first frame; the compressed
        payload is cut into frames of fragment_size octets, as Autobahn's auto-fragmentation does."""
        conn = self.conn
        data = conn.deflate.compress(bytes(payload))
        size = fragment_size or max(1, len(data))
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        frames = bytearray()
        for index, piece in enumerate(pieces):
            frames += encode_frame(opcode if index == 0 else OP_CONTINUATION, piece, fin=index == len(pieces) - 1,
                                   rsv=4 if index == 0 else 0, mask=conn.mask_outgoing)
        conn.note("send compressed %s message of %d bytes as %d bytes in %d frames" % (
            "text" if opcode == OP_TEXT else "binary", len(payload), len(data), len(pieces)))
        conn.queue_bytes(bytes(frames))

    def frame_in_parts(self, opcode, payload, cuts):
        """One frame whose bytes are returned in parts: header + payload[:cuts[0]], payload[cuts[0]:cuts[1]], ...
        The caller queues each part with self.raw() when it likes (Autobahn 6.4.3/6.4.4)."""
        payload = bytes(payload)
        key = os.urandom(4) if self.conn.mask_outgoing else None
        header = encode_header(opcode, len(payload), True, 0, key)
        body = apply_mask(payload, key) if key else payload
        bounds = [0] + list(cuts) + [len(body)]
        parts = [body[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]
        parts[0] = header + parts[0]
        return parts

    def raw(self, data):
        self.conn.note("send raw %d bytes" % len(data))
        self.conn.queue_bytes(data, sync=True)

    def close(self, code=None, reason=b"", raw=None):
        self.conn.send_close(code, reason, raw)

    # -- waiting

    def wait(self, seconds):
        self.conn.wait(seconds)

    def closed_or_failed(self):
        return self.conn.close is not None or self.conn.eof

    def wait_for_events(self, count, timeout=None):
        conn = self.conn
        return conn.run_until(lambda: len(conn.events) >= count or conn.close is not None or conn.eof,
                              self.timeout if timeout is None else timeout) and len(conn.events) >= count

    # -- checks

    def fail(self, reason):
        raise CaseFailure(reason)

    def check_violations(self):
        if self.conn.violations:
            extra = " (+%d more)" % (len(self.conn.violations) - 1) if len(self.conn.violations) > 1 else ""
            self.fail("peer protocol violation: %s%s" % (self.conn.violations[0], extra))

    def events_before_close(self):
        conn = self.conn
        return conn.events_before_close if conn.close is not None else conn.events

    def check_events(self, expected, context):
        got = self.events_before_close()
        if got != list(expected):
            self.fail("%s: expected %s, got %s" % (context, describe_events(expected), describe_events(got)))

    def peer_name(self):
        return "server" if self.role == "client" else "client"

    # -- outcomes

    def expect_echo(self, expected, close_code=1000, close_reason=b"", timeout=None):
        """Autobahn's closedByMe outcome: the expected events arrive, then we close and the peer answers."""
        conn = self.conn
        expected = list(expected)
        timeout = self.timeout if timeout is None else timeout
        conn.run_until(lambda: len(conn.events) >= len(expected) or conn.close is not None or conn.eof, timeout)
        self.check_violations()
        got = self.events_before_close()
        if conn.close is not None:
            self.fail("%s sent %s, expected %s first (got %s)" % (self.peer_name(), describe_close(conn.close),
                                                                  describe_events(expected), describe_events(got)))
        if conn.eof:
            self.fail("%s without a close frame; expected %s, got %s" % (
                conn.ended(), describe_events(expected), describe_events(got)))
        if len(got) < len(expected):
            self.fail("timeout after %.1f s: expected %s, got %s" % (timeout, describe_events(expected),
                                                                   describe_events(got)))
        if got[: len(expected)] != expected:
            self.fail("expected %s, got %s" % (describe_events(expected), describe_events(got)))
        self.close(close_code, close_reason)
        self.expect_close_reply(close_code, close_reason, events=expected, timeout=timeout)

    def expect_close_reply(self, code, reason=b"", events=(), timeout=None):
        """We sent a close frame; the peer must answer with `code` (None: an empty close frame)."""
        conn = self.conn
        timeout = self.timeout if timeout is None else timeout
        conn.run_until(lambda: conn.close is not None or conn.eof, timeout)
        self.check_violations()
        if conn.close is None:
            if conn.eof:
                self.fail("%s without a close frame in reply to ours (got %s)" % (
                    conn.ended(), describe_events(conn.events)))
            self.fail("no close frame within %.1f s after ours (got %s)" % (timeout, describe_events(conn.events)))
        self.check_events(events, "before the close frame")
        got_code, got_reason, raw = conn.close
        if code is None:
            if raw:
                self.fail("expected an empty close frame in reply to our empty one, got %s" % describe_close(conn.close))
        elif got_code != code:
            self.fail("expected close %d in reply, got %s" % (code, describe_close(conn.close)))
        elif self.echo_close_reason and got_reason != (reason.encode() if isinstance(reason, str) else reason):
            self.fail("expected the close reason %r echoed, got %s" % (reason, describe_close(conn.close)))
        self.finish_close_handshake(peer_answered=True)

    def expect_fail(self, code, events=(), timeout=None):
        """The peer must fail the connection with close code `code` after exactly `events`."""
        conn = self.conn
        timeout = self.timeout if timeout is None else timeout
        conn.run_until(lambda: conn.close is not None or conn.eof, timeout)
        self.check_violations()
        if conn.close is None:
            if conn.eof:
                self.fail("%s without a close frame (expected close %d; got %s)" % (
                    conn.ended(), code, describe_events(conn.events)))
            self.fail("the %s did not fail the connection: no close frame within %.1f s (expected %d; got %s)" % (
                self.peer_name(), timeout, code, describe_events(conn.events)))
        self.check_events(events, "before the close frame")
        if conn.close[0] != code:
            self.fail("expected close %d, got %s" % (code, describe_close(conn.close)))
        self.finish_close_handshake(peer_answered=False)

    def finish_close_handshake(self, peer_answered):
        """The close frames are exchanged (or the peer failed the connection); apply the TCP rule."""
        conn = self.conn
        if self.role == "client":
            if not conn.run_until(lambda: conn.eof, EOF_TIMEOUT):
                self.fail("the server sent %s but did not close the %s within %.1f s%s" % (
                    describe_close(conn.close), conn.carrier, EOF_TIMEOUT,
                    "" if conn.sent_close else " (RFC 6455 7.1.7: failing the connection closes it without"
                                               " waiting for our close frame)"))
            self.check_violations()
            return  # the suite releases the connection (over HTTP/2 it first checks the connection is open)
        if peer_answered:
            # The client answered our close: it should now wait for us to close TCP (7.1.1), or to end
            # the stream over HTTP/2.
            if conn.run_until(lambda: conn.eof, PREMATURE_CLOSE_WINDOW):
                self.fail("the client ended the %s before the server did (%s; RFC 6455 7.1.1)" % (
                    conn.carrier, conn.ended()))
        else:
            if not conn.sent_close:
                conn.send_close(conn.close[0], b"")
            conn.flush(0.5)
        self.check_violations()
        conn.shutdown_and_close()
