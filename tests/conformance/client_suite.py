#!/usr/bin/python3
"""duplex conformance suite, client side: a raw WebSocket server that plays Autobahn's fuzzingserver.

  client_suite.py --client PATH_TO_duplex-autobahn-client [--case 6.4.*] [--verbose] [--timeout SECONDS]
                  [--tls --make-certs examples/tls_echo/make-certs.sh --certs DIR] [--http2]

With --tls the fuzzing server speaks wss://: make-certs.sh makes a throwaway CA and server certificate in
DIR, every accepted connection runs the TLS handshake as a server with them, and the client is started
with a wss:// URL and `--ca DIR/ca.pem`, so its TLS layer carries every case.

With --http2 (and python3-h2) the fuzzing server speaks HTTP/2 instead of HTTP/1.1 upgrades, and the
client is started with `--http2` appended (the URL stays ws:// or wss://): h2c with prior knowledge, or with
--tls h2, where ALPN offers "h2" only. Our SETTINGS carry ENABLE_CONNECT_PROTOCOL = 1, and every WebSocket
is an RFC 8441 extended CONNECT stream (h2transport.ServerConnection / ServerStream): :method CONNECT,
:protocol websocket, :scheme http or https as the connection is, :path, :authority,
sec-websocket-version 13, and no sec-websocket-key, Upgrade or Connection; we answer :status 200 (with
sec-websocket-extensions as over HTTP/1.1) and run the same case over the stream: our frames go in DATA
frames, the client's DATA is the WebSocket's byte stream, its windows reopened as we read it. The stream's
end takes the TCP connection's place (RFC 8441 5): after the close handshake we end the stream first
(END_STREAM) and the client must not have reset it (RST_STREAM, or its closed connection) before; its
END_STREAM after its close frame is a half-close, which may come first. The client may open its HTTP/2
connections one per WebSocket or share them, at once or one after another; their requests are served one
at a time. An HTTP/2 protocol error or a GOAWAY with an error code from the client fails the case it falls
in (`the HTTP/2 connection failed: ...`), or the run (`FAIL session: ...`).

Listens on 127.0.0.1 (a free port) and runs `PATH ws://127.0.0.1:PORT duplex`, which, like any
Autobahn test client, upgrades
  /getCaseCount                      reads one text message: the number of cases, here the selected ones;
                                     we then close with 1000 and the client answers
  /getCaseInfo?case=N                (optional) reads one text message, JSON {"id": ..., "description": ...},
                                     then the same close; a client learns which parameters to offer
  /runCase?case=N&agent=duplex       for N in 1..count: echoes every message back (same type, whole
                                     message) until we close (it answers with the same code) or the
                                     connection fails
  /updateReports?agent=duplex        and closes
Case N is the N-th selected case of autobahn_cases.py, run with the roles reversed: our frames are
unmasked, the client's must all be masked, and on bad input from us the client must fail the connection
with the right close code (1002 / 1007), sent masked. After the close handshake we close TCP first
(RFC 6455 7.1.1) and the client must not have closed it before us.

In the permessage-deflate cases (sections 12-14, compression_cases.py) we answer the client's offers as
Autobahn's fuzzing server does in sections 12 and 13, or with the case's parameters in section 14, and
hold the client to them; in 13.x the client's first offer must ask for the case's parameters.

Output: one line per case, `PASS <id> <description> [time]` or `FAIL <id>: <reason>`, an `exit` line
for the client's exit status, then `N passed, M failed`. Exit status 1 if anything failed.
"""

import argparse
import collections
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import processes  # noqa: E402
from autobahn_cases import CASES  # noqa: E402
from compression_cases import compression_cases  # noqa: E402
from harness import Case, CaseFailure, Tester, select_cases  # noqa: E402
from pmdeflate import Codec, answer_with, autobahn_accept, parse_offers  # noqa: E402
from rawws import (Connection, ConnectionLost, HandshakeError, OP_TEXT, accept_key,  # noqa: E402
                   check_client_request, parse_http_head, read_http_head, send_all)

