"""The Autobahn TestSuite cases of sections 1-7, 9 and 10, with Autobahn's numbering.

The facts (payloads, sizes, fragmentations, chop sizes, waits, close codes) follow the case definitions
of crossbario/autobahn-testsuite (autobahntestsuite/case/). The expected outcome is Autobahn's "OK"
behaviour, made stricter where Autobahn also accepts "NON-STRICT" or only reports "INFORMATIONAL":

  * When the connection must fail, the peer must send a close frame with exactly 1002 (framing, opcode,
    reserved bits, fragmentation, control frames, close codes) or 1007 (invalid UTF-8 in a text message
    or a close reason), after exactly the events Autobahn's OK list names - e.g. in 3.2 the first
    message must be echoed before the failure (Autobahn's NON-STRICT, no echo, is a failure here).
  * A close frame we send with a valid code is answered with the same code (Autobahn also accepts
    1000) and an empty close frame with an empty one.
  * 6.4.x: fail-fast. The peer must not fail while the octets sent so far are a valid UTF-8 prefix, and
    must send its 1007 close within 1 s after the octet that makes the text invalid - before we send
    the rest of the message (Autobahn's NON-STRICT, failing only after the rest, is a failure here).
  * 7.1.6 (Autobahn: informational): the 256 KiB message and "Hello World!" are both echoed, in
    order, before the close reply - messages are processed in the order they arrive - and the ping
    that follows our close gets no pong.
  * 7.13.1/7.13.2 (Autobahn: informational): close codes 5000 and 65535 are outside every range RFC
    6455 7.4.2 defines, so they are protocol errors: close 1002.
  * 3.6: Autobahn's description says "Ping with RSV = 6" but its code sends a binary frame; we send
    the ping the description names.
  * 9.x: the echoed payload is compared octet by octet (Autobahn compares only the length). Sizes are
    Autobahn's (up to 16 MiB), but the waits are bounded by 5-21 s (Autobahn: 10-1000 s).

Each case runs identically against a server (we are the client, frames masked) or a client (we are the
server, frames unmasked): see harness.py for the direction-specific TCP close rule.
"""

import struct
import time

from harness import Case
from rawws import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, binary, describe_close,
                   describe_events, encode_frame, is_utf8, pong, repeat_to, text)

CASES = []


def add(case_id, description, expectation, run, timeout=2.0):
    CASES.append(Case(case_id, description, expectation, run, timeout))


EXPECT_ECHO = "Echo of what was sent, then a clean close with 1000."
EXPECT_1002 = "The connection is failed: close 1002, no further echo or pong."
EXPECT_1007 = "The connection is failed: close 1007 (invalid UTF-8)."

# --------------------------------------------------------------------------------------------------
# 1 Framing


def section_1():
    lengths = [0, 125, 126, 127, 128, 65535, 65536, 65536]
    for kind, opcode, octet, event in (("1", OP_TEXT, b"*", text), ("2", OP_BINARY, b"\xfe", binary)):
        for index, length in enumerate(lengths, 1):
            chop = 997 if index == 8 else None

            def run(t, opcode=opcode, payload=octet * length, chop=chop, event=event):
                t.frame(opcode, payload, chop=chop)
                t.expect_echo([event(payload)])

            add("1.%s.%d" % (kind, index),
                "Send %s message with payload of length %d%s." % (
                    "text" if opcode == OP_TEXT else "binary", length,
                    ", sent out in chops of 997 octets" if chop else ""),
                EXPECT_ECHO, run, timeout=2.0 if length < 65535 else 5.0)


# --------------------------------------------------------------------------------------------------
# 2 Pings/Pongs


def ping_case(payload, chop=None):
    def run(t):
        t.frame(OP_PING, payload, chop=chop)
        t.expect_echo([pong(payload)])
    return run


