#!/usr/bin/python3
"""Strict streaming echo server with duplex-echo's command line: strict_echo.py [--urls http://HOST:PORT].

The suite's proof that a server can pass every case as the suite expects it; see strict_peer.py."""

import sys

from strict_peer import echo_main

if __name__ == "__main__":
    sys.exit(echo_main(sys.argv[1:]))
