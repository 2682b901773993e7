"""Writes the seed inputs of the http2_connection fuzz target (layout at the top of http2_connection.cpp):
client conversations built with Debian's python3-hpack and python3-hyperframe — requests, a body, RFC 8441
WebSockets (echo, permessage-deflate, close, a reset mid-message), CONTINUATION, many streams, resets, a
ping and a window update — each whole and in small reads, plus bytes that are not HTTP/2. Seeds are named
by the SHA-1 of their content, as libFuzzer names its own.

  /usr/bin/python3 tests/fuzz/make_http2_corpus.py tests/fuzz/corpus/http2_connection
"""

import hashlib
import os
import sys
import zlib

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)


def ws_frame(opcode, payload, fin=True, rsv1=False):
    key = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def conversations():
    # One HPACK encoder per conversation: each is a connection of its own, with its own dynamic table.
    encoder = None

    def fresh():
        nonlocal encoder
        encoder = hpack.Encoder()
        return b""

    def headers(sid, fields, end_stream=True, end_headers=True):
        flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
        return HeadersFrame(sid, data=encoder.encode(fields), flags=flags).serialize()

    def request(method, path, extra=()):
        return [(":method", method), (":scheme", "http"), (":authority", "fuzz"), (":path", path), *extra]

    def connect(path, extra=()):
        return request("CONNECT", path, [(":protocol", "websocket"), ("sec-websocket-version", "13"), *extra])

    out = []
    out.append(fresh() + headers(1, request("GET", "/")) + headers(3, request("HEAD", "/x")))
    out.append(fresh() + headers(1, request("POST", "/body", [("content-length", "5")]), end_stream=False) +
               DataFrame(1, data=b"hello", flags=["END_STREAM"]).serialize())
    out.append(fresh() + headers(1, connect("/ws"), end_stream=False) +
               DataFrame(1, data=ws_frame(1, b"hi") + ws_frame(9, b"p") + ws_frame(2, b"x" * 300)).serialize() +
               DataFrame(1, data=ws_frame(8, b"\x03\xe8bye"), flags=["END_STREAM"]).serialize() +
               RstStreamFrame(1, error_code=8).serialize())
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(b"compressed " * 20) + compressor.flush(zlib.Z_SYNC_FLUSH)
    out.append(fresh() + headers(1, connect("/deflate", [("sec-websocket-extensions", "permessage-deflate")]), end_stream=False) +
               DataFrame(1, data=ws_frame(1, body[:-4], rsv1=True)).serialize() +
               DataFrame(1, data=ws_frame(8, b"\x03\xe8")).serialize())
    out.append(fresh() + headers(1, connect("/ws"), end_stream=False) +
               DataFrame(1, data=ws_frame(1, b"half", fin=False)).serialize() + RstStreamFrame(1, error_code=8).serialize() +
               headers(3, request("GET", "/")))
    fresh()
    block = encoder.encode(request("GET", "/split", [("x-pad", "p" * 100)]))
    out.append(HeadersFrame(1, data=block[:20], flags=["END_STREAM"]).serialize() +
               ContinuationFrame(1, data=block[20:60]).serialize() +
               ContinuationFrame(1, data=block[60:], flags=["END_HEADERS"]).serialize())
    out.append(b"".join(headers(1 + 2 * i, connect("/ws"), end_stream=False) for i in range(20)) +
               b"".join(RstStreamFrame(1 + 2 * i, error_code=8).serialize() for i in range(20)))
    out.append(fresh() + SettingsFrame(0, settings={4: 0}).serialize() + headers(1, connect("/ws"), end_stream=False) +
               DataFrame(1, data=ws_frame(2, b"y" * 1000)).serialize() + PingFrame(0, opaque_data=b"12345678").serialize() +
               WindowUpdateFrame(1, window_increment=100).serialize() + WindowUpdateFrame(0, window_increment=100).serialize())
    out.append(fresh() + headers(1, connect("/ws", [("sec-websocket-version", "8")]), end_stream=False))
    out.append(fresh() + headers(1, request("CONNECT", "/ws", [(":protocol", "other")]), end_stream=False))
    return out


def main():
    folder = sys.argv[1]
    os.makedirs(folder, exist_ok=True)
    seeds = []
    for conversation in conversations():
        seeds.append(bytes([0]) + conversation)          # whole reads
        seeds.append(bytes([1 << 1]) + conversation)     # 1-byte reads
        seeds.append(bytes([3 << 1]) + conversation)     # 9-byte reads
    seeds.append(bytes([1]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not HTTP/2: no preface
    seeds.append(bytes([1]) + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 20)
    for seed in seeds:
        with open(os.path.join(folder, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
    print(f"{len(seeds)} seeds in {folder}")


if __name__ == "__main__":
    main()
