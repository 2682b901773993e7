"""permessage-deflate (RFC 7692) for the raw peer: negotiation in both roles and a codec that holds the
peer to what was agreed (standard library only: Python's zlib).

Negotiation. `parse_extensions` reads Sec-WebSocket-Extensions values (RFC 6455 9.1: elements split at
commas outside quoted strings, `;` parameters, token or quoted-string values); `interpret` applies the
rules of RFC 7692 7.1 to one permessage-deflate element (no unknown or repeated parameter, window sizes
8-15 in decimal without leading zeros, client_max_window_bits without a value only in an offer).
  Client role (server suite): `check_response` finds the offer a server's answer accepts and what that
  means for both directions, or says which rule the answer breaks.
  Server role (client suite): `autobahn_accept` answers a client's offers the way the Autobahn fuzzing
  server's accept functions of sections 12 and 13 do; `answer_with` answers with chosen parameters
  (section 14).

The codec (`Codec`) compresses what we send with the parameters of our direction (Python's zlib with
Z_SYNC_FLUSH, the trailing 00 00 ff ff removed, a fresh compressor per message without context
takeover; window 8 is sent with 9, whose matches never reach further back than 250 bytes). It
decompresses what the peer sends with the parameters of the peer's direction and checks them:
  * without context takeover every message gets a fresh inflater, so a message that refers back into
    an earlier one does not decode;
  * with a window below 15 the peer's data is inflated in steps of at most half the window, so a match
    further back than 1.5 times the agreed window fails ("invalid distance too far back": zlib's inflater
    keeps only 2^w bytes of history between calls).
"""

import re
import zlib

EXTENSION = "permessage-deflate"
EMPTY_BLOCK_TAIL = b"\x00\x00\xff\xff"

TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
WINDOW_BITS = re.compile(r"(?:[89]|1[0-5])\Z")


