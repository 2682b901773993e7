#!/usr/bin/python3
"""Hostile HTTP/2 input against the app host, frame by frame (hyperframe + hpack from Debian's python3-h2
dependencies): each app_options::http2_limits field crossed, and kept to, with a well-behaved connection
served after each attack by the same server. duplex-echo is started here with small limits over h2c:

    /usr/bin/python3 hostile_test.py --echo build/examples/duplex-echo

max_concurrent_streams (REFUSED_STREAM past it), max_header_list_size (431, also for an HPACK bomb that
is small on the wire), stream_reset_burst/rate (rapid reset, CVE-2023-44487: GOAWAY), max_continuations
(CONTINUATION flood: GOAWAY), max_settings (GOAWAY), and the floods of frames that give the server
nothing (CVE-2019-9518 and kin: max_consecutive_empty_data_frames, max_window_updates_per_data_frame,
max_priority_frames_per_stream, each GOAWAY(ENHANCE_YOUR_CALM)); and nghttp2's own bound on unread ACKs
(PING and SETTINGS floods: GOAWAY(ENHANCE_YOUR_CALM)). Every wait is bounded; the last line is "N passed,
M failed", and the exit status is 1 when anything failed or a peer library is missing.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402
try:
    import hyperframe.frame
    import h2peer
    from h2peer import OP_TEXT
except ImportError as missing:
    print(f"FAIL: the HTTP/2 peer is missing ({missing}): apt-get install python3-h2")
    print("0 passed, 1 failed")
    sys.exit(1)

MAX_STREAMS = 4
MAX_HEADER_LIST = 4096
RESET_BURST = 10
MAX_CONTINUATIONS = 8
MAX_SETTINGS = 16
MAX_EMPTY_DATA = 2
WINDOW_UPDATES_PER_DATA = 10
PRIORITY_PER_STREAM = 100
ENHANCE_YOUR_CALM = 0xB

REFUSED_STREAM = 0x7


def get(path="/", extra=()):
    return [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path), *extra]


def connect_websocket(path="/ws"):
    return [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":authority", "127.0.0.1"),
            (":path", path), ("sec-websocket-version", "13")]


def still_serving(port, name):
    """A well-behaved connection beside the hostile one: its WebSocket echoes."""
    client = h2peer.Client(port)
    try:
        sid = client.open_websocket()
        client.ws_send(sid, OP_TEXT, b"still serving")
        _, got, _ = client.ws_message(sid, timeout=5)
        check(f"{name}: the server goes on serving other connections", got == b"still serving", f"{got!r}")
    except Exception as e:  # noqa: BLE001
        check(f"{name}: the server goes on serving other connections", False, f"{type(e).__name__}: {e}")
    finally:
        client.close()


def concurrent_streams(port):
    raw = h2peer.RawClient(port)
    # MAX_STREAMS WebSockets (each holds its stream) and one more, before the client has even ACKed the
    # server's SETTINGS: the one too many is refused, the others open.
    sids = [1 + 2 * i for i in range(MAX_STREAMS + 1)]
    raw.send(*[raw.headers(sid, connect_websocket(), end_stream=False) for sid in sids])
    last = sids[-1]
    raw.wait_for(lambda: all(raw.status(s) is not None for s in sids[:-1]) and raw.rst(last) is not None, 5,
                 "the answers")
    check(f"max_concurrent_streams {MAX_STREAMS}: the streams within it open (200)",
          all(raw.status(s) == 200 for s in sids[:-1]), f"{[raw.status(s) for s in sids]}")
    check("the stream past max_concurrent_streams gets RST_STREAM(REFUSED_STREAM)", raw.rst(last) == REFUSED_STREAM,
          f"rst {raw.rst(last)}")
    raw.send(raw.data(1, h2peer.ws_frame(OP_TEXT, b"still open")))
    raw.wait_for(lambda: b"still open" in raw.received(1)[0], 5, "the echo on stream 1")
    check("the connection goes on after a refused stream", raw.goaway() is None, f"{raw.goaway()}")
    raw.close()
    still_serving(port, "max_concurrent_streams")


def header_list_size(port):
    raw = h2peer.RawClient(port)
    raw.send(raw.headers(1, get("/", [("x-small", "s" * (MAX_HEADER_LIST - 400))])))
    raw.send(raw.headers(3, get("/", [("x-large", "l" * (MAX_HEADER_LIST + 100))])))
    # An HPACK bomb: one 3 KiB field into the dynamic table, then referenced again and again by its index,
    # a byte each on the wire; decoded, the list is far past the limit.
    bomb = raw.headers(5, get("/", [("x-bomb", "b" * 3000)] * 40))
    bomb_wire = len(bomb.data)
    raw.send(bomb)
    raw.wait_for(lambda: all(raw.status(s) is not None or raw.rst(s) is not None for s in (1, 3, 5)), 5, "the answers")
    check(f"max_header_list_size {MAX_HEADER_LIST}: a request within it gets its page", raw.status(1) == 200,
          f"{raw.status(1)} rst {raw.rst(1)}")
    check("a header list past max_header_list_size gets 431", raw.status(3) == 431, f"{raw.status(3)} rst {raw.rst(3)}")
    check(f"an HPACK bomb ({bomb_wire} B on the wire, 120 KiB decoded) gets 431", raw.status(5) == 431,
          f"{raw.status(5)} rst {raw.rst(5)}")
    check("the connection goes on after 431s", raw.goaway() is None, f"{raw.goaway()}")
    raw.close()


def rapid_reset(port):
    raw = h2peer.RawClient(port)
    # Within the burst: no GOAWAY.
    frames = []
    for i in range(RESET_BURST // 2):
        sid = 1 + 2 * i
        frames += [raw.headers(sid, get("/")), hyperframe.frame.RstStreamFrame(sid, error_code=8)]
    raw.send(*frames)
    raw.send(raw.headers(1001, get("/")))
    raw.wait_for(lambda: raw.status(1001) is not None or raw.goaway() is not None, 5, "the answer")
    check(f"stream_reset_burst {RESET_BURST}: {RESET_BURST // 2} resets are served on", raw.status(1001) == 200 and
          raw.goaway() is None, f"status {raw.status(1001)} goaway {raw.goaway()}")
    raw.close()
    raw = h2peer.RawClient(port)
    frames = []
    for i in range(RESET_BURST * 5):
        sid = 1 + 2 * i
        frames += [raw.headers(sid, get("/")), hyperframe.frame.RstStreamFrame(sid, error_code=8)]
    raw.send(*frames)
    raw.wait_for_goaway()
    check(f"rapid reset: {RESET_BURST * 5} resets at once end the connection with GOAWAY", raw.goaway() is not None,
          f"goaway {raw.goaway()} closed {raw.closed}")
    raw.close()
    still_serving(port, "rapid reset")


def continuation_flood(port):
    raw = h2peer.RawClient(port)
    block = raw.headers_block(get("/", [("x-pad", "p" * 300)]))
    pieces = [block[i:i + 30] for i in range(0, len(block), 30)]
    # Within max_continuations: HEADERS + 3 CONTINUATION.
    few = [pieces[0], b"".join(pieces[1:2]), b"".join(pieces[2:3]), b"".join(pieces[3:])]
    frames = [hyperframe.frame.HeadersFrame(1, data=few[0], flags=["END_STREAM"])]
    for i, piece in enumerate(few[1:]):
        frames.append(hyperframe.frame.ContinuationFrame(1, data=piece, flags=["END_HEADERS"] if i == 2 else []))
    raw.send(*frames)
    raw.wait_for(lambda: raw.status(1) is not None or raw.goaway() is not None, 5, "the answer")
    check(f"max_continuations {MAX_CONTINUATIONS}: HEADERS + 3 CONTINUATION is a request", raw.status(1) == 200,
          f"status {raw.status(1)} goaway {raw.goaway()}")
    # A flood: many more CONTINUATION frames than allowed (each a piece of a header list that never ends).
    block = raw.headers_block(get("/", [("x-pad", "p" * 3000)]))
    frames = [hyperframe.frame.HeadersFrame(3, data=block[:10], flags=["END_STREAM"])]
    frames += [hyperframe.frame.ContinuationFrame(3, data=block[10 + i * 10:20 + i * 10]) for i in range(100)]
    raw.send(*frames)
    check("a CONTINUATION flood ends the connection with GOAWAY(ENHANCE_YOUR_CALM)", ends_calmly(raw),
          f"goaway {raw.goaway()} closed {raw.closed}")
    raw.close()
    still_serving(port, "CONTINUATION flood")


def settings_entries(port):
    raw = h2peer.RawClient(port)
    raw.send(hyperframe.frame.SettingsFrame(0, settings={0x4: 65535 + i for i in range(1)}))
    many = hyperframe.frame.SettingsFrame(0)
    # hyperframe keeps one value per id: the entries are written by hand, all repeating one setting.
    entry = (0x4).to_bytes(2, "big") + (70000).to_bytes(4, "big")
    body = entry * (MAX_SETTINGS + 4)
    raw.sock.sendall(len(body).to_bytes(3, "big") + bytes([0x4, 0]) + (0).to_bytes(4, "big") + body)
    raw.wait_for_goaway()
    check(f"max_settings {MAX_SETTINGS}: a SETTINGS frame with {MAX_SETTINGS + 4} entries ends the connection",
          raw.goaway() is not None, f"goaway {raw.goaway()} closed {raw.closed} {many}")
    raw.close()
    raw = h2peer.RawClient(port)
    body = entry * (MAX_SETTINGS - 1)
    raw.sock.sendall(len(body).to_bytes(3, "big") + bytes([0x4, 0]) + (0).to_bytes(4, "big") + body)
    raw.send(raw.headers(1, get("/")))
    raw.wait_for(lambda: raw.status(1) is not None or raw.goaway() is not None, 5, "the answer")
    check(f"a SETTINGS frame with {MAX_SETTINGS - 1} entries is fine", raw.status(1) == 200 and raw.goaway() is None,
          f"status {raw.status(1)} goaway {raw.goaway()}")
    raw.close()


def unread_ack_flood(port, name, frame, ack_type):
    """Frames that each ask for an ACK (PING, SETTINGS; CVE-2019-9512/9515), sent without reading the ACKs:
    nghttp2 stops at its outbound-ACK bound (NGHTTP2_ERR_FLOODED) and the connection ends with
    GOAWAY(ENHANCE_YOUR_CALM) rather than queueing ACKs without end."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the ACKs back up in the server
    sock.connect(("127.0.0.1", port))
    sock.settimeout(3)
    sock.sendall(h2peer.PREFACE + hyperframe.frame.SettingsFrame(0).serialize())
    flood = frame.serialize() * 1000
    sent = 0
    started = time.monotonic()
    try:
        # Bounded by time and by count. A SETTINGS flood crosses nghttp2's bound within one read of the
        # server (16 KiB: 1,820 frames); frames sent after that are read and dropped while the server
        # lingers, and a flood that outlasted its linger would end in a reset that can discard the GOAWAY
        # on its way to us.
        while time.monotonic() - started < 20 and sent < 400_000:
            sock.sendall(flood)
            sent += 1000
    except OSError:
        pass
    sock.settimeout(10)
    received = bytearray()
    try:
        while len(received) < 64 << 20:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += chunk
    except OSError:
        pass
    sock.close()
    at, acks, goaway = 0, 0, None
    while at + 9 <= len(received):
        length, kind, flags = int.from_bytes(received[at:at + 3], "big"), received[at + 3], received[at + 4]
        acks += kind == ack_type and flags & 0x1
        if kind == 0x7:
            goaway = int.from_bytes(received[at + 13:at + 17], "big")
        at += 9 + length
    check(f"a {name} flood ({sent} sent, their ACKs unread) ends with GOAWAY(ENHANCE_YOUR_CALM) after {acks} ACKs",
          goaway == ENHANCE_YOUR_CALM and acks < sent, f"goaway {goaway}, {acks} ACKs of {sent} {name}s")
    still_serving(port, f"{name} flood")


