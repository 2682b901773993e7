#!/usr/bin/python3
"""duplex conformance suite, server side: a raw WebSocket client against an echo server.

  server_suite.py --echo PATH_TO_duplex-echo [--case 6.4.*] [--verbose] [--timeout SECONDS]
                  [--tls --make-certs examples/tls_echo/make-certs.sh --certs DIR] [--http2]

Starts `PATH --urls http://127.0.0.1:0`, reads the port from its line
`duplex-echo listening on http://127.0.0.1:PORT`, runs the handshake cases (0.x) and the Autobahn
cases (sections 1-7, 9, 10; see autobahn_cases.py) over fresh connections to /ws, one at a time, and
finally checks the server process is still alive (the "alive" line counts as one more result).
The permessage-deflate cases (0.11-0.14, sections 12-14; see compression_cases.py) run against a second
process, `PATH --compression --urls ...`, started when a selected case needs it.

The echo server echoes every received chunk with the same message type and end-of-message flag, so
echoed messages may be fragmented differently from what was sent: they are reassembled before being
compared. It answers a close frame with the same code and reason (an empty one with an empty one).

With --tls every case runs over wss://: make-certs.sh makes a throwaway CA and server certificate in DIR,
the echo server listens on https://127.0.0.1:0 with them, and each raw connection runs its TLS handshake
(trusting that CA) before the case; the server's TLS layer then carries every frame, fragment, close and
failure of the suite.

With --http2 the echo server also gets --h2c and each case's WebSocket is an RFC 8441 extended CONNECT on
a new HTTP/2 connection (see h2transport.py; needs Debian's python3-h2): h2c with prior knowledge, or with
--tls h2 (ALPN). The stream's end takes the place of the TCP connection's (END_STREAM or RST_STREAM), the
HTTP/2 connection must stay open (a PING is answered after each case), and the HTTP/1.1 handshake cases
0.1-0.10 are skipped; the permessage-deflate negotiation cases 0.11-0.14 run over the CONNECT.

Output: one line per case, `PASS <id> <description> [time]` or `FAIL <id>: <reason>`, then
`N passed, M failed`. Exit status 1 if anything failed.
"""

import argparse
import collections
import functools
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autobahn_cases import CASES  # noqa: E402
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import processes  # noqa: E402
from compression_cases import compression_cases  # noqa: E402
from harness import Case, CaseFailure, Tester, select_cases  # noqa: E402
from pmdeflate import Codec, Negotiated, Params, check_response  # noqa: E402
import rawws  # noqa: E402
from rawws import (ConnectionLost, HandshakeError, OP_BINARY, OP_TEXT, check_upgrade_response, connect,  # noqa: E402
                   header_tokens, http_request, open_client, upgrade_request)

HOST = "127.0.0.1"
# Opens a case's WebSocket: the HTTP/1.1 upgrade, or with --http2 an extended CONNECT (main() sets it).
open_websocket = open_client
LISTENING = re.compile(r"listening on https?://(\[[^\]]+\]|[^:/\s]+):(\d+)")
TRACE_LINES = 120


# --------------------------------------------------------------------------------------------------
# Handshake cases (not in Autobahn's numbering)


def handshake_case(case_id, description, expected_status, omit=(), extra=(), key=None, version="13", path="/ws",
                   raw=None, check=None):
    def run(port):
        sock = connect(HOST, port)
        try:
            if raw is not None:
                request, request_key = raw(port), None
            else:
                request, request_key = upgrade_request(HOST, port, path=path, key=key, extra=extra, omit=omit,
                                                       version=version)
            status, start, headers, _rest = http_request(sock, request)
            if status != expected_status:
                raise CaseFailure("expected status %d, got %r" % (expected_status, start))
            if check:
                problem = check(headers, request_key)
                if problem:
                    raise CaseFailure(problem)
        finally:
            sock.close()
    return Case(case_id, description, "HTTP %d" % expected_status, run)


