#!/usr/bin/python3
"""The WebSocket server of hypercorn_test.py: Debian's python3-hypercorn (0.13) serving a small ASGI app.

    /usr/bin/python3 hypercorn_echo_app.py [--cert server.pem --key server.key] [--http1-only]

Binds 127.0.0.1 on free ports: with --cert/--key one TLS port (ALPN h2 and http/1.1, or http/1.1 alone
with --http1-only) and one plain port (HTTP/1.1, and HTTP/2 with prior knowledge, which hypercorn
recognises from the preface whatever its ALPN list says); without them the plain port only. Hypercorn
logs "Running on https://127.0.0.1:PORT" / "Running on http://127.0.0.1:PORT" on standard error.

The app accepts every WebSocket (with the sub-protocol "chat" when the client offers it) and echoes
each text and binary message, except three questions, answered with what the ASGI scope says:
  "version?"      scope["http_version"]: "2" for an RFC 8441 extended CONNECT, "1.1" for an upgrade
  "subprotocol?"  the sub-protocol accepted ("" for none)
  "extensions?"   the request's sec-websocket-extensions ("" for none)
and "close?", which it answers by closing with 1000 (hypercorn then ends the stream after the close
frame). It prints one line per WebSocket on standard output:
  websocket PATH http_version=V subprotocol=P
SIGTERM (or SIGINT) stops hypercorn gracefully.
"""

import argparse
import asyncio
import sys

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    subprotocol = "chat" if "chat" in scope.get("subprotocols", []) else None
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    print("websocket %s http_version=%s subprotocol=%s" % (scope["path"], scope["http_version"], subprotocol or ""),
          flush=True)
    answers = {
        "version?": scope["http_version"],
        "subprotocol?": subprotocol or "",
        "extensions?": ", ".join(value.decode("latin-1") for name, value in scope["headers"]
                                 if name.lower() == b"sec-websocket-extensions"),
    }
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        if message.get("text") == "close?":
            await send({"type": "websocket.close", "code": 1000})
            return
        if message.get("text") is not None:
            text = message["text"]
            await send({"type": "websocket.send", "text": answers.get(text, text)})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cert", help="the server certificate (PEM); with --key, a TLS port too")
    parser.add_argument("--key", help="its key")
    parser.add_argument("--http1-only", action="store_true", help="ALPN http/1.1 only on the TLS port")
    args = parser.parse_args()
    try:
        import hypercorn.asyncio
        import hypercorn.config
    except ImportError as missing:
        print("hypercorn_echo_app: python3-hypercorn is missing (%s)" % missing, file=sys.stderr)
        return 1
    config = hypercorn.config.Config()
    config.errorlog = "-"  # standard error: the "Running on" lines
    config.loglevel = "INFO"
    if args.cert:
        config.certfile, config.keyfile = args.cert, args.key
        config.bind = ["127.0.0.1:0"]
        config.insecure_bind = ["127.0.0.1:0"]
        config.alpn_protocols = ["http/1.1"] if args.http1_only else ["h2", "http/1.1"]
    else:
        config.bind = ["127.0.0.1:0"]
    asyncio.run(hypercorn.asyncio.serve(app, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