def section_2():
    add("2.1", "Send ping without payload.", "Pong with empty payload. Clean close 1000.", ping_case(b""))
    add("2.2", "Send ping with small text payload.", "Pong echoing the payload.", ping_case(b"Hello, world!"))
    add("2.3", "Send ping with small binary (non UTF-8) payload.", "Pong echoing the payload.",
        ping_case(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"))
    add("2.4", "Send ping with binary payload of 125 octets.", "Pong echoing the payload.", ping_case(b"\xfe" * 125))

    def run_2_5(t):
        t.frame(OP_PING, b"\xfe" * 126)
        t.expect_fail(1002)
    add("2.5", "Send ping with binary payload of 126 octets.", "Control frame too long: " + EXPECT_1002, run_2_5)
    add("2.6", "Send ping with binary payload of 125 octets, sent in octet-wise chops.",
        "Pong echoing the payload.", ping_case(b"\xfe" * 125, chop=1))

    def unsolicited(payload):
        def run(t):
            t.frame(OP_PONG, payload)
            t.close(1000)
            t.expect_close_reply(1000)
        return run
    add("2.7", "Send unsolicited pong without payload, then close.", "Nothing in reply to the pong; close 1000.",
        unsolicited(b""))
    add("2.8", "Send unsolicited pong with payload, then close.", "Nothing in reply to the pong; close 1000.",
        unsolicited(b"unsolicited pong payload"))

    def run_2_9(t):
        t.frame(OP_PONG, b"unsolicited pong payload")
        t.frame(OP_PING, b"ping payload")
        t.expect_echo([pong(b"ping payload")])
    add("2.9", "Send unsolicited pong with payload, then ping with payload.",
        "Nothing for the pong, a pong for the ping.", run_2_9)

    def ten_pings(chop):
        def run(t):
            payloads = [b"payload-%d" % i for i in range(10)]
            for payload in payloads:
                t.frame(OP_PING, payload, chop=chop)
            t.expect_echo([pong(p) for p in payloads], timeout=3.0)
        return run
    add("2.10", "Send 10 pings with payload.", "10 pongs with all the payloads, in order.", ten_pings(None))
    add("2.11", "Send 10 pings with payload, sent in octet-wise chops.", "10 pongs with all the payloads, in order.",
        ten_pings(1))


# --------------------------------------------------------------------------------------------------
# 3 Reserved bits


def section_3():
    hello = b"Hello, world!"

    def single(opcode, payload, rsv):
        def run(t):
            t.frame(opcode, payload, rsv=rsv)
            t.expect_fail(1002)
        return run

    def echo_then_bad(rsv, sync=False, chop=None):
        def run(t):
            t.frame(OP_TEXT, hello, sync=sync, chop=chop)
            t.frame(OP_TEXT, hello, rsv=rsv, sync=sync, chop=chop)
            t.frame(OP_PING, b"", sync=sync, chop=chop)
            t.expect_fail(1002, [text(hello)])
        return run

    add("3.1", "Send small text message with RSV = 1.", EXPECT_1002, single(OP_TEXT, hello, 1))
    add("3.2", "Send small text message, then again with RSV = 2, then a ping.",
        "Echo of the first message, then " + EXPECT_1002, echo_then_bad(2))
    add("3.3", "As 3.2 with RSV = 3, octets sent in frame-wise chops.",
        "Echo of the first message, then " + EXPECT_1002, echo_then_bad(3, sync=True))
    add("3.4", "As 3.2 with RSV = 4, octets sent in octet-wise chops.",
        "Echo of the first message, then " + EXPECT_1002, echo_then_bad(4, chop=1))
    add("3.5", "Send small binary message with RSV = 5.", EXPECT_1002,
        single(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 5))
    add("3.6", "Send ping with RSV = 6.", EXPECT_1002, single(OP_PING, hello, 6))
    add("3.7", "Send close with RSV = 7.", EXPECT_1002, single(OP_CLOSE, b"", 7))


# --------------------------------------------------------------------------------------------------
# 4 Opcodes


def section_4():
    hello = b"Hello, world!"

    def alone(opcode, payload):
        def run(t):
            t.frame(opcode, payload)
            t.expect_fail(1002)
        return run

    def after_message(opcode, payload, chop=None):
        def run(t):
            t.frame(OP_TEXT, hello, chop=chop)
            t.frame(opcode, payload, chop=chop)
            t.frame(OP_PING, b"", chop=chop)
            t.expect_fail(1002, [text(hello)])
        return run

    for sub, kind, codes in (("1", "non-control", (3, 4, 5, 6, 7)), ("2", "control", (11, 12, 13, 14, 15))):
        a, b, c, d, e = codes
        add("4.%s.1" % sub, "Send frame with reserved %s opcode = %d." % (kind, a), EXPECT_1002, alone(a, b""))
        add("4.%s.2" % sub, "Send frame with reserved %s opcode = %d and non-empty payload." % (kind, b),
            EXPECT_1002, alone(b, b"reserved opcode payload"))
        add("4.%s.3" % sub, "Send small text message, then frame with reserved %s opcode = %d, then ping." % (kind, c),
            "Echo of the message, then " + EXPECT_1002, after_message(c, b""))
        add("4.%s.4" % sub, "Send small text message, then frame with reserved %s opcode = %d and payload, then ping."
            % (kind, d), "Echo of the message, then " + EXPECT_1002, after_message(d, hello))
        add("4.%s.5" % sub, "As 4.%s.4 with opcode = %d, octets sent in octet-wise chops." % (sub, e),
            "Echo of the message, then " + EXPECT_1002, after_message(e, hello, chop=1))


# --------------------------------------------------------------------------------------------------
# 5 Fragmentation


def section_5():
    def fragmented_control(opcode):
        def run(t):
            t.frame(opcode, b"fragment1", fin=False)
            t.frame(OP_CONTINUATION, b"fragment2")
            t.expect_fail(1002)
        return run

    add("5.1", "Send ping fragmented into 2 fragments.", EXPECT_1002, fragmented_control(OP_PING))
    add("5.2", "Send pong fragmented into 2 fragments.", EXPECT_1002, fragmented_control(OP_PONG))

    def two_fragments(sync=False, chop=None, ping=False):
        def run(t):
            t.frame(OP_TEXT, b"fragment1", fin=False, sync=sync, chop=chop)
            if ping:
                t.frame(OP_PING, b"ping payload", sync=sync, chop=chop)
            t.frame(OP_CONTINUATION, b"fragment2", sync=sync, chop=chop)
            t.expect_echo(([pong(b"ping payload")] if ping else []) + [text(b"fragment1fragment2")])
        return run

    add("5.3", "Send text message fragmented into 2 fragments.", "The message is echoed.", two_fragments())
    add("5.4", "As 5.3, octets sent in frame-wise chops.", "The message is echoed.", two_fragments(sync=True))
    add("5.5", "As 5.3, octets sent in octet-wise chops.", "The message is echoed.", two_fragments(chop=1))
    add("5.6", "Send text message fragmented into 2 fragments, one ping with payload in-between.",
        "A pong, then the message echoed.", two_fragments(ping=True))
    add("5.7", "As 5.6, octets sent in frame-wise chops.", "A pong, then the message echoed.",
        two_fragments(sync=True, ping=True))
    add("5.8", "As 5.6, octets sent in octet-wise chops.", "A pong, then the message echoed.",
        two_fragments(chop=1, ping=True))

    def nothing_to_continue(fin, sync=False, chop=None):
        def run(t):
            t.frame(OP_CONTINUATION, b"non-continuation payload", fin=fin, sync=sync, chop=chop)
            t.frame(OP_TEXT, b"Hello, world!", sync=sync, chop=chop)
            t.expect_fail(1002)
        return run

    for base, fin in ((9, True), (12, False)):
        what = "Send unfragmented text message after continuation frame with FIN = %s, where there is nothing to " \
               "continue, sent in %%s." % ("true" if fin else "false")
        add("5.%d" % base, what % "one chop", EXPECT_1002, nothing_to_continue(fin))
        add("5.%d" % (base + 1), what % "per-frame chops", EXPECT_1002, nothing_to_continue(fin, sync=True))
        add("5.%d" % (base + 2), what % "octet-wise chops", EXPECT_1002, nothing_to_continue(fin, chop=1))

    def run_5_15(t):
        t.frame(OP_TEXT, b"fragment1", fin=False)
        t.frame(OP_CONTINUATION, b"fragment2")
        t.frame(OP_CONTINUATION, b"fragment3", fin=False)
        t.frame(OP_TEXT, b"fragment4")
        t.expect_fail(1002, [text(b"fragment1fragment2")])
    add("5.15", "Send text message in 2 fragments, then continuation frame with FIN = false where there is nothing "
        "to continue, then unfragmented text message, all in one chop.",
        "Echo of the first message, then " + EXPECT_1002, run_5_15)

    def repeated(first_fin):
        def run(t):
            for _ in range(2):
                t.frame(OP_CONTINUATION, b"fragment1", fin=first_fin)
                t.frame(OP_TEXT, b"fragment2", fin=False)
                t.frame(OP_CONTINUATION, b"fragment3")
            t.expect_fail(1002)
        return run
    add("5.16", "Repeated 2x: continuation frame with FIN = false (nothing to continue), then text message in 2 "
        "fragments.", EXPECT_1002, repeated(False))
    add("5.17", "Repeated 2x: continuation frame with FIN = true (nothing to continue), then text message in 2 "
        "fragments.", EXPECT_1002, repeated(True))

    def run_5_18(t):
        t.frame(OP_TEXT, b"fragment1", fin=False)
        t.frame(OP_TEXT, b"fragment2")
        t.expect_fail(1002)
    add("5.18", "Send text message in 2 fragments with both frame opcodes set to text, in one chop.", EXPECT_1002,
        run_5_18)

    def pings_inside(sync):
        def run(t):
            fragments = [b"fragment%d" % i for i in range(1, 6)]
            pings = [b"pongme 1!", b"pongme 2!"]
            t.frame(OP_TEXT, fragments[0], fin=False, sync=sync)
            t.frame(OP_CONTINUATION, fragments[1], fin=False, sync=sync)
            t.frame(OP_PING, pings[0], sync=sync)
            t.wait(1.0)
            t.check_violations()
            if t.conn.events != [pong(pings[0])]:
                t.fail("the first ping was not answered before the message was finished: after 1 s got %s%s" % (
                    describe_events(t.conn.events),
                    " and %s" % describe_close(t.conn.close) if t.conn.close else ""))
            t.frame(OP_CONTINUATION, fragments[2], fin=False, sync=sync)
            t.frame(OP_CONTINUATION, fragments[3], fin=False, sync=sync)
            t.frame(OP_PING, pings[1], sync=sync)
            t.frame(OP_CONTINUATION, fragments[4], sync=sync)
            t.expect_echo([pong(pings[0]), pong(pings[1]), text(b"".join(fragments))])
        return run
    add("5.19", "Text message in 5 fragments; a ping after the first 2, wait 1 s, 2 more fragments, another ping, "
        "the last fragment.", "The first pong arrives during the wait (before the message is finished), then the "
        "second pong and the echoed message.", pings_inside(False), timeout=3.0)
    add("5.20", "As 5.19, every frame sent in its own write (SYNC).", "As 5.19.", pings_inside(True), timeout=3.0)


# --------------------------------------------------------------------------------------------------
# 6 UTF-8 handling

KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # κόσμε
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode("utf-8")


def utf8_test_sequences():
    """Markus Kuhn's UTF-8 decoder stress test as Autobahn groups it into 6.5 ... 6.23."""
    groups = []
    groups.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
        (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)]))
    groups.append(("All prefixes of a valid UTF-8 string that contains multi-byte code points",
                   [(is_utf8(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)]))
    groups.append(("First possible sequence of a certain length",
                   [(True, bytes.fromhex(h)) for h in ("00", "c280", "e0a080", "f0908080")]))
    groups.append(("First possible sequence length 5/6 (invalid codepoints)",
                   [(False, bytes.fromhex(h)) for h in ("f888808080", "fc8480808080")]))
    groups.append(("Last possible sequence of a certain length",
                   [(True, bytes.fromhex(h)) for h in ("7f", "dfbf", "efbfbf", "f48fbfbf")]))
    groups.append(("Last possible sequence length 4/5/6 (invalid codepoints)",
                   [(False, bytes.fromhex(h)) for h in ("f7bfbfbf", "fbbfbfbfbf", "fdbfbfbfbfbf")]))
    groups.append(("Other boundary conditions",
                   [(True, bytes.fromhex(h)) for h in ("ed9fbf", "ee8080", "efbfbd", "f48fbfbf")] +
                   [(False, bytes.fromhex("f4908080"))]))
    groups.append(("Unexpected continuation bytes",
                   [(False, bytes.fromhex(h)) for h in ("80", "bf", "80bf", "80bf80", "80bf80bf", "80bf80bf80",
                                                        "80bf80bf80bf")] +
                   [(False, bytes(range(0x80, 0xBF)))]))
    groups.append(("Lonely start characters",
                   [(False, b"".join(bytes([i, 0x20]) for i in range(lo, hi)))
                    for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD))]))
    missing_last = [bytes.fromhex(h) for h in ("c0", "e080", "f08080", "f8808080", "fc80808080",
                                               "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf")]
    groups.append(("Sequences with last continuation byte missing", [(False, s) for s in missing_last]))
    groups.append(("Concatenation of incomplete sequences", [(False, b"".join(missing_last))]))
    groups.append(("Impossible bytes", [(False, bytes.fromhex(h)) for h in ("fe", "ff", "fefeffff")]))
    groups.append(("Examples of an overlong ASCII character",
                   [(False, bytes.fromhex(h)) for h in ("c0af", "e080af", "f08080af", "f8808080af", "fc80808080af")]))
    groups.append(("Maximum overlong sequences",
                   [(False, bytes.fromhex(h)) for h in ("c1bf", "e09fbf", "f08fbfbf", "f887bfbfbf", "fc83bfbfbfbf")]))
    groups.append(("Overlong representation of the NUL character",
                   [(False, bytes.fromhex(h)) for h in ("c080", "e08080", "f0808080", "f880808080", "fc8080808080")]))
    groups.append(("Single UTF-16 surrogates",
                   [(False, bytes.fromhex(h)) for h in ("eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80",
                                                        "edbfbf")]))
    groups.append(("Paired UTF-16 surrogates",
                   [(False, bytes.fromhex(h)) for h in ("eda080edb080", "eda080edbfbf", "edadbfedb080", "edadbfedbfbf",
                                                        "edae80edb080", "edae80edbfbf", "edafbfedb080",
                                                        "edafbfedbfbf")]))
    noncharacters = [bytes.fromhex("efbfbe"), bytes.fromhex("efbfbf")]
    for z1 in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4):
        for z2 in (0x8F, 0x9F, 0xAF, 0xBF):
            if z1 == 0xF4 and z2 != 0x8F:
                continue  # above U+10FFFF
            for z3 in (0xBE, 0xBF):
                sequence = bytes([z1, z2, 0xBF, z3])
                if sequence not in (bytes.fromhex("f08fbfbe"), bytes.fromhex("f08fbfbf")):  # overlong
                    noncharacters.append(sequence)
    groups.append(("Non-character code points (valid UTF-8)", [(True, s) for s in noncharacters]))
    groups.append(("Unicode specials (i.e. replacement char)",
                   [(True, bytes.fromhex("efbf%02x" % b)) for b in range(0xB9, 0xC0)]))
    for title, sequences in groups:
        for valid, payload in sequences:
            assert valid == is_utf8(payload), (title, payload)
    return groups


