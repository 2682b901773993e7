#!/usr/bin/python3
"""Memory a server holds per idle WebSocket, over HTTP/1.1 and over HTTP/2 (RFC 8441), in one run:
duplex-echo (one worker thread, h2c) with N WebSockets open and quiet, its RSS (VmRSS) after minus before,
divided by N. Three shapes, each against a fresh server after a warm-up:

  http/1.1            N TCP connections, one WebSocket each (raw upgrade requests)
  h2, 1 per conn      N HTTP/2 connections, one extended CONNECT stream each
  h2, many per conn   N streams on N / per-connection HTTP/2 connections (python3-h2)

    /usr/bin/python3 benchmarks/http2_idle_memory.py --echo build/examples/duplex-echo [--count 900]
        [--per-connection 300] [--api awaitable|handlers] [--reps 2]

Prints bytes per WebSocket for each shape and repetition. On demand, not in CI (no thresholds: a
figure to compare, with the process' own allocator retention in it, as in README's idle figures).
"""

import argparse
import base64
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "http2"))
import h2peer  # noqa: E402


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settle(pid):
    """RSS once it stops moving (bounded: at most 3 s)."""
    last = rss(pid)
    for _ in range(30):
        time.sleep(0.1)
        now = rss(pid)
        if now == last:
            return now
        last = now
    return last


def open_http1(port, count):
    sockets = []
    request = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n")
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall((request % base64.b64encode(os.urandom(16)).decode()).encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the upgrade")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(answer[:80])
        sockets.append(s)
    return sockets


def open_http2(port, count, per_connection):
    clients = []
    opened = 0
    while opened < count:
        client = h2peer.Client(port)
        clients.append(client)
        for _ in range(min(per_connection, count - opened)):
            sid = client.open_websocket()
            if client.streams[sid].status != 200:
                raise ConnectionError(f"stream {sid}: {client.streams[sid].status}")
            opened += 1
    return clients


def measure(echo, api, shape, count, per_connection):
    args = ["--urls", "http://127.0.0.1:0", "--h2c", "--threads", "1",
            "--http2-limit", f"max_concurrent_streams={max(per_connection, 1)}"]
    if api != "awaitable":
        args += ["--api", api]
    server = h2peer.Server(echo, args)
    try:
        port = server.port("http")
        pid = server.process.pid
        # Warm-up: the allocator's arenas and the first connection's one-time costs, for each kind.
        warm = open_http1(port, 20) if shape == "http/1.1" else open_http2(port, 20, min(per_connection, 20))
        for w in warm:
            w.close()
        time.sleep(0.5)
        before = settle(pid)
        if shape == "http/1.1":
            held = open_http1(port, count)
        elif shape == "h2, 1 per conn":
            held = open_http2(port, count, 1)
        else:
            held = open_http2(port, count, per_connection)
        after = settle(pid)
        for h in held:
            h.close()
        return (after - before) / count
    finally:
        server.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    # python3-h2's client (h2peer) waits with select(), which takes descriptors below 1024 only.
    parser.add_argument("--count", type=int, default=900)
    parser.add_argument("--per-connection", type=int, default=300)
    parser.add_argument("--api", default="awaitable", choices=["awaitable", "handlers"])
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.count + 100)), hard))
    shapes = ["http/1.1", "h2, 1 per conn", f"h2, {args.per_connection} per conn"]
    print(f"duplex-echo --api {args.api}, {args.count} idle WebSockets, bytes of server RSS per WebSocket")
    for rep in range(args.reps):
        for shape in shapes:
            per = measure(args.echo, args.api, shape, args.count, args.per_connection)
            print(f"  rep {rep + 1}  {shape:<22} {per:8.0f}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