def accepted(headers, key):
    return check_upgrade_response(101, headers, key)


def version_advertised(headers, _key):
    if header_tokens(headers, "sec-websocket-version") != ["13"]:
        return "426 without 'Sec-WebSocket-Version: 13' (got %r)" % headers.get("sec-websocket-version")
    return None


def run_0_1(port):
    """A valid upgrade, then a message and a clean close over it."""
    conn = open_client(HOST, port, "/ws")
    case = Case("0.1", "", "", None)
    try:
        tester = Tester(conn, case)
        tester.frame(OP_TEXT, b"handshake ok")
        tester.expect_echo([("message", OP_TEXT, b"handshake ok")])
    finally:
        conn.abort()


def plain_get(port):
    return ("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/html\r\n\r\n" % (HOST, port)).encode("ascii")


HANDSHAKE_CASES = [
    Case("0.1", "Valid upgrade of GET /ws: 101 with the right Sec-WebSocket-Accept; echo and close work.",
         "HTTP 101", run_0_1),
    handshake_case("0.2", "Upgrade without Sec-WebSocket-Key.", 400, omit=("sec-websocket-key",)),
    handshake_case("0.3", "Upgrade with a Sec-WebSocket-Key that is not base64.", 400, key="not a base64 key!!"),
    handshake_case("0.4", "Upgrade with a Sec-WebSocket-Key that is the base64 of 8 bytes, not 16.", 400,
                   key="AAECAwQFBgc="),
    handshake_case("0.5", "Upgrade with Sec-WebSocket-Version: 8.", 426, version="8", check=version_advertised),
    handshake_case("0.6", "Upgrade without the Upgrade header.", 400, omit=("upgrade",)),
    handshake_case("0.7", "Upgrade without the Connection header.", 400, omit=("connection",)),
    handshake_case("0.8", "Plain GET /ws without any upgrade header.", 400, raw=plain_get),
    handshake_case("0.9", "Valid upgrade of a path other than /ws (GET /other).", 404, path="/other"),
    handshake_case("0.10", "Valid upgrade with browser-style headers: 'Upgrade: WebSocket' and "
                   "'Connection: keep-alive, Upgrade'.", 101,
                   omit=("upgrade", "connection"), extra=("Upgrade: WebSocket", "Connection: keep-alive, Upgrade"),
                   key="dGhlIHNhbXBsZSBub25jZQ==", check=accepted),
]


# --------------------------------------------------------------------------------------------------
# permessage-deflate negotiation (RFC 7692 5, 7.1)


def negotiate(conn, offers, expected, accepted_index=0):
    """Checks the server's answer to our offers and switches the connection to compression."""
    values = conn.response_headers.get("sec-websocket-extensions", [])
    try:
        result = check_response(offers, values)
    except ValueError as exc:
        raise CaseFailure("invalid permessage-deflate answer %r: %s" % (values, exc))
    if result is None:
        raise CaseFailure("the server declined permessage-deflate (101 without Sec-WebSocket-Extensions)")
    index, negotiated = result
    if index != accepted_index:
        raise CaseFailure("the server's answer %r accepts offer %d, expected offer %d" % (
            values, index + 1, accepted_index + 1))
    if negotiated != expected:
        raise CaseFailure("the answer %r agrees on %s, expected %s" % (values, negotiated, expected))
    conn.deflate = Codec("client", negotiated)
    conn.note("permessage-deflate: %s (answer %r)" % (negotiated, values))


def open_compressed(port, spec, verbose=False):
    conn = open_websocket(HOST, port, "/ws", verbose=verbose, extensions=spec.offer_header())
    try:
        negotiate(conn, spec.offers, spec.expected)
    except BaseException:
        conn.abort()
        raise
    return conn


def check_still_open(conn):
    """Over HTTP/2 the connection must outlive the WebSocket's stream (h2transport.StreamSocket.check_open)."""
    if hasattr(conn.sock, "check_open"):
        conn.sock.check_open()