def section_6():
    def echo_frames(frames, expected):
        def run(t):
            for opcode, payload, fin in frames:
                t.frame(opcode, payload, fin=fin)
            t.expect_echo([text(expected)])
        return run

    add("6.1.1", "Send text message of length 0.", "The empty message is echoed.",
        echo_frames([(OP_TEXT, b"", True)], b""))
    add("6.1.2", "Send fragmented text message, 3 fragments each of length 0.", "The empty message is echoed.",
        echo_frames([(OP_TEXT, b"", False), (OP_CONTINUATION, b"", False), (OP_CONTINUATION, b"", True)], b""))
    add("6.1.3", "Send fragmented text message, 3 fragments, first and last of length 0, middle non-empty.",
        "The message (the middle payload) is echoed.",
        echo_frames([(OP_TEXT, b"", False), (OP_CONTINUATION, b"middle frame payload", False),
                     (OP_CONTINUATION, b"", True)], b"middle frame payload"))

    def whole(payload, fragment_size=None, valid=True):
        def run(t):
            t.message(OP_TEXT, payload, fragment_size=fragment_size)
            if valid:
                t.expect_echo([text(payload)])
            else:
                t.expect_fail(1007)
        return run

    add("6.2.1", "Send a valid UTF-8 text message in one fragment.", "The message is echoed.", whole(HELLO_UTF8))
    add("6.2.2", "Send a valid UTF-8 text message in two fragments, fragmented on a code point boundary.",
        "The message is echoed.", echo_frames([(OP_TEXT, "Hello-µ@ßöä".encode(), False),
                                               (OP_CONTINUATION, "üàá-UTF-8!!".encode(), True)], HELLO_UTF8))
    add("6.2.3", "Send a valid UTF-8 text message in fragments of 1 octet (frames end inside code points).",
        "The message is echoed.", whole(HELLO_UTF8, fragment_size=1))
    add("6.2.4", "Send a valid UTF-8 text message (κόσμε) in fragments of 1 octet.", "The message is echoed.",
        whole(KOSME, fragment_size=1))

    invalid = KOSME + b"\xed\xa0\x80" + b"edited"
    add("6.3.1", "Send invalid UTF-8 text message unfragmented.", EXPECT_1007, whole(invalid, valid=False))
    add("6.3.2", "Send invalid UTF-8 text message in fragments of 1 octet.", EXPECT_1007,
        whole(invalid, fragment_size=1, valid=False))

    section_6_4()

    for group_index, (title, sequences) in enumerate(utf8_test_sequences(), 5):
        for index, (valid, payload) in enumerate(sequences, 1):
            add("6.%d.%d" % (group_index, index),
                "%s: send a text message with payload 0x%s in one frame." % (title, payload.hex()),
                "The message is echoed." if valid else EXPECT_1007, whole(payload, valid=valid))


