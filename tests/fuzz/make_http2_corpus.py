"""Writes the seed inputs of the two HTTP/2 fuzz targets, built with Debian's python3-hpack and
python3-hyperframe, into CORPUS/http2_connection and CORPUS/http2_client (layouts at the top of
http2_connection.cpp and http2_client.cpp). Seeds are named by the SHA-1 of their content, as libFuzzer
names its own.

http2_connection (the server) gets client conversations: requests, a body, RFC 8441 WebSockets (echo,
permessage-deflate, close, a reset mid-message), CONTINUATION, many streams, resets, a ping and a window
update — each whole and in small reads, plus bytes that are not HTTP/2.

http2_client gets server conversations: SETTINGS with SETTINGS_ENABLE_CONNECT_PROTOCOL, its ACK, a 200 on
stream 1 and DATA carrying the server's WebSocket frames (a text echo, a ping, a close 1000); a 404, a
RST_STREAM, a GOAWAY, SETTINGS without extended CONNECT, a 1xx before the 200, a CONTINUATION split,
permessage-deflate, flow control, an HTTP/1.1 answer — paced (a frame a read, each after the client has
done what it could: the realistic order) and in small and whole reads.

  /usr/bin/python3 tests/fuzz/make_http2_corpus.py tests/fuzz/corpus
"""

import hashlib
import os
import sys
import zlib

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)

SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8


