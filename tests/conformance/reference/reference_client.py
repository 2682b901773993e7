#!/usr/bin/python3
"""Reference Autobahn test client for the conformance suite's self-check, built on python3-websockets (10.x).

  reference_client.py ws://HOST:PORT AGENT

Same command line and behaviour as duplex-autobahn-client, so
`client_suite.py --client tests/conformance/reference/reference_client.py` runs the suite against it:
reads the case count from /getCaseCount, runs /runCase?case=N&agent=AGENT for N in 1..count echoing
every message (whole messages, same type) until the connection closes or fails, then opens
/updateReports?agent=AGENT and closes. The close handshake is websockets' own: it answers a close
frame with the same payload.
"""

import asyncio
import logging
import sys
import urllib.parse

import websockets

OPTIONS = dict(max_size=None, compression=None, ping_interval=None, close_timeout=5)


async def run(base, agent):
    async with websockets.connect(base + "/getCaseCount", **OPTIONS) as ws:
        count = int(await ws.recv())
    quoted = urllib.parse.quote(agent)
    for case in range(1, count + 1):
        try:
            async with websockets.connect("%s/runCase?case=%d&agent=%s" % (base, case, quoted), **OPTIONS) as ws:
                async for message in ws:
                    await ws.send(message)
        except (websockets.WebSocketException, OSError):
            pass  # a failed connection is what many cases expect
    async with websockets.connect("%s/updateReports?agent=%s" % (base, quoted), **OPTIONS):
        pass


def main():
    if len(sys.argv) != 3:
        print("usage: reference_client.py ws://HOST:PORT AGENT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL)
    asyncio.run(run(sys.argv[1].rstrip("/"), sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
