#!/usr/bin/python3
"""Reference echo server for the conformance suite's self-check, built on python3-websockets (10.x).

  reference_echo.py [--urls http://HOST:PORT] [--compression]      (default http://127.0.0.1:5000)

Same command line and ready line as duplex-echo (`duplex-echo listening on http://HOST:PORT`), so
`server_suite.py --echo tests/conformance/reference/reference_echo.py` runs the suite against it.
Like the duplex sample app, GET /ws with the WebSocket upgrade headers is upgraded, GET /ws without
them gets 400 and every other path 404; the rest of the handshake (key, version) is websockets' own.

With --compression it accepts permessage-deflate as `duplex-echo --compression` does: honouring the
client's requests and adding none of its own (websockets' ServerPerMessageDeflateFactory() without
parameters; websockets' compression="deflate" would also choose windows of 12 bits); without, it
declines it.

Unlike duplex-echo it echoes whole messages: websockets reassembles fragments before the handler sees
them. The close handshake is websockets' own: it answers a close frame with the same payload.
"""

import argparse
import asyncio
import http
import logging
import signal
import sys

import websockets
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


def parse_url(url):
    if not url.startswith("http://"):
        raise SystemExit("only http:// URLs are served: %s" % url)
    host, _, port = url[len("http://"):].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit("a URL needs a host and a port: %s" % url)
    return host.strip("[]"), int(port)


def tokens(headers, name):
    return [t.strip().lower() for value in headers.get_all(name) for t in value.split(",")]


async def route(path, headers):
    """The app's part of the handshake, as in the duplex echo sample: /ws only, WebSocket requests only."""
    if path != "/ws":
        return http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain")], b"Not Found\n"
    if "websocket" not in tokens(headers, "Upgrade") or "upgrade" not in tokens(headers, "Connection"):
        return (http.HTTPStatus.BAD_REQUEST, [("Content-Type", "text/plain")],
                b"This endpoint only accepts WebSocket requests\n")
    return None


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def serve(host, port, compression):
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with websockets.serve(echo, host, port, process_request=route, max_size=None,
                                compression=None, extensions=[ServerPerMessageDeflateFactory()] if compression else None,
                                ping_interval=None) as server:
        bound_host, bound_port = server.sockets[0].getsockname()[:2]
        print("duplex-echo listening on http://%s:%d" % (bound_host, bound_port), flush=True)
        await stop


def main():
    parser = argparse.ArgumentParser(description="python-websockets echo server with duplex-echo's interface")
    parser.add_argument("--urls", default="http://127.0.0.1:5000")
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # failed handshakes and connections are the tests' business
    host, port = parse_url(args.urls.split(";")[0])
    asyncio.run(serve(host, port, args.compression))


if __name__ == "__main__":
    sys.exit(main())