def ping_flood(port):
    unread_ack_flood(port, "PING", hyperframe.frame.PingFrame(0, opaque_data=b"12345678"), 0x6)


def settings_flood(port):
    unread_ack_flood(port, "SETTINGS", hyperframe.frame.SettingsFrame(0, settings={0x4: 65535}), 0x4)


def ends_calmly(raw):
    """Waits (bounded) for the connection's end; whether it came as GOAWAY(ENHANCE_YOUR_CALM)."""
    goaway = raw.wait_for_goaway()
    return goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM


def empty_data_flood(port):
    """DATA frames with no payload and no END_STREAM (CVE-2019-9518): a few in a row are allowed, a frame
    with payload starts the count over; past max_consecutive_empty_data_frames the connection ends."""
    raw = h2peer.RawClient(port)
    raw.send(raw.headers(1, connect_websocket(), end_stream=False))
    raw.wait_for(lambda: raw.status(1) is not None, 5, "the 200")
    echoed = b""
    for word in (b"one", b"two", b"three"):
        raw.send(*[raw.data(1, b"")] * MAX_EMPTY_DATA, raw.data(1, h2peer.ws_frame(OP_TEXT, word)))
        raw.wait_for(lambda: word in raw.received(1)[0], 5, "the echo")
        echoed += word
    check(f"max_consecutive_empty_data_frames {MAX_EMPTY_DATA}: {MAX_EMPTY_DATA} empty DATA frames before each "
          "message are let through, the WebSocket echoes", raw.goaway() is None and b"three" in raw.received(1)[0],
          f"goaway {raw.goaway()}")
    raw.send(*[raw.data(1, b"")] * 1000)
    check(f"an empty DATA flood ({MAX_EMPTY_DATA + 1} and more in a row) ends the connection with "
          "GOAWAY(ENHANCE_YOUR_CALM)", ends_calmly(raw), f"goaway {raw.goaway()} closed {raw.closed}")
    raw.close()
    still_serving(port, "empty DATA flood")