FAIL_FAST_WAIT = 1.0


def section_6_4():
    part1 = KOSME
    part2 = b"\xf4\x90\x80\x80"  # 0x110000 in the UTF-8 integer scheme: out of range
    part3 = b"edited"
    payload = part1 + part2 + part3

    def fail_fast(split, in_frames):
        """Send the message in 3 parts with 1 s waits; the second part makes it invalid."""
        def run(t):
            if in_frames:
                pieces = [payload[: split[0]], payload[split[0] : split[1]], payload[split[1] :]]
                parts = [encode_frame(OP_TEXT if i == 0 else OP_CONTINUATION, piece, fin=i == 2,
                                      mask=t.conn.mask_outgoing) for i, piece in enumerate(pieces)]
            else:
                parts = t.frame_in_parts(OP_TEXT, payload, split)
            t.raw(parts[0])
            t.wait(FAIL_FAST_WAIT)
            t.check_violations()
            if t.closed_or_failed():
                t.fail("the connection was closed (%s) while the text so far was a valid UTF-8 prefix" % (
                    describe_close(t.conn.close) if t.conn.close else t.conn.ended()))
            if t.conn.events:
                t.fail("unexpected events for an unfinished message: %s" % describe_events(t.conn.events))
            t.raw(parts[1])
            if not t.conn.run_until(t.closed_or_failed, FAIL_FAST_WAIT):
                t.raw(parts[2])
                t.conn.run_until(t.closed_or_failed, t.timeout)
                t.fail("not fail-fast: no close frame within %.1f s after the invalid octet; after the rest of the "
                       "message was sent the peer answered with %s" % (
                           FAIL_FAST_WAIT, describe_close(t.conn.close) if t.conn.close else
                           (t.conn.ended() if t.conn.eof else "nothing")))
            t.expect_fail(1007)
        return run

    expectation = ("No failure after the valid first part (1 s wait); close 1007 within 1 s after the invalid "
                   "octets, before the rest of the message is sent.")
    add("6.4.1", "Invalid UTF-8 text message in 3 frames with 1 s waits; the 2nd frame (f4908080) makes it invalid.",
        expectation, fail_fast((len(part1), len(part1) + len(part2)), True), timeout=2.0)
    add("6.4.2", "As 6.4.1, but the 2nd frame holds only the octet that makes the payload invalid (0x90).",
        expectation, fail_fast((12, 13), True), timeout=2.0)
    add("6.4.3", "As 6.4.1, but the message is one frame sent in 3 chops.",
        expectation, fail_fast((len(part1), len(part1) + len(part2)), False), timeout=2.0)
    add("6.4.4", "As 6.4.2, but the message is one frame sent in 3 chops.",
        expectation, fail_fast((12, 13), False), timeout=2.0)


