#!/usr/bin/python3
"""Plain HTTP/2 requests to the app host with nghttp (Debian's nghttp2-client, an independent HTTP/2
implementation), over h2c (prior knowledge) and h2 (TLS, ALPN), against app-test-server and duplex-echo
started here:

    /usr/bin/python3 nghttp_test.py --app-server build/tests/app-test-server --echo build/examples/duplex-echo \
        --make-certs examples/tls_echo/make-certs.sh --certs DIR

The same pipeline as over HTTP/1.1: middleware order, map, query, 404, 500, request bodies (413 past
max_request_body_size, 100-continue), HEAD, static files, many requests on one connection; ALPN choices
(https_options::protocols) and an http:// endpoint without h2c; request_timeout for a request head that
does not complete (raw frames). Every run of nghttp is bounded by a
timeout; the last line is "N passed, M failed", and the exit status is 1 when anything failed, or when
nghttp is missing.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2peer  # noqa: E402  (starting and stopping the servers)
import hpack  # noqa: E402
import hyperframe.frame  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402

NGHTTP = shutil.which("nghttp")
TIMEOUT = 20


def nghttp(*args, stdout_only=False):
    """(exit status, output as bytes) of nghttp with `args`: stdout and stderr, or stdout alone (a body)."""
    try:
        run = subprocess.run([NGHTTP, *args], capture_output=True, timeout=TIMEOUT)
        return run.returncode, run.stdout if stdout_only else run.stdout + run.stderr
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"") + (b"" if stdout_only else (e.stderr or b""))


def fetch(url, *options):
    """(status, {header: [values]}, body) of one request, from nghttp -v (frames) and a plain run (body)."""
    status_code, verbose = nghttp("-v", "-n", *options, url)
    statuses = re.findall(rb"recv \(stream_id=\d+\) :status: (\d+)", verbose)
    headers = {}
    for name, value in re.findall(rb"recv \(stream_id=\d+\) ([a-z0-9-]+): (.*)", verbose):
        headers.setdefault(name.decode(), []).append(value.decode())
    _, body = nghttp(*options, url, stdout_only=True)
    final = [int(s) for s in statuses if not s.startswith(b"1")]
    return (final[-1] if final else None), headers, body, verbose, [int(s) for s in statuses]


def suite(name, base, wwwroot):
    status, headers, body, _, _ = fetch(base + "/hello?x=1")
    check(f"{name}: GET /hello?x=1 runs map with the query", status == 200 and body == b"hello x=1", f"{status} {body!r}")
    check(f"{name}: the middleware ran in order, in and out", headers.get("x-trace") == ["A>B><B<A"],
          f"{headers.get('x-trace')}")
    status, _, _, _, _ = fetch(base + "/nope")
    check(f"{name}: nobody answers: 404", status == 404, f"{status}")
    status, _, _, _, _ = fetch(base + "/throw")
    check(f"{name}: a handler that throws: 500", status == 500, f"{status}")
    with tempfile.NamedTemporaryFile() as small, tempfile.NamedTemporaryFile() as large:
        small.write(b"b" * 700)
        small.flush()
        large.write(b"L" * 5000)
        large.flush()
        status, _, body, _, _ = fetch(base + "/echo-body", "-d", small.name)
        check(f"{name}: POST /echo-body: read_body returns the body", status == 200 and body == b"b" * 700,
              f"{status} {len(body)} B")
        status, _, _, verbose, _ = fetch(base + "/echo-body", "-d", large.name)
        check(f"{name}: a body past max_request_body_size (Content-Length): 413", status == 413, f"{status}")
        status, _, body, _, statuses = fetch(base + "/echo-body", "-d", small.name, "-H", "expect: 100-continue")
        check(f"{name}: Expect: 100-continue gets 100, then the echo", statuses[:1] == [100] and status == 200 and
              body == b"b" * 700, f"{statuses} {len(body)} B")
        status, _, body, _, _ = fetch(base + "/ignore-body", "-d", small.name)
        check(f"{name}: a body nobody reads is dropped, the response goes", status == 200 and body == b"ignored",
              f"{status} {body!r}")
    status, headers, body, _, _ = fetch(base + "/page.html")
    expected = open(os.path.join(wwwroot, "page.html"), "rb").read()
    check(f"{name}: a static file, with its length and type", status == 200 and body == expected and
          headers.get("content-length") == [str(len(expected))] and headers.get("content-type", [""])[0].startswith(
              "text/html"), f"{status} {headers}")
    status, headers, body, _, _ = fetch(base + "/page.html", "-H", ":method: HEAD")
    check(f"{name}: HEAD: the length and no body", status == 200 and body == b"" and
          headers.get("content-length") == [str(len(expected))], f"{status} {headers} {body[:40]!r}")
    urls = [base + f"/hello?n={i}" for i in range(20)]
    code, out = nghttp("-n", "-s", *urls)
    rows = re.findall(rb"\n\s*\d+\s+\+\S+\s+\+\S+\s+\S+\s+(\d{3})\s", out)
    check(f"{name}: 20 requests at once on one connection all answered 200",
          code == 0 and len(rows) == 20 and all(r == b"200" for r in rows), out[-600:])


def slow_request_head(port, timeout_s):
    """A header block begun and never ended blocks its connection (RFC 9113 §6.10): past request_timeout
    the connection ends with GOAWAY(INTERNAL_ERROR), as Kestrel's RequestHeadersTimeout. One completed
    in pieces within it is a request."""
    block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
                                    (":path", "/hello")])

    def begin_head():
        raw = h2peer.RawClient(port)
        # The server's SETTINGS is read and acknowledged first: nothing may come between HEADERS and its
        # CONTINUATIONs, so the client reads nothing until the block is sent.
        raw.wait_for(lambda: raw.of_type(hyperframe.frame.SettingsFrame), 5, "the server's SETTINGS")
        raw.send(hyperframe.frame.HeadersFrame(1, data=block[:5], flags=["END_STREAM"]))
        return raw, time.monotonic()

    raw, _ = begin_head()
    time.sleep(timeout_s / 3)
    raw.send(hyperframe.frame.ContinuationFrame(1, data=block[5:], flags=["END_HEADERS"]))
    raw.wait_for(lambda: raw.status(1) is not None or raw.goaway() is not None, 5, "the answer")
    check("request_timeout: a request head completed in pieces within it is answered", raw.status(1) == 200,
          f"status {raw.status(1)} goaway {raw.goaway()}")
    raw.close()
    raw, started = begin_head()
    time.sleep(timeout_s / 2)
    # A CONTINUATION that does not end the block leaves it incomplete.
    raw.send(hyperframe.frame.ContinuationFrame(1, data=block[5:6]))
    goaway = raw.wait_for_goaway(timeout_s + 5)
    waited = time.monotonic() - started
    check(f"request_timeout: a request head left incomplete ends the connection with GOAWAY(INTERNAL_ERROR) "
          f"after {waited:.1f} s", goaway is not None and goaway.error_code == 0x2 and
          waited >= timeout_s * 0.9, f"goaway {goaway} closed {raw.closed}")
    raw.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app-server", required=True)
    parser.add_argument("--echo", required=True)
    parser.add_argument("--make-certs", required=True)
    parser.add_argument("--certs", required=True)
    args = parser.parse_args()
    if NGHTTP is None:
        print("FAIL: nghttp is missing: apt-get install nghttp2-client")
        print("0 passed, 1 failed")
        sys.exit(1)
    ca, tls = h2peer.make_certs(args.make_certs, args.certs)
    wwwroot = tempfile.mkdtemp(prefix="duplex-h2-www-")
    with open(os.path.join(wwwroot, "page.html"), "wb") as page:
        page.write(b"<!doctype html><title>h2</title>" + b"<p>static</p>\n" * 3000)
    servers = []
    request_timeout_s = 3
    try:
        app = h2peer.Server(args.app_server, ["--urls", "http://127.0.0.1:0;https://127.0.0.1:0", "--h2c",
                                              "--wwwroot", wwwroot, "--request-timeout-ms",
                                              str(request_timeout_s * 1000), *tls])
        servers.append(app)
        suite("h2c", f"http://127.0.0.1:{app.port('http')}", wwwroot)
        suite("h2", f"https://127.0.0.1:{app.port('https')}", wwwroot)
        slow_request_head(app.port("http"), request_timeout_s)

        # http:// without --h2c: HTTP/1.1 only, as before; the preface is refused (505).
        plain = h2peer.Server(args.echo, ["--urls", "http://127.0.0.1:0"])
        servers.append(plain)
        code, out = nghttp("-v", "-n", f"http://127.0.0.1:{plain.port('http')}/")
        check("http:// without h2c does not speak HTTP/2", b":status: 200" not in out and
              b"expected SETTINGS frame" in out, out[-300:])
        # https_options::protocols: http1 offers no h2; http2 turns away a client without it.
        h1 = h2peer.Server(args.echo, ["--urls", "https://127.0.0.1:0", "--http-protocols", "http1", *tls])
        servers.append(h1)
        code, out = nghttp("-n", f"https://127.0.0.1:{h1.port('https')}/")
        check("--http-protocols http1: ALPN does not offer h2", b"HTTP/2 protocol was not selected" in out, out[-300:])
        h2only = h2peer.Server(args.echo, ["--urls", "https://127.0.0.1:0", "--http-protocols", "http2", *tls])
        servers.append(h2only)
        status, _, body, _, _ = fetch(f"https://127.0.0.1:{h2only.port('https')}/")
        check("--http-protocols http2: h2 serves the page", status == 200 and b"WebSocket" in body, f"{status}")
        import ssl
        context = ssl.create_default_context(cafile=ca)
        context.set_alpn_protocols(["http/1.1"])
        sock = context.wrap_socket(h2peer.connect(h2only.port("https")), server_hostname="127.0.0.1")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        try:
            answer = sock.recv(100)
        except OSError:
            answer = b""
        check("--http-protocols http2: a client that chose http/1.1 is disconnected", answer == b"", f"{answer!r}")
        sock.close()
        for server in servers:
            server.check_clean_exit(lambda line: "/throw" in line, "logged no error but the handler's that throws")
    finally:
        for server in servers:
            server.kill()
        shutil.rmtree(wwwroot, ignore_errors=True)
    sys.exit(summary())


if __name__ == "__main__":
    main()