def window_update_flood(port):
    """WINDOW_UPDATE frames far beyond what the DATA we sent calls for: the connection ends."""
    raw = h2peer.RawClient(port)
    raw.send(raw.headers(1, get("/")))
    raw.wait_for(lambda: raw.received(1)[1], 5, "the page")
    data_frames = len(raw.of_type(hyperframe.frame.DataFrame, 1))
    within = 5 + WINDOW_UPDATES_PER_DATA * data_frames
    # A client that reopens its windows after every DATA frame, and more: within the bound.
    raw.send(*[hyperframe.frame.WindowUpdateFrame(0, window_increment=1)] * within)
    raw.send(raw.headers(3, get("/")))
    raw.wait_for(lambda: raw.received(3)[1] or raw.goaway() is not None, 5, "the page again")
    check(f"max_window_updates_per_data_frame {WINDOW_UPDATES_PER_DATA}: {within} WINDOW_UPDATEs after "
          f"{data_frames} DATA frames are fine", raw.goaway() is None and raw.status(3) == 200,
          f"status {raw.status(3)} goaway {raw.goaway()}")
    raw.send(*[hyperframe.frame.WindowUpdateFrame(0, window_increment=1)] * 2000)
    check("a WINDOW_UPDATE flood (2,000 for a page) ends the connection with GOAWAY(ENHANCE_YOUR_CALM)",
          ends_calmly(raw), f"goaway {raw.goaway()} closed {raw.closed}")
    raw.close()
    still_serving(port, "WINDOW_UPDATE flood")


