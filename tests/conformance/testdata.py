"""The payloads of the compression cases (sections 12-14): stand-ins for the Autobahn TestSuite's five
test files, generated here, deterministically, with the same sizes and kinds of content.

Autobahn sends slices of real files (a JSON file, the 512x512 grayscale "Lena" bitmap, Goethe's Faust
from Project Gutenberg, an HTML page, a PDF). They are not ours to copy, so each is replaced by content
that compresses the same way for the same reasons:

  json    194,056 bytes, text (ASCII, so every slice is valid UTF-8): an array of records with repeated
          keys and varying values, pretty-printed
  bitmap  263,222 bytes, binary: a real 8-bit grayscale BMP, 512x512 (header, palette, pixels) of a
          smooth picture with noise, like a photograph
  faust   222,218 bytes, binary (as in Autobahn): German verse in UTF-8 with umlauts and speaker names
  html    263,527 bytes, text (ASCII): nested markup with repeated tags and attributes
  pdf   1,042,328 bytes, binary: PDF objects whose streams are mostly already deflated (text content
          streams) or noise (images): what a compressor cannot shrink much

Everything comes from a seeded random.Random, so the bytes are the same on every run.
"""

import json
import math
import random
import struct
import zlib

SIZES = {"json": 194056, "bitmap": 263222, "faust": 222218, "html": 263527, "pdf": 1042328}

_cache = {}


def load(name):
    if name not in _cache:
        data = GENERATORS[name](random.Random("duplex-%s" % name))
        _cache[name] = fit(data, SIZES[name])
    return _cache[name]


def fit(data, size):
    if len(data) < size:
        raise AssertionError("generated %d bytes, need %d" % (len(data), size))
    return bytes(data[:size])


FIRST_NAMES = ["Anna", "Ben", "Chiara", "Dmitri", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
               "Lena", "Marta", "Nils", "Olga", "Pavel", "Qiang", "Rosa", "Sven", "Tariq", "Ute", "Vera"]
LAST_NAMES = ["Schmidt", "Rossi", "Nakamura", "Okafor", "Larsen", "Dubois", "Kowalski", "Silva", "Novak", "Haddad"]
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod",
         "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim", "ad", "minim",
         "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi", "aliquip", "commodo"]
TAGS = ["alpha", "beta", "gamma", "delta", "websocket", "deflate", "json", "stream", "chat", "news", "sport"]


def sentence(rng, low, high):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def make_json(rng):
    records = []
    size = 0
    while size < SIZES["json"] + 1000:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        record = {
            "id": len(records) + 1,
            "guid": "%08x-%04x-%04x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                                                  rng.getrandbits(16), rng.getrandbits(48)),
            "isActive": rng.random() < 0.5,
            "balance": "$%d,%03d.%02d" % (rng.randint(1, 9), rng.randint(0, 999), rng.randint(0, 99)),
            "age": rng.randint(18, 80),
            "name": "%s %s" % (first, last),
            "email": "%s.%s@example.com" % (first.lower(), last.lower()),
            "registered": "20%02d-%02d-%02dT%02d:%02d:%02d" % (rng.randint(10, 24), rng.randint(1, 12),
                                                             rng.randint(1, 28), rng.randint(0, 23),
                                                             rng.randint(0, 59), rng.randint(0, 59)),
            "latitude": round(rng.uniform(-90, 90), 6),
            "longitude": round(rng.uniform(-180, 180), 6),
            "tags": rng.sample(TAGS, rng.randint(1, 5)),
            "about": sentence(rng, 8, 30),
            "friends": [{"id": i, "name": "%s %s" % (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))}
                        for i in range(rng.randint(0, 3))],
        }
        records.append(record)
        size += len(json.dumps(record, indent=2)) + 4
    return json.dumps(records, indent=2).encode("ascii")


