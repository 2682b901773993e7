#!/usr/bin/python3
"""One 16 MiB binary message echoed by duplex-echo over an RFC 8441 WebSocket (python3-h2 client, h2c
and h2), beside the same over HTTP/1.1 (python3-websockets): seconds for the whole round trip, best of 3.
Python is the slower end here, so this bounds the server from above; it shows that the per-stream window
(http2_limits::initial_stream_window_size, 1 MiB) does not stall a large message.

    /usr/bin/python3 benchmarks/http2_large_message.py --echo build/examples/duplex-echo --certs DIR
"""

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "http2"))
import h2peer  # noqa: E402
import websockets  # noqa: E402

SIZE = 16 * 1024 * 1024


def over_h2(port, ca):
    client = h2peer.Client(port, ca)
    sid = client.open_websocket(scheme="https" if ca else "http")
    payload = os.urandom(SIZE)
    frame = h2peer.ws_frame(h2peer.OP_BINARY, payload)  # masked before the clock starts
    started = time.perf_counter()
    client.send_data(sid, frame, timeout=120)
    _, got, _ = client.ws_message(sid, timeout=120)
    elapsed = time.perf_counter() - started
    client.close()
    assert got == payload
    return elapsed


async def over_h1(port, ca):
    context = None
    if ca:
        context = ssl.create_default_context(cafile=ca)
    scheme = "wss" if ca else "ws"
    async with websockets.connect(f"{scheme}://127.0.0.1:{port}/ws", max_size=None, ssl=context) as ws:
        payload = os.urandom(SIZE)
        started = time.perf_counter()
        await ws.send(payload)
        got = await ws.recv()
        elapsed = time.perf_counter() - started
        assert got == payload
        return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    parser.add_argument("--certs", required=True)
    args = parser.parse_args()
    subprocess.run(["bash", os.path.join(os.path.dirname(__file__), "..", "examples", "tls_echo", "make-certs.sh"),
                    args.certs], check=True, capture_output=True)
    ca = os.path.join(args.certs, "ca.pem")
    server = h2peer.Server(args.echo, ["--urls", "http://127.0.0.1:0;https://127.0.0.1:0", "--h2c",
                                       "--cert", os.path.join(args.certs, "server.pem"),
                                       "--key", os.path.join(args.certs, "server.key"),
                                       "--buffer-size", "65536", "--receive-buffer-size", "65536"])
    try:
        for name, run in (("h2c (RFC 8441, python3-h2)", lambda: over_h2(server.port("http"), None)),
                          ("h2 (RFC 8441, python3-h2)", lambda: over_h2(server.port("https"), ca)),
                          ("ws:// HTTP/1.1 (python3-websockets)", lambda: asyncio.run(over_h1(server.port("http"), None))),
                          ("wss:// HTTP/1.1 (python3-websockets)", lambda: asyncio.run(over_h1(server.port("https"), ca)))):
            best = min(run() for _ in range(3))
            print(f"{name}: 16 MiB echoed in {best:.2f} s ({2 * SIZE / best / 1e6:.0f} MB/s both ways)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