def priority_flood(port):
    """PRIORITY frames (deprecated by RFC 9113, each a change of nghttp2's priority tree; CVE-2019-9513's
    resource loop): past max_priority_frames_per_stream per request the connection ends."""
    raw = h2peer.RawClient(port)
    raw.send(*[hyperframe.frame.PriorityFrame(3 + 2 * i, depends_on=1, stream_weight=16) for i in range(20)])
    raw.send(raw.headers(1, get("/")))
    raw.wait_for(lambda: raw.status(1) is not None or raw.goaway() is not None, 5, "the page")
    check(f"max_priority_frames_per_stream {PRIORITY_PER_STREAM}: 20 PRIORITY frames are fine",
          raw.status(1) == 200 and raw.goaway() is None, f"status {raw.status(1)} goaway {raw.goaway()}")
    raw.send(*[hyperframe.frame.PriorityFrame(1001 + 2 * (i % 50), depends_on=1, stream_weight=16)
               for i in range(2000)])
    check("a PRIORITY flood (2,000 frames) ends the connection with GOAWAY(ENHANCE_YOUR_CALM)",
          ends_calmly(raw), f"goaway {raw.goaway()} closed {raw.closed}")
    raw.close()
    still_serving(port, "PRIORITY flood")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--echo", required=True)
    args = parser.parse_args()
    limits = [f"max_concurrent_streams={MAX_STREAMS}", f"max_header_list_size={MAX_HEADER_LIST}",
              f"stream_reset_burst={RESET_BURST}", "stream_reset_rate=1", f"max_continuations={MAX_CONTINUATIONS}",
              f"max_settings={MAX_SETTINGS}", f"max_consecutive_empty_data_frames={MAX_EMPTY_DATA}",
              f"max_window_updates_per_data_frame={WINDOW_UPDATES_PER_DATA}",
              f"max_priority_frames_per_stream={PRIORITY_PER_STREAM}"]
    server = h2peer.Server(args.echo, ["--urls", "http://127.0.0.1:0", "--h2c",
                                       *[a for limit in limits for a in ("--http2-limit", limit)]])
    try:
        port = server.port("http")
        for test in (concurrent_streams, header_list_size, rapid_reset, continuation_flood, settings_entries, ping_flood,
                     settings_flood, empty_data_flood, window_update_flood, priority_flood):
            try:
                test(port)
            except Exception as e:  # noqa: BLE001 - any escape is a failed case
                check(test.__name__.replace("_", " "), False, f"{type(e).__name__}: {e}")
        server.check_clean_exit()
    finally:
        server.kill()
    sys.exit(summary())


if __name__ == "__main__":
    main()