# --------------------------------------------------------------------------------------------------
# 7 Close handling


def section_7():
    def run_7_1_1(t):
        t.frame(OP_TEXT, b"Hello World!")
        t.expect_echo([text(b"Hello World!")])
    add("7.1.1", "Send a message; after its echo, a close frame.", "Echoed message, then a clean close with 1000.",
        run_7_1_1)

    def close_then(what):
        def run(t):
            if what == "fragment":
                t.frame(OP_TEXT, b"fragment1", fin=False)
            t.close(1000)
            if what == "close":
                t.frame(OP_CLOSE, b"")
            elif what == "ping":
                t.frame(OP_PING, b"")
            elif what == "text":
                t.frame(OP_TEXT, b"Hello World!")
            elif what == "fragment":
                t.frame(OP_CONTINUATION, b"fragment2")
            t.expect_close_reply(1000)
        return run
    add("7.1.2", "Send two close frames.", "Close 1000 in reply; the second close frame is ignored.",
        close_then("close"))
    add("7.1.3", "Send a ping after the close frame.", "Close 1000 in reply, no pong.", close_then("ping"))
    add("7.1.4", "Send a text message after the close frame.", "Close 1000 in reply, the message is ignored.",
        close_then("text"))
    add("7.1.5", "Send message fragment 1, then close, then fragment 2.",
        "Close 1000 in reply, no message.", close_then("fragment"))

    def run_7_1_6(t):
        big = repeat_to(b"BAsd7&jh23", 256 * 1024)
        t.frame(OP_TEXT, big)
        t.frame(OP_TEXT, b"Hello World!")
        t.close(1000)
        t.frame(OP_PING, b"")
        t.expect_close_reply(1000, events=[text(big), text(b"Hello World!")])
    add("7.1.6", "Send a 256 KiB message, then 'Hello World!', then close, then a ping (back to back).",
        "Both messages echoed in order, then close 1000, no pong.", run_7_1_6, timeout=5.0)

    def close_reply(code, reason=b""):
        def run(t):
            t.close(code, reason)
            t.expect_close_reply(code, reason)
        return run

    def bad_close(raw, code):
        def run(t):
            t.close(raw=raw)
            t.expect_fail(code)
        return run

    add("7.3.1", "Send a close frame with payload length 0 (no code, no reason).",
        "An empty close frame in reply.", close_reply(None))
    add("7.3.2", "Send a close frame with payload length 1.", EXPECT_1002, bad_close(b"a", 1002))
    add("7.3.3", "Send a close frame with payload length 2 (code 1000).", "Close 1000 in reply.", close_reply(1000))
    add("7.3.4", "Send a close frame with code 1000 and reason 'Hello World!'.",
        "Close 1000 in reply (server: with the same reason).", close_reply(1000, b"Hello World!"))
    add("7.3.5", "Send a close frame with code 1000 and a reason of maximum length (123).",
        "Close 1000 in reply (server: with the same reason).", close_reply(1000, b"*" * 123))
    add("7.3.6", "Send a close frame with code 1000 and a 124-octet reason (payload 126 octets).",
        "Control frame too long: " + EXPECT_1002, bad_close(struct.pack("!H", 1000) + b"*" * 124, 1002))
    add("7.5.1", "Send a close frame with code 1000 and a reason that is not valid UTF-8.",
        "Close 1007.", bad_close(struct.pack("!H", 1000) + KOSME + b"\xed\xa0\x80" + b"edited", 1007))

    for index, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999], 1):
        add("7.7.%d" % index, "Send close with valid close code %d." % code,
            "Close %d echoed in reply." % code, close_reply(code))
    for index, code in enumerate([0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999], 1):
        add("7.9.%d" % index, "Send close with invalid close code %d." % code, EXPECT_1002,
            bad_close(struct.pack("!H", code), 1002))
    add("7.13.1", "Send close with close code 5000.", "Code outside every RFC 6455 range: " + EXPECT_1002,
        bad_close(struct.pack("!H", 5000), 1002))
    add("7.13.2", "Send close with close code 65535.", "Code outside every RFC 6455 range: " + EXPECT_1002,
        bad_close(struct.pack("!H", 65535), 1002))