def ws_frame(opcode, payload, fin=True, rsv1=False, masked=True):
    """A WebSocket frame: masked as a client sends it, unmasked as a server does."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    mask_bit = 0x80 if masked else 0
    head += bytes([mask_bit | n]) if n < 126 else bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    if not masked:
        return head + payload
    key = b"\x01\x02\x03\x04"
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


def server_conversations():
    """What servers answer the client's extended CONNECT on stream 1, each whole, from the server's SETTINGS
    on; (name, bytes) pairs."""
    encoder = None

    def fresh():
        nonlocal encoder
        encoder = hpack.Encoder()
        return b""

    def settings(values=None):
        return SettingsFrame(0, settings={SETTINGS_ENABLE_CONNECT_PROTOCOL: 1} if values is None else values).serialize()

    ack = SettingsFrame(0, flags=["ACK"]).serialize()

    def head(status, extra=(), end_stream=False):
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        return HeadersFrame(1, data=encoder.encode([(":status", str(status)), *extra]), flags=flags).serialize()

    def data(*frames, end_stream=False, padding=0):
        flags = (["END_STREAM"] if end_stream else []) + (["PADDED"] if padding else [])
        return DataFrame(1, data=b"".join(frames), flags=flags, pad_length=padding).serialize()

    def server_ws(opcode, payload, fin=True, rsv1=False):
        return ws_frame(opcode, payload, fin=fin, rsv1=rsv1, masked=False)

    close_1000 = server_ws(8, b"\x03\xe8")
    out = []
    out.append(("echo", fresh() + settings() + ack + head(200) + data(server_ws(1, b"hello")) + data(server_ws(9, b"p")) +
                data(close_1000, end_stream=True)))
    out.append(("echo, one DATA, close without END_STREAM", fresh() + settings() + ack + head(200) +
                data(server_ws(1, b"hel", fin=False), server_ws(0, b"lo"), server_ws(10, b""), server_ws(8, b"\x03\xe8bye"))))
    out.append(("close, then RST_STREAM(CANCEL)", fresh() + settings() + ack + head(200) + data(close_1000) +
                RstStreamFrame(1, error_code=8).serialize()))
    out.append(("404", fresh() + settings() + ack + head(404, [("content-length", "0")], end_stream=True)))
    out.append(("200 that ends the stream", fresh() + settings() + ack + head(200, end_stream=True)))
    out.append(("RST_STREAM(REFUSED_STREAM)", fresh() + settings() + ack + RstStreamFrame(1, error_code=7).serialize()))
    out.append(("GOAWAY at once", fresh() + settings() + GoAwayFrame(0, last_stream_id=0, error_code=0).serialize()))
    out.append(("GOAWAY after the echo", fresh() + settings() + ack + head(200) + data(server_ws(1, b"hello")) +
                GoAwayFrame(0, last_stream_id=1, error_code=0).serialize() + data(close_1000, end_stream=True)))
    out.append(("SETTINGS without extended CONNECT", fresh() + settings({}) + ack))
    out.append(("SETTINGS_ENABLE_CONNECT_PROTOCOL = 0", fresh() + settings({SETTINGS_ENABLE_CONNECT_PROTOCOL: 0, 3: 10})))
    out.append(("1xx before 200", fresh() + settings() + ack + head(103, [("link", "</a>; rel=preload")]) + head(100) +
                head(200) + data(server_ws(1, b"hello"), close_1000, end_stream=True)))
    fresh()
    block = encoder.encode([(":status", "200"), ("server", "fuzz"), ("x-pad", "p" * 100)])
    out.append(("CONTINUATION split", settings() + ack + HeadersFrame(1, data=block[:5]).serialize() +
                ContinuationFrame(1, data=block[5:40]).serialize() +
                ContinuationFrame(1, data=block[40:], flags=["END_HEADERS"]).serialize() + data(close_1000, end_stream=True)))
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(b"compressed " * 20) + compressor.flush(zlib.Z_SYNC_FLUSH)
    out.append(("permessage-deflate", fresh() + settings() + ack +
                head(200, [("sec-websocket-extensions", "permessage-deflate; server_no_context_takeover")]) +
                data(server_ws(1, body[:-4], rsv1=True)) + data(close_1000, end_stream=True)))
    out.append(("flow control", fresh() + settings({SETTINGS_ENABLE_CONNECT_PROTOCOL: 1, 4: 0, 3: 1}) + ack + head(200) +
                PingFrame(0, opaque_data=b"12345678").serialize() + WindowUpdateFrame(1, window_increment=3).serialize() +
                WindowUpdateFrame(1, window_increment=100).serialize() + data(server_ws(2, b"y" * 1000), padding=10) +
                data(close_1000, end_stream=True)))
    out.append(("sub-protocol and header list", fresh() + settings() + ack +
                head(200, [("sec-websocket-protocol", "chat"), ("x-big", "b" * 5000)]) + data(close_1000, end_stream=True)))
    out.append(("HTTP/1.1 answer", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
    return out


def client_seeds():
    seeds = []
    paced = 1 << 5
    for name, conversation in server_conversations():
        seeds.append(bytes([1 | paced]) + conversation)              # paced: a frame a read, after the client's turn
        seeds.append(bytes([1 | paced | (3 << 1)]) + conversation)   # paced, 9-byte reads
        seeds.append(bytes([1 | (1 << 1)]) + conversation)           # as fast as read, 1-byte reads
        if name == "permessage-deflate":
            seeds.append(bytes([1 | paced | (1 << 4)]) + conversation)  # the client offers it
        if name in ("echo", "HTTP/1.1 answer"):
            seeds.append(bytes([1]) + conversation)                  # whole: the 200 comes before the request
    # The preface prepended by the target: the conversation from the server's ACK on.
    for name, conversation in server_conversations():
        if name == "echo":
            settings_length = 9 + int.from_bytes(conversation[:3], "big")
            seeds.append(bytes([paced]) + conversation[settings_length:])
            seeds.append(bytes([paced | (1 << 4)]) + conversation[settings_length:])
    return seeds


def server_seeds():
    seeds = []
    for conversation in conversations():
        seeds.append(bytes([0]) + conversation)          # whole reads
        seeds.append(bytes([1 << 1]) + conversation)     # 1-byte reads
        seeds.append(bytes([3 << 1]) + conversation)     # 9-byte reads
    seeds.append(bytes([1]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not HTTP/2: no preface
    seeds.append(bytes([1]) + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 20)
    return seeds


def write(folder, seeds):
    os.makedirs(folder, exist_ok=True)
    for seed in seeds:
        with open(os.path.join(folder, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
    print(f"{len(seeds)} seeds in {folder}")


def main():
    root = sys.argv[1]
    write(os.path.join(root, "http2_connection"), server_seeds())
    write(os.path.join(root, "http2_client"), client_seeds())


if __name__ == "__main__":
    main()