class DeflateError(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# Sec-WebSocket-Extensions


def parse_extensions(values):
    """[(name, [(parameter, value or None)])] from header values; raises ValueError on bad syntax."""
    elements = []
    for value in values:
        at = 0
        size = len(value)

        def skip_spaces():
            nonlocal at
            while at < size and value[at] in " \t":
                at += 1

        def token():
            nonlocal at
            start = at
            while at < size and value[at] in TOKEN_CHARS:
                at += 1
            return value[start:at]

        def quoted():
            nonlocal at
            at += 1
            out = []
            while at < size:
                c = value[at]
                at += 1
                if c == '"':
                    return "".join(out)
                if c == "\\":
                    if at == size:
                        break
                    c = value[at]
                    at += 1
                out.append(c)
            raise ValueError("unterminated quoted string in %r" % value)

        while True:
            skip_spaces()
            if at == size:
                break
            if value[at] == ",":
                at += 1
                continue
            name = token()
            if not name:
                raise ValueError("expected an extension name at %r" % value[at:])
            parameters = []
            while True:
                skip_spaces()
                if at == size or value[at] == ",":
                    break
                if value[at] != ";":
                    raise ValueError("expected ';' or ',' at %r" % value[at:])
                at += 1
                skip_spaces()
                parameter = token()
                if not parameter:
                    raise ValueError("expected a parameter name at %r" % value[at:])
                skip_spaces()
                parameter_value = None
                if at < size and value[at] == "=":
                    at += 1
                    skip_spaces()
                    if at < size and value[at] == '"':
                        parameter_value = quoted()
                        if not parameter_value or any(c not in TOKEN_CHARS for c in parameter_value):
                            raise ValueError("quoted value %r of %s is not a token" % (parameter_value, parameter))
                    else:
                        parameter_value = token()
                        if not parameter_value:
                            raise ValueError("missing value of %s" % parameter)
                parameters.append((parameter, parameter_value))
            elements.append((name, parameters))
    return elements


class Params:
    """One permessage-deflate element. Window bits: None (absent), True (no value: offers only), 8-15."""

    def __init__(self, server_no_context_takeover=False, client_no_context_takeover=False,
                 server_max_window_bits=None, client_max_window_bits=None):
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits

    def header(self):
        parts = [EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append("server_max_window_bits=%d" % self.server_max_window_bits)
        if self.client_max_window_bits is True:
            parts.append("client_max_window_bits")
        elif self.client_max_window_bits is not None:
            parts.append("client_max_window_bits=%d" % self.client_max_window_bits)
        return "; ".join(parts)


def interpret(parameters, kind):
    """RFC 7692 7.1 on one permessage-deflate element's parameters; kind is "offer" or "response"."""
    p = Params()
    seen = set()
    for name, value in parameters:
        key = name.lower()
        if key in seen:
            raise ValueError("repeated parameter %s" % name)
        seen.add(key)
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise ValueError("%s takes no value (got %r)" % (name, value))
            setattr(p, key, True)
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            if value is None:
                if key == "client_max_window_bits" and kind == "offer":
                    p.client_max_window_bits = True
                    continue
                raise ValueError("%s needs a value in %s" % (name, "an offer" if kind == "offer" else "a response"))
            if not WINDOW_BITS.match(value):
                raise ValueError("%s=%s is not 8-15 in decimal without leading zeros" % (name, value))
            setattr(p, key, int(value))
        else:
            raise ValueError("unknown parameter %s" % name)
    return p


class Negotiated:
    """What both ends agreed: each direction's window and context takeover."""

    def __init__(self, server_window=15, client_window=15, server_no_context_takeover=False,
                 client_no_context_takeover=False):
        self.server_window = server_window
        self.client_window = client_window
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover

    def __eq__(self, other):
        return isinstance(other, Negotiated) and vars(self) == vars(other)

    def __str__(self):
        def side(window, no_takeover):
            return "window %d%s" % (window, ", no context takeover" if no_takeover else "")
        return "server %s; client %s" % (side(self.server_window, self.server_no_context_takeover),
                                          side(self.client_window, self.client_no_context_takeover))


# --------------------------------------------------------------------------------------------------
# Client role: the server's answer


def compatible(offer, answer):
    """None if `answer` can accept `offer` (RFC 7692 7.1), else why not."""
    if answer.client_max_window_bits is not None and offer.client_max_window_bits is None:
        return "client_max_window_bits in the answer, not offered (7.1.2.2)"
    if offer.server_no_context_takeover and not answer.server_no_context_takeover:
        return "server_no_context_takeover offered but not in the answer (7.1.1.1)"
    if offer.server_max_window_bits is not None:
        if answer.server_max_window_bits is None:
            return "server_max_window_bits=%d offered but not in the answer (7.1.2.1)" % offer.server_max_window_bits
        if answer.server_max_window_bits > offer.server_max_window_bits:
            return "server_max_window_bits=%d answers an offer of %d (7.1.2.1)" % (
                answer.server_max_window_bits, offer.server_max_window_bits)
    return None


def negotiated_from(offer, answer):
    hint = 15 if offer.client_max_window_bits in (None, True) else offer.client_max_window_bits
    return Negotiated(
        server_window=answer.server_max_window_bits or 15,
        client_window=min(answer.client_max_window_bits or 15, hint),
        server_no_context_takeover=answer.server_no_context_takeover,
        client_no_context_takeover=answer.client_no_context_takeover or offer.client_no_context_takeover)


def check_response(offers, values):
    """The server's Sec-WebSocket-Extensions values against our offers (Params): None when it declined,
    else (index of the accepted offer, Negotiated). Raises ValueError with the broken rule."""
    elements = parse_extensions(values)
    if not elements:
        return None
    names = [name for name, _ in elements]
    if any(name.lower() != EXTENSION for name in names):
        raise ValueError("the server accepted an extension nobody offered: %s" % ", ".join(names))
    if len(elements) > 1:
        raise ValueError("the server accepted permessage-deflate %d times" % len(elements))
    answer = interpret(elements[0][1], "response")
    reasons = []
    for index, offer in enumerate(offers):
        reason = compatible(offer, answer)
        if reason is None:
            return index, negotiated_from(offer, answer)
        reasons.append("offer %d: %s" % (index + 1, reason))
    raise ValueError("the answer %r accepts none of the offers (%s)" % (answer.header(), "; ".join(reasons)))


# --------------------------------------------------------------------------------------------------
# Server role: the client's offers


def parse_offers(values):
    """The client's permessage-deflate offers in order: [Params or the reason it is invalid]."""
    offers = []
    for name, parameters in parse_extensions(values):
        if name.lower() != EXTENSION:
            continue
        try:
            offers.append(interpret(parameters, "offer"))
        except ValueError as exc:
            offers.append(str(exc))
    return offers


def autobahn_offer(request_no_context_takeover=False, request_max_window_bits=0):
    """The offer Autobahn's client sends for PerMessageDeflateOffer(requestNoContextTakeover,
    requestMaxWindowBits): it always accepts both of the server's requests."""
    return Params(server_no_context_takeover=request_no_context_takeover, client_no_context_takeover=True,
                  server_max_window_bits=request_max_window_bits or None, client_max_window_bits=True)


def autobahn_accept(offers, rules):
    """Autobahn's fuzzing server accepting with PerMessageDeflateOfferAccept: for each (request no context
    takeover, request max window bits) in `rules`, in order, the first offer that lets the server ask
    that is accepted (any offer lets it ask for no context takeover, only one with client_max_window_bits
    for a window). Returns (response value, Negotiated) or None when it declines."""
    valid = [offer for offer in offers if isinstance(offer, Params)]
    for no_takeover, window in rules:
        for offer in valid:
            if window and offer.client_max_window_bits is None:
                continue
            answer = Params(server_no_context_takeover=offer.server_no_context_takeover,
                            server_max_window_bits=offer.server_max_window_bits,
                            client_no_context_takeover=no_takeover, client_max_window_bits=window or None)
            return answer.header(), negotiated_from(offer, answer)
    return None


def answer_with(offers, wanted):
    """Accepts the first valid offer so that `wanted` (Negotiated) holds where the offer allows it: our
    window and no context takeover are ours to choose (7.1.1.1, 7.1.2.1); the client's window only when
    it offered client_max_window_bits. Returns (response value, Negotiated), or None without a valid offer."""
    valid = [offer for offer in offers if isinstance(offer, Params)]
    if not valid:
        return None
    offer = valid[0]
    server_window = min(wanted.server_window, offer.server_max_window_bits or 15)
    answer = Params(
        server_no_context_takeover=wanted.server_no_context_takeover or offer.server_no_context_takeover,
        client_no_context_takeover=wanted.client_no_context_takeover,
        server_max_window_bits=server_window if server_window < 15 or offer.server_max_window_bits else None,
        client_max_window_bits=wanted.client_window if wanted.client_window < 15 and
        offer.client_max_window_bits is not None else None)
    return answer.header(), negotiated_from(offer, answer)


# --------------------------------------------------------------------------------------------------
# The codec


class Codec:
    """One connection's compression state, for our role ("client" or "server")."""

    def __init__(self, role, negotiated, level=-1, memory_level=8):
        n = negotiated
        if role == "server":
            self.send_window, self.send_no_takeover = n.server_window, n.server_no_context_takeover
            self.receive_window, self.receive_no_takeover = n.client_window, n.client_no_context_takeover
        else:
            self.send_window, self.send_no_takeover = n.client_window, n.client_no_context_takeover
            self.receive_window, self.receive_no_takeover = n.server_window, n.server_no_context_takeover
        self.negotiated = n
        self.level = level
        self.memory_level = memory_level
        self.compressor = None
        self.inflater = None
        self.history = b""  # the receive window's worth of output, to go on after a BFINAL block

    def compress(self, payload):
        """A whole message's compressed payload (RFC 7692 7.2.1)."""
        if self.compressor is None:
            self.compressor = zlib.compressobj(self.level, zlib.DEFLATED, -max(9, self.send_window),
                                               self.memory_level)
        data = self.compressor.compress(payload) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.send_no_takeover:
            self.compressor = None
        return data[:-4] if data.endswith(EMPTY_BLOCK_TAIL) else data

    def decompress(self, payload):
        """A whole message's payload, decompressed under the peer's agreed parameters (RFC 7692 7.2.2)."""
        size = 1 << self.receive_window
        if self.inflater is None or self.receive_no_takeover:
            self.inflater = zlib.decompressobj(wbits=-self.receive_window)
            self.history = b""
        data = bytes(payload) + EMPTY_BLOCK_TAIL
        out = []
        try:
            while True:
                chunk, rest = self._inflate(data)
                out.append(chunk)
                if rest is None:
                    break
                # A block with BFINAL ends zlib's stream, but a message may go on after it: the rest is
                # inflated with the window so far as the dictionary. Only the appended tail needs nothing.
                window = (self.history + b"".join(out))[-size:]
                dictionary = {"zdict": window} if window else {}
                self.inflater = zlib.decompressobj(wbits=-self.receive_window, **dictionary)
                if rest == EMPTY_BLOCK_TAIL:
                    break
                data = rest
        except zlib.error as exc:
            self.inflater = None
            raise DeflateError(str(exc)) from None
        message = b"".join(out)
        if not self.receive_no_takeover:
            self.history = (self.history + message)[-size:]
        return message

    def _inflate(self, data):
        """Returns (output, the bytes after a BFINAL block, or None when the stream goes on)."""
        inflater = self.inflater
        if self.receive_window >= 15:
            out = inflater.decompress(data)
            return out, (inflater.unused_data if inflater.eof else None)
        # Small steps keep zlib's check of match distances against its 2^w bytes of history honest:
        # within one call it also accepts distances into that call's own output.
        step = (1 << self.receive_window) // 2
        out = []
        for start in range(0, len(data), 64):
            pending = data[start:start + 64]
            while True:
                chunk = inflater.decompress(pending, step)
                out.append(chunk)
                if inflater.eof:
                    return b"".join(out), inflater.unused_data + data[start + 64:]
                pending = inflater.unconsumed_tail
                if not pending and len(chunk) < step:
                    break
        return b"".join(out), None