# --------------------------------------------------------------------------------------------------
# 9 Limits/performance


def section_9():
    KiB = 1024
    MiB = 1024 * 1024

    def one_message(opcode, payload, fragment_size=None, chop=None):
        def run(t):
            t.message(opcode, payload, fragment_size=fragment_size, chop=chop)
            t.expect_echo([(text if opcode == OP_TEXT else binary)(payload)])
        return run

    sizes = [64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB]
    for sub, opcode, pattern in (("1", OP_TEXT, b"BAsd7&jh23"), ("2", OP_BINARY, b"\x00\xfe\x23\xfa\xf0")):
        for index, size in enumerate(sizes, 1):
            add("9.%s.%d" % (sub, index), "Send %s message with payload of length %s." % (
                "text" if opcode == OP_TEXT else "binary", human(size)),
                "The message is echoed (compared octet by octet).",
                one_message(opcode, repeat_to(pattern, size)), timeout=5.0 + size / MiB)

    fragment_sizes = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]
    for sub, opcode, octet in (("3", OP_TEXT, b"*"), ("4", OP_BINARY, b"\xfe")):
        for index, fragment_size in enumerate(fragment_sizes, 1):
            add("9.%s.%d" % (sub, index), "Send fragmented %s message of length 4 MiB in fragments of %s." % (
                "text" if opcode == OP_TEXT else "binary", human(fragment_size)),
                "The message is echoed.", one_message(opcode, octet * (4 * MiB), fragment_size=fragment_size),
                timeout=15.0)

    chop_sizes = [64, 128, 256, 512, 1024, 2048]
    for sub, opcode, pattern in (("5", OP_TEXT, b"BAsd7&jh23"), ("6", OP_BINARY, b"\x00\xfe\x23\xfa\xf0")):
        for index, chop in enumerate(chop_sizes, 1):
            add("9.%s.%d" % (sub, index), "Send %s message of length 1 MiB in chops of %d octets." % (
                "text" if opcode == OP_TEXT else "binary", chop),
                "The message is echoed.", one_message(opcode, repeat_to(pattern, 1 * MiB), chop=chop), timeout=15.0)

    def round_trips(opcode, payload, count):
        def run(t):
            deadline = time.monotonic() + t.timeout
            for i in range(count):
                t.frame(opcode, payload)
                if not t.wait_for_events(i + 1, max(0.0, deadline - time.monotonic())):
                    t.check_violations()
                    t.fail("only %d of %d messages echoed within %.0f s%s" % (
                        len(t.conn.events), count, t.timeout,
                        " (%s)" % describe_close(t.conn.close) if t.conn.close else ""))
            event = (text if opcode == OP_TEXT else binary)(payload)
            t.expect_echo([event] * count)
        return run

    for sub, opcode, octet in (("7", OP_TEXT, b"*"), ("8", OP_BINARY, b"\xfe")):
        for index, size in enumerate([0, 16, 64, 256, 1024, 4096], 1):
            add("9.%s.%d" % (sub, index), "Send 1000 %s messages of payload size %d, one after the other's echo." % (
                "text" if opcode == OP_TEXT else "binary", size),
                "All 1000 messages are echoed.", round_trips(opcode, octet * size, 1000), timeout=15.0)


def human(size):
    if size >= 1024 * 1024:
        return "%d MiB" % (size // (1024 * 1024))
    if size >= 1024:
        return "%d KiB" % (size // 1024)
    return "%d" % size


# --------------------------------------------------------------------------------------------------
# 10 Auto-fragmentation


def section_10():
    def run(t):
        payload = b"*" * 65536
        t.message(OP_TEXT, payload, fragment_size=1300)
        t.expect_echo([text(payload)])
    add("10.1.1", "Send text message of length 65536 auto-fragmented in frames of 1300 octets (51 frames).",
        "The message is echoed.", run, timeout=5.0)


section_1()
section_2()
section_3()
section_4()
section_5()
section_6()
section_7()
section_9()
section_10()
CASES.sort(key=lambda c: c.sort_key())