def echo_and_close(conn, case, compressed):
    """One text and one binary message through the echo, then a clean close."""
    tester = Tester(conn, case)
    messages = [(OP_TEXT, b"permessage-deflate " * 20), (OP_BINARY, bytes(range(256)) * 4)]
    for opcode, payload in messages:
        if compressed:
            tester.compressed_message(opcode, payload)
        else:
            tester.message(opcode, payload)
    tester.expect_echo([("message", opcode, payload) for opcode, payload in messages])
    if compressed and conn.uncompressed_messages:
        raise CaseFailure("the server sent %d of its messages uncompressed" % conn.uncompressed_messages)


def deflate_handshake_case(case_id, description, expectation, offers_header, offers=None, expected=None,
                           accepted_index=0, server="compression"):
    """An upgrade with the given Sec-WebSocket-Extensions value. With `expected`, the answer must accept
    offers[accepted_index] with exactly those parameters, else it must decline; then an echo."""
    def run(port):
        conn = open_websocket(HOST, port, "/ws", extensions=offers_header)
        try:
            if expected is None:
                values = conn.response_headers.get("sec-websocket-extensions", [])
                if values:
                    raise CaseFailure("expected no Sec-WebSocket-Extensions in the 101, got %r" % values)
            else:
                negotiate(conn, offers, expected, accepted_index)
            echo_and_close(conn, case, compressed=expected is not None)
            check_still_open(conn)
        finally:
            conn.abort()
    case = Case(case_id, description, expectation, run)
    case.server = server
    return case


DEFAULT_OFFER = "permessage-deflate; client_max_window_bits"

# With --http2 these run over the extended CONNECT; 0.1-0.10 are HTTP/1.1 upgrade requests.
HTTP2_HANDSHAKE_CASES = ("0.11", "0.12", "0.13", "0.14")

HANDSHAKE_CASES += [
    deflate_handshake_case(
        "0.11", "permessage-deflate offered to the echo server without --compression.",
        "Declined: 101 without Sec-WebSocket-Extensions; uncompressed echo.", DEFAULT_OFFER, server="plain"),
    deflate_handshake_case(
        "0.12", "Only offers that RFC 7692 7.1 forbids: an unknown parameter, a repeated one, windows 16 and 08, "
        "server_max_window_bits without a value, client_no_context_takeover=1.",
        "Declined: 101 without Sec-WebSocket-Extensions; uncompressed echo.",
        "permessage-deflate; foo, permessage-deflate; server_no_context_takeover; server_no_context_takeover, "
        "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=08, "
        "permessage-deflate; server_max_window_bits, permessage-deflate; client_no_context_takeover=1"),
    deflate_handshake_case(
        "0.13", "An invalid offer, another extension, then a valid offer asking for server_no_context_takeover.",
        "The valid offer is accepted as asked; compressed echo.",
        "permessage-deflate; foo=bar, x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover; "
        "client_max_window_bits",
        offers=[Params(server_no_context_takeover=True, client_max_window_bits=True)],
        expected=Negotiated(server_no_context_takeover=True)),
    deflate_handshake_case(
        "0.14", "An offer with a quoted value: server_max_window_bits=\"10\" (RFC 6455 9.1).",
        "Accepted with a server window of 10 bits; compressed echo within it.",
        "permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits",
        offers=[Params(server_max_window_bits=10, client_max_window_bits=True)],
        expected=Negotiated(server_window=10)),
]


# --------------------------------------------------------------------------------------------------
# The echo server process