HOST = "127.0.0.1"
TRACE_LINES = 120


class ClientProcess:
    def __init__(self, path, url, agent, extra_args=()):
        self.proc = subprocess.Popen([path, url, agent] + list(extra_args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.tail = collections.deque(maxlen=40)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in iter(self.proc.stdout.readline, b""):
            self.tail.append(raw.decode("utf-8", "replace").rstrip())

    def running(self):
        return self.proc.poll() is None

    def output_summary(self):
        return ("; output: " + " | ".join(list(self.tail)[-5:])) if self.tail else ""

    def stop(self, grace):
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            processes.stop(self.proc)
            return False
        return True


def respond(sock, status, reason, headers=(), body=b""):
    lines = ["HTTP/1.1 %d %s" % (status, reason)] + list(headers)
    if status != 101:
        lines += ["Content-Length: %d" % len(body), "Connection: close"]
    send_all(sock, ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)


class Upgrade:
    """An HTTP/1.1 upgrade request, answered as h2transport.ServerStream answers an extended CONNECT."""

    def __init__(self, sock, headers, rest):
        self.sock, self.headers, self.rest = sock, headers, rest

    def reject(self, status, reason):
        respond(self.sock, status, reason)

    def accept(self, extension, verbose):
        respond(self.sock, 101, "Switching Protocols",
                ["Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Accept: %s" % accept_key(self.headers["sec-websocket-key"][0])] +
                (["Sec-WebSocket-Extensions: %s" % extension] if extension else []))
        return Connection(self.sock, "server", initial=self.rest, verbose=verbose)


class FuzzingServer:
    def __init__(self, cases, verbose):
        self.cases = cases
        self.verbose = verbose
        self.results = {}  # case index (0-based) -> passed
        self.updated = False
        self.problems = []  # protocol trouble outside the cases (getCaseCount, updateReports, unknown requests)
        self.notes = []

    def report(self, index, passed, reason, elapsed, trace):
        case = self.cases[index]
        if index in self.results:
            passed, reason = False, "the client ran this case twice (second run: %s)" % (reason or "passed")
        self.results[index] = passed
        if passed:
            print("PASS %s %s [%.2f s]" % (case.id, case.description, elapsed))
        else:
            print("FAIL %s: %s" % (case.id, reason))
        if self.verbose:
            if len(trace) > TRACE_LINES:
                trace = trace[: TRACE_LINES // 2] + ["   ... %d lines ..." % (len(trace) - TRACE_LINES)] + \
                    trace[-TRACE_LINES // 2:]
            for line in trace:
                print("      " + line)
        sys.stdout.flush()

    def session_checks(self, what, conn):
        """Protocol violations outside the cases fail the run; a missing close handshake is only noted."""
        for violation in conn.violations:
            self.problems.append("%s: %s" % (what, violation))
        if conn.close is None:
            self.notes.append("%s: the client %s without a close frame" % (
                what, "closed the TCP connection" if conn.eof else "did not close the connection"))

    def negotiate(self, spec, headers):
        """The answer to the client's permessage-deflate offers: (Sec-WebSocket-Extensions value, Negotiated)."""
        try:
            offers = parse_offers(headers.get("sec-websocket-extensions", []))
        except ValueError as exc:
            raise CaseFailure("malformed Sec-WebSocket-Extensions %r: %s" % (
                headers.get("sec-websocket-extensions"), exc))
        problem = spec.client_offer_problem(offers)
        if problem:
            raise CaseFailure(problem)
        if spec.rules is not None:
            result = autobahn_accept(offers, spec.rules)
            if result is None:
                raise CaseFailure("no offer of the client lets the server accept as the case does (%s): offers %r" % (
                    spec.rules, headers.get("sec-websocket-extensions")))
        else:
            result = answer_with(offers, spec.wanted)
            if result[1] != spec.wanted:
                raise CaseFailure("the client's offer %r does not let the server agree on %s (only on %s)" % (
                    headers.get("sec-websocket-extensions"), spec.wanted, result[1]))
        return result

    def handle(self, sock):
        """One HTTP/1.1 connection: its upgrade request, then the WebSocket."""
        head, rest = read_http_head(sock, 5.0)
        start, headers = parse_http_head(head)
        parts = start.split(" ")
        if len(parts) != 3:
            respond(sock, 400, "Bad Request")
            self.problems.append("malformed request line %r" % start)
            return
        method, target, version = parts
        problem = check_client_request(method, target, version, headers)
        self.serve(Upgrade(sock, headers, rest), target, headers, problem)

    def handle_h2(self, stream):
        """One request on an HTTP/2 connection (h2transport.ServerStream): its extended CONNECT, then the
        WebSocket over the stream."""
        try:
            self.serve(stream, stream.target, stream.headers, stream.request_problem())
        finally:
            stream.close()
            if stream.link.failure is not None:  # the stream's outcome (or the exception) reported it
                stream.link.failure_reported = True

    def serve(self, exchange, target, headers, problem):
        """Answers a WebSocket request (`problem`: why it is not a valid one, or None) through `exchange`
        (reject(status, reason) or accept(extension, verbose), which returns the rawws.Connection) and
        runs what its target asks for."""
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query)
        index = None
        if url.path == "/runCase":
            try:
                index = int(query.get("case", [""])[0]) - 1
            except ValueError:
                index = -1
            if not 0 <= index < len(self.cases):
                exchange.reject(404, "Not Found")
                self.problems.append("request for a case that does not exist: %r" % target)
                return
            if query.get("agent", [""])[0] == "":
                problem = problem or "no agent in %r" % target
        elif url.path == "/getCaseInfo":
            try:
                index = int(query.get("case", [""])[0]) - 1
            except ValueError:
                index = -1
            if not 0 <= index < len(self.cases):
                exchange.reject(404, "Not Found")
                self.problems.append("getCaseInfo for a case that does not exist: %r" % target)
                return
            info_index, index = index, None
        elif url.path not in ("/getCaseCount", "/updateReports"):
            exchange.reject(404, "Not Found")
            self.problems.append("request for an unknown resource %r" % target)
            return
        if problem:
            exchange.reject(400, "Bad Request")
            if index is not None:
                self.report(index, False, "opening handshake: %s" % problem, 0.0, [])
            else:
                self.problems.append("opening handshake of %s: %s" % (url.path, problem))
            return
        extension = negotiated = None
        if index is not None and self.cases[index].deflate is not None:
            try:
                extension, negotiated = self.negotiate(self.cases[index].deflate, headers)
            except CaseFailure as failure:
                exchange.reject(400, "Bad Request")
                self.report(index, False, "opening handshake: %s" % failure, 0.0, [])
                return
        conn = exchange.accept(extension, self.verbose)
        if negotiated is not None:
            conn.deflate = Codec("server", negotiated)
            conn.note("permessage-deflate: %s (answer %r)" % (negotiated, extension))
        if url.path in ("/getCaseCount", "/getCaseInfo"):
            if url.path == "/getCaseCount":
                message = str(len(self.cases))
            else:
                case = self.cases[info_index]
                message = json.dumps({"id": case.id, "description": case.description})
            conn.send_frame(OP_TEXT, message.encode("utf-8"))
            conn.send_close(1000)
            conn.run_until(lambda: conn.close is not None or conn.eof, 5.0)
            self.session_checks(url.path[1:], conn)
            conn.shutdown_and_close()
        elif url.path == "/updateReports":
            self.updated = True
            conn.run_until(lambda: conn.close is not None or conn.eof, 2.0)
            if conn.close is not None:
                conn.send_close(conn.close[0], b"")
            else:
                conn.send_close(1000)
                conn.run_until(lambda: conn.close is not None or conn.eof, 2.0)
            conn.flush(1.0)
            self.session_checks("updateReports", conn)
            conn.shutdown_and_close()
        else:
            case = self.cases[index]
            if self.verbose:
                print("---- %s  %s\n     expected: %s" % (case.id, case.description, case.expectation))
            started = time.monotonic()
            try:
                case.run(Tester(conn, case, echo_close_reason=False))
                outcome = (True, None)
            except CaseFailure as failure:
                outcome = (False, str(failure))
            except ConnectionLost as exc:
                outcome = (False, "the HTTP/2 connection failed: %s" % exc)
            except OSError as exc:
                outcome = (False, "socket error: %s" % exc)
            except Exception:
                outcome = (False, "suite error: " + traceback.format_exc().strip().replace("\n", " | "))
            finally:
                conn.abort()
            self.report(index, outcome[0], outcome[1], time.monotonic() - started, conn.trace)


h2transport = None  # with --http2: the module (it needs python3-h2)


class HTTP2Links:
    """With --http2: the HTTP/2 connections the client opened (h2transport.ServerConnection), any number at
    once; their requests are served one at a time, in the order they came on each connection."""

    def __init__(self, server):
        self.server = server
        self.links = []
        self.opened = 0

    def add(self, sock):
        """A new connection (TLS done); False when it cannot carry HTTP/2 (then the caller closes it)."""
        self.opened += 1
        link = h2transport.ServerConnection(sock, self.opened)
        problem = link.alpn_problem()
        if problem:
            self.server.problems.append("%s: %s" % (link.name(), problem))
            return False
        self.links.append(link)
        return True

    def next_request(self):
        for link in self.links:
            if link.requests:
                link.served += 1
                return link.requests.popleft()
        return None

    def poll(self, others, timeout):
        """Reads and writes what the connections have, drops those that are over; returns which of `others`
        (the listener) are readable."""
        readable = h2transport.poll(self.links, others, timeout)
        for link in [l for l in self.links if l.finished() and not l.requests]:
            self.links.remove(link)
            self.drop(link)
        return readable

    def drop(self, link):
        """A connection is over: an HTTP/2 error no stream's outcome has reported, or a connection that
        carried no request, is a problem of the run."""
        if link.failure is not None and not link.failure_reported:
            self.server.problems.append("%s: %s" % (link.name(), link.failure))
        elif link.served == 0:
            self.server.problems.append("%s ended without a request (%s)" % (
                link.name(), link.lost or "the client sent GOAWAY"))
        link.close()

    def serve_until(self, predicate, timeout):
        """After the run: keeps the connections served until predicate() holds, at most `timeout`; returns
        the time left."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.poll([], min(0.05, max(0.0, deadline - time.monotonic())))
        return max(0.0, deadline - time.monotonic())

    def close_all(self):
        for link in self.links:
            if link.failure is not None and not link.failure_reported:
                self.server.problems.append("%s: %s" % (link.name(), link.failure))
            link.close()
        self.links = []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", required=True, help="path to the test client (duplex-autobahn-client)")
    parser.add_argument("--case", action="append", help="glob over case ids, e.g. '6.4.*' (repeatable, or commas)")
    parser.add_argument("--verbose", action="store_true", help="describe each case and trace its frames")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound for the whole run (default 300 s)")
    parser.add_argument("--idle", type=float, default=30.0,
                        help="give up when the client opens no connection for this long (default 30 s)")
    parser.add_argument("--full-compression", action="store_true",
                        help="sections 12 and 13 with Autobahn's 1000 messages per case (slow)")
    parser.add_argument("--tls", action="store_true", help="serve every case over wss:// (needs --make-certs and --certs)")
    parser.add_argument("--make-certs", help="path to examples/tls_echo/make-certs.sh")
    parser.add_argument("--certs", help="directory for the throwaway CA and server certificate")
    parser.add_argument("--http2", action="store_true",
                        help="serve every WebSocket over HTTP/2 (RFC 8441): h2c, or h2 with --tls; needs python3-h2")
    args = parser.parse_args()
    tls_context, scheme, client_args = None, "ws", []
    if args.http2:
        global h2transport
        try:
            import h2transport
        except ImportError as missing:
            print("FAIL: --http2 needs python3-h2 (%s); run with /usr/bin/python3" % missing)
            print("0 passed, 1 failed")
            return 1
    if args.tls:
        if not args.make_certs or not args.certs:
            parser.error("--tls needs --make-certs and --certs")
        subprocess.run(["bash", args.make_certs, args.certs], check=True, timeout=60, stdout=subprocess.DEVNULL)
        tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_context.minimum_version = ssl.TLSVersion.TLSv1_2
        tls_context.load_cert_chain(os.path.join(args.certs, "server.pem"), os.path.join(args.certs, "server.key"))
        scheme, client_args = "wss", ["--ca", os.path.join(args.certs, "ca.pem")]
        if args.http2:
            tls_context.set_alpn_protocols(["h2"])
    if args.http2:
        client_args.append("--http2")

    cases = select_cases(sorted(CASES + compression_cases(args.full_compression), key=Case.sort_key), args.case)
    if not cases:
        print("no case matches %s" % args.case)
        print("0 passed, 0 failed")
        return 1
    started = time.monotonic()
    deadline = started + args.timeout
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    server = FuzzingServer(cases, args.verbose)
    client = ClientProcess(args.client, "%s://%s:%d" % (scheme, HOST, port), "duplex", client_args)
    if args.verbose:
        print("fuzzing server on port %d, client pid %d" % (port, client.proc.pid))
    links = HTTP2Links(server) if args.http2 else None
    stop_reason = None
    last_activity = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                stop_reason = "the whole run exceeded --timeout %.0f s" % args.timeout
                break
            if now - last_activity > args.idle:
                stop_reason = "the client opened no connection for %.0f s" % args.idle
                break
            stream = links.next_request() if links is not None else None
            if stream is not None:
                try:
                    server.handle_h2(stream)
                except (ConnectionLost, OSError) as exc:
                    server.problems.append("%s, stream %d (%s): %s" % (
                        stream.link.name(), stream.sid, stream.target, exc))
                last_activity = time.monotonic()
                if server.updated:
                    stop_reason = "updateReports"
                    break
                continue
            if links is not None:
                readable = links.poll([listener], 0.2)
            else:
                readable, _, _ = select.select([listener], [], [], 0.2)
            if not readable:
                if not client.running():
                    stop_reason = "the client exited"
                    break
                continue
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            kept = False
            try:
                if tls_context is not None:
                    sock.settimeout(10.0)  # bounds the TLS handshake
                    sock = tls_context.wrap_socket(sock, server_side=True)
                sock.setblocking(False)
                if links is not None:
                    kept = links.add(sock)
                else:
                    server.handle(sock)
            except (HandshakeError, OSError) as exc:
                server.problems.append("%s: %s" % (type(exc).__name__, exc))
            finally:
                if not kept:
                    sock.close()
            last_activity = time.monotonic()
            if server.updated:
                stop_reason = "updateReports"
                break
    finally:
        grace = 10.0 if stop_reason in ("updateReports", "the client exited") else 0.0
        if links is not None:  # its connections stay served (PING, GOAWAY) until the client exits
            grace = links.serve_until(lambda: not client.running(), grace)
            links.close_all()
        exited = client.stop(grace=grace)
        listener.close()

    passed = sum(1 for ok in server.results.values() if ok)
    failed = len(server.results) - passed
    for index, case in enumerate(cases):
        if index not in server.results:
            failed += 1
            print("FAIL %s: not run by the client (%s%s)" % (case.id, stop_reason, client.output_summary()))
    for problem in server.problems:
        failed += 1
        print("FAIL session: %s" % problem)
    for note in server.notes:
        print("NOTE %s" % note)
    status = client.proc.returncode
    if exited and status == 0 and server.updated:
        passed += 1
        print("PASS exit the client called updateReports and exited with status 0")
    else:
        failed += 1
        print("FAIL exit: %s%s" % (
            "the client did not exit within 10 s after updateReports and was killed" if not exited else
            "the client exited with status %s%s" % (status, "" if server.updated else " without calling updateReports"),
            client.output_summary()))
    if args.verbose:
        print("run time %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
