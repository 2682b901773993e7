#!/usr/bin/python3
"""Reference Autobahn test client for the conformance suite's self-check, built on python3-websockets (10.x).

  reference_client.py ws://HOST:PORT AGENT

Same command line and behaviour as duplex-autobahn-client, so
`client_suite.py --client tests/conformance/reference/reference_client.py` runs the suite against it:
reads the case count from /getCaseCount, runs /runCase?case=N&agent=AGENT for N in 1..count echoing
every message (whole messages, same type) until the connection closes or fails, then opens
/updateReports?agent=AGENT and closes. The close handshake is websockets' own: it answers a close
frame with the same payload.

Like duplex-autobahn-client it asks /getCaseInfo?case=N first and offers permessage-deflate in every
case: in 13.j asking the server for what Autobahn's client asks in that subsection, else websockets'
default offer.
"""

import asyncio
import json
import logging
import sys
import urllib.parse

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

OPTIONS = dict(max_size=None, compression=None, ping_interval=None, close_timeout=5)

# Autobahn 13.1-13.7: (server_no_context_takeover, server_max_window_bits) asked of the server; 13.7's
# three offers become the first one.
SECTION_13 = [(False, None), (True, None), (False, 9), (False, 15), (True, 9), (True, 15), (True, 9)]


def offer_for(case_id):
    parts = case_id.split(".")
    no_takeover, window = False, None
    if len(parts) == 3 and parts[0] == "13" and parts[1].isdigit() and 1 <= int(parts[1]) <= 7:
        no_takeover, window = SECTION_13[int(parts[1]) - 1]
    return ClientPerMessageDeflateFactory(server_no_context_takeover=no_takeover, server_max_window_bits=window,
                                          client_max_window_bits=True)


async def case_id(base, case):
    try:
        async with websockets.connect("%s/getCaseInfo?case=%d" % (base, case), **OPTIONS) as ws:
            return json.loads(await ws.recv()).get("id", "")
    except (websockets.WebSocketException, OSError, ValueError):
        return ""


async def run(base, agent):
    async with websockets.connect(base + "/getCaseCount", **OPTIONS) as ws:
        count = int(await ws.recv())
    quoted = urllib.parse.quote(agent)
    for case in range(1, count + 1):
        options = dict(OPTIONS, extensions=[offer_for(await case_id(base, case))])
        try:
            async with websockets.connect("%s/runCase?case=%d&agent=%s" % (base, case, quoted), **options) as ws:
                async for message in ws:
                    await ws.send(message)
        except (websockets.WebSocketException, OSError):
            pass  # a failed connection is what many cases expect
        except ValueError:
            pass  # websockets 10.4 cannot compress with client_max_window_bits=8 (zlib refuses raw deflate with 8)
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