class EchoServer:
    def __init__(self, path, extra_args=(), scheme="http"):
        self.path = path
        self.extra_args = list(extra_args)
        self.scheme = scheme
        self.proc = None
        self.lines = queue.Queue()
        self.stderr_tail = collections.deque(maxlen=40)

    def start(self, timeout=15.0):
        self.proc = subprocess.Popen([self.path] + self.extra_args + ["--urls", "%s://%s:0" % (self.scheme, HOST)],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, None), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no 'listening on %s://%s:PORT' line within %.0f s" % (self.scheme, HOST, timeout))
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise RuntimeError("the echo server exited with status %s before listening%s" % (
                        self.proc.returncode, self.stderr_summary()))
                continue
            match = LISTENING.search(line)
            if match:
                return int(match.group(2))

    def _drain(self, stream, sink):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if sink is not None:
                sink.put(line)
            else:
                self.stderr_tail.append(line)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_summary(self):
        if not self.stderr_tail:
            return ""
        return "; stderr: " + " | ".join(list(self.stderr_tail)[-5:])

    def stop(self):
        if self.proc is not None:
            processes.stop(self.proc)


# --------------------------------------------------------------------------------------------------
# Running


def server_kind(case):
    """Which echo server a case runs against: "compression" (PATH --compression) or "plain"."""
    if case.deflate is not None:
        return "compression"
    return getattr(case, "server", "plain")


def run_case(case, port, verbose):
    """Returns (passed, reason or None, trace lines)."""
    if case.id.startswith("0."):
        try:
            case.run(port)
            return True, None, []
        except CaseFailure as failure:
            return False, str(failure), []
        except (HandshakeError, OSError, ConnectionLost) as exc:
            return False, "%s: %s" % (type(exc).__name__, exc), []
    conn = None
    try:
        if case.deflate is not None:
            conn = open_compressed(port, case.deflate, verbose)
        else:
            conn = open_websocket(HOST, port, "/ws", verbose=verbose)
        case.run(Tester(conn, case, echo_close_reason=True))
        check_still_open(conn)
        return True, None, conn.trace
    except CaseFailure as failure:
        return False, str(failure), conn.trace if conn else []
    except HandshakeError as exc:
        return False, str(exc), conn.trace if conn else []
    except ConnectionLost as exc:
        return False, "the HTTP/2 connection failed: %s" % exc, conn.trace if conn else []
    except OSError as exc:
        return False, "socket error: %s" % exc, conn.trace if conn else []
    except Exception:  # a bug in the suite must not hide the remaining cases
        return False, "suite error: " + traceback.format_exc().strip().replace("\n", " | "), []
    finally:
        if conn:
            conn.abort()


