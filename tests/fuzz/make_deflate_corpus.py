#!/usr/bin/python3
"""Seeds for the permessage-deflate fuzz targets (see the input layouts at the top of
tests/fuzz/deflate_negotiation.cpp and tests/fuzz/inflate.cpp), written into CORPUS_DIR/<target>/ and
named by their SHA-1 like the other seeds.

  make_deflate_corpus.py CORPUS_DIR

deflate_negotiation: the offers and answers real peers exchange (browsers, python3-websockets with each
of its settings, Autobahn's client and fuzzing server in sections 12-13, duplex's make_offer), plus the
malformed ones of the conformance suite's case 0.12, quoted values and mixed case.
inflate: payloads as peers compress them (Python's zlib, which python3-websockets uses, at windows 9-15,
levels 0-9, with and without context takeover, flushed with Z_SYNC_FLUSH and the marker removed, or
ending with BFINAL blocks, empty messages, fragments with an empty last frame), a few corrupt ones, and
round-trip data (JSON chat messages, text, binary, runs).
"""

import hashlib
import json
import os
import random
import struct
import sys
import zlib

OFFERS = [
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=9",
    "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; "
    "server_max_window_bits=9, permessage-deflate; client_no_context_takeover; client_max_window_bits; "
    "server_no_context_takeover, permessage-deflate; client_no_context_takeover; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; "
    "client_max_window_bits=8",
    'permessage-deflate; server_max_window_bits="12"; client_max_window_bits',
    "Permessage-Deflate; Server_No_Context_Takeover;CLIENT_MAX_WINDOW_BITS",
    "permessage-deflate; foo, permessage-deflate; server_no_context_takeover; server_no_context_takeover, "
    "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=08, "
    "permessage-deflate; server_max_window_bits, permessage-deflate; client_no_context_takeover=1",
    "permessage-deflate; foo=bar, x-webkit-deflate-frame, permessage-deflate; server_no_context_takeover; "
    "client_max_window_bits",
    'permessage-deflate; client_max_window_bits="1\\5"',
    'permessage-deflate; server_max_window_bits="9',
    "permessage-deflate ;server_max_window_bits = 11 ;  client_max_window_bits",
]
ANSWERS = [
    "",
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
    "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover; "
    "client_max_window_bits=9",
    "permessage-deflate; client_max_window_bits=15",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate, permessage-deflate",
    "x-webkit-deflate-frame",
    'permessage-deflate; server_max_window_bits="10"',
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; unknown",
    "PERMESSAGE-DEFLATE; SERVER_NO_CONTEXT_TAKEOVER",
]


def negotiation_seeds():
    rng = random.Random(7692)
    seeds = []
    for index, offer in enumerate(OFFERS):
        for answer in (ANSWERS[index % len(ANSWERS)], ANSWERS[(index * 5 + 3) % len(ANSWERS)]):
            data = offer.encode("ascii")
            seeds.append(bytes([rng.getrandbits(8), rng.getrandbits(8)]) + struct.pack("!H", len(data)) + data +
                         answer.encode("ascii"))
    return seeds


def chat_messages(rng, count):
    users = ["ana", "ben", "chen", "dora", "eli"]
    return [json.dumps({"type": "message", "room": "general", "user": rng.choice(users), "id": i,
                        "text": " ".join(rng.choice(["hi", "hello", "how", "are", "you", "fine", "thanks", "ok",
                                                    "see", "you", "later", "deflate", "é", "中文"])
                                         for _ in range(rng.randint(3, 20)))}, ensure_ascii=False).encode()
            for i in range(count)]


def deflate(payload, bits, level=-1, memory_level=8, final=False, compressor=None):
    compressor = compressor or zlib.compressobj(level, zlib.DEFLATED, -max(9, bits), memory_level)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return data if final else data[:-4]


def inflate_seeds():
    rng = random.Random(1951)
    seeds = []

    def add(arbitrary_config, arbitrary_sizes, payload, round_trip=b""):
        round_trip_config = rng.getrandbits(8)
        round_trip_sizes = rng.getrandbits(8)
        seeds.append(bytes([arbitrary_config, arbitrary_sizes, round_trip_config, round_trip_sizes]) +
                     struct.pack("!H", len(payload)) + payload + round_trip)

    messages = chat_messages(rng, 40)
    text = b"Per-message compression extensions and the permessage-deflate extension, RFC 7692. " * 8
    for bits in range(8, 16):
        for level in (0, 1, 6, 9):
            payload = deflate(rng.choice(messages) * 3, bits, level)
            # window bits in the low 3 bits; the rest random: no takeover, chunk size, limit
            add((bits - 8) | (rng.getrandbits(5) << 3), rng.getrandbits(4), payload, rng.choice(messages))
    # several messages through one compressor (context takeover), one seed each way of cutting them
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 8)
    joined = b"".join(deflate(m, 15, compressor=compressor) for m in messages[:6])
    add(7, 0, joined, b"".join(messages[:10]))
    add(7, 1, joined[:200], text)
    # BFINAL blocks, empty messages, the marker left in, corrupt data
    add(7, 0, deflate(text, 15, final=True), text)
    add(7, 0, b"\x00", b"")
    add(7, 0, deflate(text, 15) + b"\x00\x00\xff\xff", b"")
    add(7, 0, b"\xff\xff\xff\xff", bytes(range(256)) * 4)
    add(7, 0, deflate(text, 15)[:-3], b"\x00" * 3000)
    add(0x17, 2, deflate(text * 4, 15), bytes(rng.getrandbits(8) for _ in range(2000)))
    add(0xc7, 3, deflate(b"a" * 100000, 15), b"a" * 5000)
    return seeds


def write(corpus, target, seeds):
    folder = os.path.join(corpus, target)
    os.makedirs(folder, exist_ok=True)
    for seed in seeds:
        with open(os.path.join(folder, hashlib.sha1(seed).hexdigest()), "wb") as f:
            f.write(seed)
    print("%s: %d seeds" % (target, len(seeds)))


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    write(sys.argv[1], "deflate_negotiation", negotiation_seeds())
    write(sys.argv[1], "inflate", inflate_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
