"""Writes the seed inputs of the proxy_handshake fuzz target (layout at the top of proxy_handshake.cpp):
the answers Debian's tinyproxy 1.11.1 and microsocks 1.0.3 gave to duplex's requests (recorded on
loopback, 2026-12), each under the configurations it answers, fed whole and in small chunks. Seeds are
named by the SHA-1 of their content, as libFuzzer names its own.

  /usr/bin/python3 tests/fuzz/make_proxy_corpus.py tests/fuzz/corpus/proxy_handshake
"""

import hashlib
import os
import sys

TINYPROXY_200 = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"
TINYPROXY_407 = (b"HTTP/1.0 407 Proxy Authentication Required\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\n"
                 b"Proxy-Authenticate: Basic realm=\"Tinyproxy\"\r\nConnection: close\r\n\r\n<html>\n<head><title>407 Proxy "
                 b"Authentication Required</title></head>\n</html>\n")
TINYPROXY_500 = (b"HTTP/1.1 500 Unable to connect\r\nServer: tinyproxy/1.11.1\r\nContent-Type: text/html\r\n"
                 b"Connection: close\r\n\r\n<html>\n<head><title>500 Unable to connect</title></head>\n</html>\n")
SOCKS_SUCCESS = b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"

SOCKS = 1
CREDENTIALS = 2
# (config without the target bits, the proxy's answers)
ANSWERS = [
    (0, TINYPROXY_200),
    (0, TINYPROXY_200 + b"\x81\x02hi"),             # bytes past the head: not used
    (CREDENTIALS, TINYPROXY_407),
    (0, TINYPROXY_500),
    (SOCKS, b"\x05\x00" + SOCKS_SUCCESS),           # microsocks without authentication
    (SOCKS, b"\x05\x00\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00"),  # reply 5: connection refused
    (SOCKS, b"\x05\xff"),                          # microsocks -u: no authentication refused
    (SOCKS | CREDENTIALS, b"\x05\x02\x01\x00" + SOCKS_SUCCESS),
    (SOCKS | CREDENTIALS, b"\x05\x02\x01\x02"),    # wrong password
    (SOCKS, b"\x05\x00\x05\x00\x00\x03\x09localhost\x17\x2b"),   # bound to a name
    (SOCKS, b"\x05\x00\x05\x00\x00\x04" + bytes(15) + b"\x01\x17\x2b"),  # bound to ::1
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for config, answer in ANSWERS:
        for target in range(4):
            for chunk in (255, 3):
                seed = bytes([config | target << 2, chunk]) + answer
                name = hashlib.sha1(seed).hexdigest()
                with open(os.path.join(out, name), "wb") as f:
                    f.write(seed)


if __name__ == "__main__":
    main()