def print_trace(trace):
    if len(trace) > TRACE_LINES:
        trace = trace[: TRACE_LINES // 2] + ["   ... %d lines ..." % (len(trace) - TRACE_LINES)] + trace[-TRACE_LINES // 2:]
    for line in trace:
        print("      " + line)


def main():
    global open_websocket
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo", required=True, help="path to the echo server binary (duplex-echo)")
    parser.add_argument("--case", action="append", help="glob over case ids, e.g. '6.4.*' (repeatable, or commas)")
    parser.add_argument("--verbose", action="store_true", help="describe each case and trace its frames")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound for the whole run (default 300 s)")
    parser.add_argument("--full-compression", action="store_true",
                        help="sections 12 and 13 with Autobahn's 1000 messages per case (slow)")
    parser.add_argument("--tls", action="store_true", help="run every case over wss:// (needs --make-certs and --certs)")
    parser.add_argument("--make-certs", help="path to examples/tls_echo/make-certs.sh")
    parser.add_argument("--certs", help="directory for the throwaway CA and server certificate")
    parser.add_argument("--api", help="duplex-echo's --api (awaitable, tokens or handlers)")
    parser.add_argument("--http2", action="store_true",
                        help="run the cases over HTTP/2 (RFC 8441): h2c, or h2 with --tls; needs python3-h2")
    args = parser.parse_args()
    scheme, server_args, ca_file = "http", [], None
    if args.tls:
        if not args.make_certs or not args.certs:
            parser.error("--tls needs --make-certs and --certs")
        subprocess.run(["bash", args.make_certs, args.certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
        ca_file = os.path.join(args.certs, "ca.pem")
        rawws.use_tls(ca_file)
        scheme = "https"
        server_args = ["--cert", os.path.join(args.certs, "server.pem"), "--key", os.path.join(args.certs, "server.key")]
    if args.api:
        server_args += ["--api", args.api]

    all_cases = sorted(HANDSHAKE_CASES + CASES + compression_cases(args.full_compression), key=Case.sort_key)
    cases = select_cases(all_cases, args.case)
    if args.http2:
        try:
            import h2transport
        except ImportError as missing:
            print("FAIL: --http2 needs python3-h2 (%s); run with /usr/bin/python3" % missing)
            print("0 passed, 1 failed")
            return 1
        open_websocket = functools.partial(h2transport.open_client, ca_file=ca_file)
        server_args.append("--h2c")
        http1_only = [c for c in cases if c.id.startswith("0.") and c.id not in HTTP2_HANDSHAKE_CASES]
        if http1_only:
            print("SKIP %s: HTTP/1.1 upgrade requests, which do not apply over HTTP/2 "
                  "(tests/http2/rfc8441_test.py checks their extended CONNECT equivalents)" % (
                      ", ".join(c.id for c in http1_only)))
            cases = [c for c in cases if c not in http1_only]
    if not cases:
        print("no case matches %s" % args.case)
        print("0 passed, 0 failed")
        return 1
    started = time.monotonic()
    deadline = started + args.timeout
    passed = failed = 0
    servers = {"plain": EchoServer(args.echo, server_args, scheme),
               "compression": EchoServer(args.echo, ["--compression"] + server_args, scheme)}
    ports = {}
    died_at = {}
    try:
        for case in cases:
            kind = server_kind(case)
            server = servers[kind]
            if kind not in ports:
                try:
                    ports[kind] = server.start()
                except (RuntimeError, OSError) as exc:
                    ports[kind] = None
                    died_at[kind] = "at start: %s" % exc
                if args.verbose and ports[kind]:
                    print("echo server (%s) pid %d listening on port %d" % (kind, server.proc.pid, ports[kind]))
            if kind in died_at or not server.alive():
                died_at.setdefault(kind, "before %s" % case.id)
                print("FAIL %s: not run: the echo server%s is not running (exited with status %s %s)" % (
                    case.id, "" if kind == "plain" else " with --compression",
                    server.proc.returncode if server.proc else None, died_at[kind]))
                failed += 1
                continue
            if time.monotonic() > deadline:
                print("FAIL %s: not run: the whole run exceeded --timeout %.0f s" % (case.id, args.timeout))
                failed += 1
                continue
            if args.verbose:
                print("---- %s  %s\n     expected: %s" % (case.id, case.description, case.expectation))
            case_started = time.monotonic()
            ok, reason, trace = run_case(case, ports[kind], args.verbose)
            elapsed = time.monotonic() - case_started
            if not server.alive():
                time.sleep(0.05)
                died_at[kind] = "during %s" % case.id
                ok = False
                reason = "%sthe echo server exited with status %s%s" % (
                    (reason + "; ") if reason else "", server.proc.returncode, server.stderr_summary())
            if ok:
                passed += 1
                print("PASS %s %s [%.2f s]" % (case.id, case.description, elapsed))
            else:
                failed += 1
                print("FAIL %s: %s" % (case.id, reason))
            if args.verbose:
                print_trace(trace)
            sys.stdout.flush()
        for kind in ports:
            name = "alive" if kind == "plain" else "alive-compression"
            server = servers[kind]
            what = "the echo server" if kind == "plain" else "the echo server with --compression"
            if server.alive():
                passed += 1
                print("PASS %s %s is still running after all cases" % (name, what))
            else:
                failed += 1
                print("FAIL %s: %s exited with status %s %s%s" % (
                    name, what, server.proc.returncode if server.proc else None, died_at.get(kind, ""),
                    server.stderr_summary()))
    finally:
        for server in servers.values():
            server.stop()
    if args.verbose:
        print("run time %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