def make_bitmap(rng):
    width = height = 512
    palette = b"".join(bytes((g, g, g, 0)) for g in range(256))
    offset = 14 + 40 + len(palette)
    file_size = offset + width * height
    header = b"BM" + struct.pack("<IHHI", file_size, 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, width * height, 2835, 2835, 256, 256)
    # A smooth picture at half resolution, each sample spread over 2x2 pixels with a little noise.
    half = width // 2
    samples = [[min(255, max(0, int(120 + 55 * math.sin(x / 11.5 + 2 * math.sin(y / 18.5)) +
                                    35 * math.cos((x + 2 * y) / 25.5) + 20 * math.sin(math.hypot(x - 150, y - 110) / 4.5))))
                for x in range(half)] for y in range(half)]
    noise = rng.randbytes(width * height)
    pixels = bytearray(width * height)
    for y in range(height):
        row = samples[y // 2]
        base = y * width
        for x in range(width):
            pixels[base + x] = min(255, max(0, row[x // 2] + (noise[base + x] & 7) - 3))
    return header + info + palette + bytes(pixels)


GERMAN = ["und", "die", "der", "ich", "nicht", "das", "du", "ist", "mit", "sich", "mir", "auf", "zu", "ein", "ihr",
          "Herz", "Welt", "Geist", "Himmel", "Nacht", "Liebe", "Wissen", "Natur", "Leben", "Seele", "Glück",
          "schön", "möcht", "für", "über", "Tür", "Träume", "müssen", "Mädchen", "Blüte", "König", "hören",
          "grün", "süß", "Größe", "heißt", "weiß", "Fuß", "Straße", "Gefühl", "früh", "Bäume", "Vögel",
          "Teufel", "Wahrheit", "Gretchen", "Erde", "Feuer", "Wasser", "ewig", "Augenblick", "verweile",
          "doch", "bist", "so", "was", "wie", "wo", "wenn", "noch", "schon", "nur", "auch", "wohl", "nun"]
SPEAKERS = ["FAUST", "MEPHISTOPHELES", "WAGNER", "MARGARETE", "MARTHE", "CHOR DER ENGEL", "DER HERR", "SCHÜLER"]


def make_faust(rng):
    lines = ["Faust: Der Tragödie erster Teil", "", "Zueignung", ""]
    size = 0
    while size < SIZES["faust"] + 1000:
        speaker = rng.choice(SPEAKERS)
        lines.append(speaker + ":")
        for _ in range(rng.randint(2, 8)):
            words = [rng.choice(GERMAN) for _ in range(rng.randint(4, 9))]
            line = " ".join(words)
            line = line[0].upper() + line[1:] + rng.choice([",", ".", "!", "?", ";", ""])
            lines.append("  " + line)
            size += len(line.encode("utf-8")) + 3
        lines.append("")
        size += len(speaker) + 3
    return "\r\n".join(lines).encode("utf-8")


def make_html(rng):
    parts = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Archive</title>\n"
             "<link rel=\"stylesheet\" href=\"/static/site.css\">\n</head>\n<body>\n<div id=\"page\">\n"]
    size = len(parts[0])
    item = 0
    while size < SIZES["html"] + 1000:
        item += 1
        rows = "".join("      <tr class=\"%s\"><td class=\"num\">%d</td><td><a href=\"/item/%d?ref=list\">%s</a>"
                       "</td><td class=\"date\">20%02d-%02d-%02d</td></tr>\n" % (
                           rng.choice(["odd", "even"]), rng.randint(1, 9999), rng.randint(1, 99999),
                           sentence(rng, 2, 6), rng.randint(10, 24), rng.randint(1, 12), rng.randint(1, 28))
                       for _ in range(rng.randint(2, 6)))
        block = ("  <div class=\"article\" id=\"a%d\">\n    <h2 class=\"title\"><a href=\"/articles/%d\">%s</a></h2>\n"
                 "    <p class=\"meta\">by <span class=\"author\">%s %s</span></p>\n    <p>%s</p>\n"
                 "    <table class=\"list\">\n%s    </table>\n  </div>\n" % (
                     item, item, sentence(rng, 3, 8).title(), rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES),
                     sentence(rng, 20, 60), rows))
        parts.append(block)
        size += len(block)
    parts.append("</div>\n</body>\n</html>\n")
    return "".join(parts).encode("ascii")


def make_pdf(rng):
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    number = 0
    while len(out) < SIZES["pdf"] + 1000:
        number += 1
        offsets.append(len(out))
        kind = number % 5
        if kind == 0:  # an image: noise that no compressor can shrink
            data = rng.randbytes(rng.randint(2000, 12000))
            head = "<< /Type /XObject /Subtype /Image /Width 64 /Height 64 /BitsPerComponent 8 /Filter /DCTDecode" \
                   " /Length %d >>" % len(data)
        elif kind == 1:  # a plain dictionary
            out += ("%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 %d 0 R"
                    " >> >> /Contents %d 0 R >>\nendobj\n" % (number, number + 1, number + 2)).encode("ascii")
            continue
        else:  # a text content stream, deflated as PDFs store them
            text = "".join("BT /F1 %d Tf %d %d Td (%s) Tj ET\n" % (rng.choice([9, 10, 12]), rng.randint(50, 100),
                                                                   rng.randint(50, 750), sentence(rng, 3, 12))
                           for _ in range(rng.randint(20, 80)))
            data = zlib.compress(text.encode("ascii"), 6)
            head = "<< /Length %d /Filter /FlateDecode >>" % len(data)
        out += ("%d 0 obj\n%s\nstream\n" % (number, head)).encode("ascii") + data + b"\nendstream\nendobj\n"
    xref = len(out)
    out += ("xref\n0 %d\n0000000000 65535 f \n" % (number + 1)).encode("ascii")
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (number + 1, xref)).encode("ascii")
    return out


GENERATORS = {"json": make_json, "bitmap": make_bitmap, "faust": make_faust, "html": make_html, "pdf": make_pdf}
