"""Cuts traffic recorded by capture.py into seed inputs for each fuzz target (see the input layout at
the top of each tests/fuzz/<target>.cpp). Seeds are named by the SHA-1 of their content, as libFuzzer
names its own, so regrowing adds only what is new.

  make_corpus.py CAPTURE_DIR CORPUS_DIR
"""

import hashlib
import os
import re
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))

from autobahn_cases import utf8_test_sequences  # noqa: E402

MAX_STREAM_SEED = 4096
LIMITS = {  # seeds per target, so the checked-in corpus stays small
    "stream": 400, "frame_header": 300, "utf8": 400, "close_payload": 200,
    "http_request": 60, "http_response": 30, "handshake": 60,
}
ACCEPT = re.compile(rb"(Sec-WebSocket-Accept:[ \t]*)([A-Za-z0-9+/=]+)", re.IGNORECASE)


def frames(data, masked):
    """(first two bytes, header, payload unmasked) for every whole frame of a byte stream."""
    at = 0
    while at + 2 <= len(data):
        b1 = data[at + 1]
        length = b1 & 0x7F
        pos = at + 2
        if length == 126:
            if pos + 2 > len(data):
                return
            length = struct.unpack("!H", data[pos:pos + 2])[0]
            pos += 2
        elif length == 127:
            if pos + 8 > len(data):
                return
            length = struct.unpack("!Q", data[pos:pos + 8])[0]
            pos += 8
        key = None
        if b1 & 0x80:
            key = data[pos:pos + 4]
            pos += 4
        if pos + length > len(data):
            return
        payload = bytes(data[pos:pos + length])
        if key:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        yield data[at], data[at:pos], payload
        at = pos + length


def split_head(data):
    end = data.find(b"\r\n\r\n")
    return (data[:end + 4], data[end + 4:]) if end >= 0 else (None, data)


class Corpus:
    def __init__(self, root):
        self.root = root
        self.seeds = {name: {} for name in LIMITS}

    def add(self, target, data):
        self.seeds[target].setdefault(hashlib.sha1(data).hexdigest(), bytes(data))

    def write(self):
        for target, candidates in self.seeds.items():
            # An even sample over every case and both directions, in the order they were recorded.
            items = list(candidates.items())
            step = max(1.0, len(items) / LIMITS[target])
            seeds = dict(items[int(i * step)] for i in range(min(len(items), LIMITS[target])))
            folder = os.path.join(self.root, target)
            os.makedirs(folder, exist_ok=True)
            for name, data in seeds.items():
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
            print("%-14s %4d seeds, %7d bytes" % (target, len(seeds), sum(len(d) for d in seeds.values())))


def main():
    captures, root = sys.argv[1:3]
    corpus = Corpus(root)
    names = sorted({f.rsplit(".", 1)[0] for f in os.listdir(captures)})
    requests, responses = [], []
    for index, name in enumerate(names):
        c2s = open(os.path.join(captures, name + ".c2s"), "rb").read()
        s2c = open(os.path.join(captures, name + ".s2c"), "rb").read()
        client_mode = os.path.basename(name).startswith("client")
        request_head, client_frames = split_head(c2s)
        response_head, server_frames = split_head(s2c)
        if request_head:
            requests.append(request_head + client_frames[:64])
        if response_head:
            responses.append(ACCEPT.sub(rb"\1{accept}", response_head) + server_frames[:64])

        # stream: the side under test reads what its peer sent, with the handshake fuzzed (raw) and
        # after the canned one; the API, chunking and limits vary from seed to seed.
        if client_mode:
            peer_bytes, role = ACCEPT.sub(rb"\1{accept}", s2c), 1
            after_head = server_frames
        else:
            peer_bytes, role = c2s, 0
            after_head = client_frames
        api, chunk = index % 4, (index // 4) % 8
        config = bytes([role | 2 | api << 2 | chunk << 4, (index * 37) & 0xFF])
        corpus.add("stream", config + peer_bytes[:MAX_STREAM_SEED])
        if response_head if client_mode else request_head:
            config = bytes([role | ((index + 1) % 4) << 2 | ((index + 3) % 8) << 4 | (index & 1) << 7, 0])
            corpus.add("stream", config + after_head[:MAX_STREAM_SEED])

        for direction, data in ((True, c2s), (False, s2c)):
            _, data = split_head(data)
            for _, header, payload in frames(data, direction):
                corpus.add("frame_header", header + payload[:16])
                opcode = header[0] & 0x0F
                if opcode == 8:
                    corpus.add("close_payload", payload)
                elif opcode in (0, 1) and len(payload) <= 512:
                    corpus.add("utf8", bytes([len(payload) & 0xFF, (len(payload) * 7) & 0xFF]) + payload)

    for i, (valid, sample) in enumerate(s for _, group in utf8_test_sequences() for s in group):
        corpus.add("utf8", bytes([i & 0xFF, (i * 13) & 0xFF]) + sample)
    for i, request in enumerate(requests):
        corpus.add("http_request", bytes([(i * 0x15) & 0x7F, 0xFF if i % 3 == 0 else i & 0x7F]) + request)
    for i, response in enumerate(responses):
        corpus.add("http_response", bytes([(i * 0x15) & 0x7F, 0xFF if i % 3 == 0 else i & 0x7F]) + response)
    for i, request in enumerate(requests):
        response = split_head(responses[i % len(responses)])[0] if responses else b""
        head = split_head(request)[0] or request
        corpus.add("handshake", bytes([i & 0xFF]) + struct.pack("!H", len(head)) + head + (response or b""))
    corpus.write()


if __name__ == "__main__":
    main()
