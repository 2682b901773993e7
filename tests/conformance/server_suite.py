#!/usr/bin/python3
"""duplex conformance suite, server side: a raw WebSocket client against an echo server.

  server_suite.py --echo PATH_TO_duplex-echo [--case 6.4.*] [--verbose] [--timeout SECONDS]

Starts `PATH --urls http://127.0.0.1:0`, reads the port from its line
`duplex-echo listening on http://127.0.0.1:PORT`, runs the handshake cases (0.x) and the Autobahn
cases (sections 1-7, 9, 10; see autobahn_cases.py) over fresh connections to /ws, one at a time, and
finally checks the server process is still alive (the "alive" line counts as one more result).

The echo server echoes every received chunk with the same message type and end-of-message flag, so
echoed messages may be fragmented differently from what was sent: they are reassembled before being
compared. It answers a close frame with the same code and reason (an empty one with an empty one).

Output: one line per case, `PASS <id> <description> [time]` or `FAIL <id>: <reason>`, then
`N passed, M failed`. Exit status 1 if anything failed.
"""

import argparse
import collections
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
from harness import Case, CaseFailure, Tester, select_cases  # noqa: E402
from rawws import (HandshakeError, OP_TEXT, check_upgrade_response, connect, header_tokens,  # noqa: E402
                   http_request, open_client, upgrade_request)

HOST = "127.0.0.1"
LISTENING = re.compile(r"listening on http://(\[[^\]]+\]|[^:/\s]+):(\d+)")
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
# The echo server process


class EchoServer:
    def __init__(self, path):
        self.path = path
        self.proc = None
        self.lines = queue.Queue()
        self.stderr_tail = collections.deque(maxlen=40)

    def start(self, timeout=15.0):
        self.proc = subprocess.Popen([self.path, "--urls", "http://%s:0" % HOST], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr, None), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("no 'listening on http://%s:PORT' line within %.0f s" % (HOST, timeout))
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
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --------------------------------------------------------------------------------------------------
# Running


def run_case(case, port, verbose):
    """Returns (passed, reason or None, trace lines)."""
    if case.id.startswith("0."):
        try:
            case.run(port)
            return True, None, []
        except CaseFailure as failure:
            return False, str(failure), []
        except (HandshakeError, OSError) as exc:
            return False, "%s: %s" % (type(exc).__name__, exc), []
    conn = None
    try:
        conn = open_client(HOST, port, "/ws", verbose=verbose)
        case.run(Tester(conn, case, echo_close_reason=True))
        return True, None, conn.trace
    except CaseFailure as failure:
        return False, str(failure), conn.trace if conn else []
    except HandshakeError as exc:
        return False, str(exc), conn.trace if conn else []
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo", required=True, help="path to the echo server binary (duplex-echo)")
    parser.add_argument("--case", action="append", help="glob over case ids, e.g. '6.4.*' (repeatable, or commas)")
    parser.add_argument("--verbose", action="store_true", help="describe each case and trace its frames")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound for the whole run (default 300 s)")
    args = parser.parse_args()

    cases = select_cases(sorted(HANDSHAKE_CASES, key=Case.sort_key) + CASES, args.case)
    if not cases:
        print("no case matches %s" % args.case)
        print("0 passed, 0 failed")
        return 1
    started = time.monotonic()
    deadline = started + args.timeout
    passed = failed = 0
    server = EchoServer(args.echo)
    try:
        try:
            port = server.start()
        except (RuntimeError, OSError) as exc:
            for case in cases:
                print("FAIL %s: not run: %s" % (case.id, exc))
            print("0 passed, %d failed" % len(cases))
            return 1
        if args.verbose:
            print("echo server pid %d listening on port %d" % (server.proc.pid, port))
        died_at = None
        for case in cases:
            if died_at is not None or not server.alive():
                died_at = died_at or "before %s" % case.id
                print("FAIL %s: not run: the echo server is not running (exited with status %s %s)" % (
                    case.id, server.proc.returncode, died_at))
                failed += 1
                continue
            if time.monotonic() > deadline:
                print("FAIL %s: not run: the whole run exceeded --timeout %.0f s" % (case.id, args.timeout))
                failed += 1
                continue
            if args.verbose:
                print("---- %s  %s\n     expected: %s" % (case.id, case.description, case.expectation))
            case_started = time.monotonic()
            ok, reason, trace = run_case(case, port, args.verbose)
            elapsed = time.monotonic() - case_started
            if not server.alive():
                time.sleep(0.05)
                died_at = "during %s" % case.id
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
        if server.alive():
            passed += 1
            print("PASS alive the echo server is still running after all cases")
        else:
            failed += 1
            print("FAIL alive: the echo server exited with status %s %s%s" % (
                server.proc.returncode, died_at or "", server.stderr_summary()))
    finally:
        server.stop()
    if args.verbose:
        print("run time %.1f s" % (time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
