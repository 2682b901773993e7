#!/usr/bin/python3
"""Strict Autobahn test client with duplex-autobahn-client's command line: strict_client.py ws://HOST:PORT AGENT.

The suite's proof that a client can pass every case as the suite expects it; see strict_peer.py."""

import sys

from strict_peer import client_main

if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
