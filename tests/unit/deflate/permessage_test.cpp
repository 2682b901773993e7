#include <duplex/deflate/permessage.hpp>

#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// Every allocation of this program is counted, so a test can show that steady-state messages make none.
namespace {
std::atomic<std::size_t> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
    ++allocations;
    if (void* p = std::malloc(size ? size : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    ++allocations;
    return std::malloc(size ? size : 1);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

// zlib declares a global function deflate(), so the namespace goes by another name here.
namespace pmd = duplex::deflate;
using pmd::decompress_status;
using pmd::negotiated;
using pmd::permessage;
using duplex::ws::role;
using bytes = std::vector<std::byte>;

namespace {

bytes to_bytes(std::string_view s) {
    bytes out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

bytes from_hex(std::string_view hex) {
    bytes out;
    std::string digits;
    for (char c : hex)
        if (c != ' ') digits.push_back(c);
    for (std::size_t i = 0; i + 1 < digits.size(); i += 2)
        out.push_back(static_cast<std::byte>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    return out;
}

std::string to_hex(std::span<const std::byte> data) {
    std::ostringstream s;
    for (auto b : data) s << std::hex << std::setw(2) << std::setfill('0') << std::to_integer<int>(b);
    return s.str();
}

bytes random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    bytes out(n);
    for (auto& b : out) b = static_cast<std::byte>(rng());
    return out;
}

// Text that compresses the way chat and JSON traffic does: repeated keys, varying values.
bytes chatty_text(std::size_t n, unsigned seed) {
    static constexpr std::string_view words[] = {"hello", "world", "message", "\"user\":", "{\"id\":", "true", "false",
                                                 "null", "compression", "deflate", "websocket", ", ", "}\n"};
    std::mt19937 rng(seed);
    std::string s;
    while (s.size() < n) {
        s += words[rng() % std::size(words)];
        s += std::to_string(rng() % 1000);
    }
    s.resize(n);
    return to_bytes(s);
}

// Bytes that repeat every `period` bytes: tempting matches exactly at that distance.
bytes periodic(std::size_t n, std::size_t period, unsigned seed) {
    const auto unit = random_bytes(period, seed);
    bytes out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = unit[i % period];
    return out;
}

// The parameters from one direction's point of view are the same for both ends.
negotiated symmetric(int bits, bool no_context_takeover) { return {bits, bits, no_context_takeover, no_context_takeover}; }

bytes compress_message(permessage& codec, std::span<const std::byte> message) {
    bytes out;
    codec.compress(message, true, out);
    return out;
}

struct decoded {
    decompress_status status = decompress_status::more;
    bytes data;
};

// Feeds a message's frames (already unmasked payloads) to the codec in input chunks of `in_chunk`
// bytes, draining into an output buffer of `out_chunk` bytes, the way the stream does.
decoded decompress_frames(permessage& codec, const std::vector<bytes>& frames, std::size_t limit = SIZE_MAX,
                          std::size_t in_chunk = SIZE_MAX, std::size_t out_chunk = 4096) {
    decoded d;
    bytes buffer(out_chunk);
    int stalls = 0;
    for (std::size_t f = 0; f < frames.size(); ++f) {
        const bool last_frame = f + 1 == frames.size();
        std::span<const std::byte> rest(frames[f]);
        for (;;) {
            const auto chunk = rest.first(std::min(in_chunk, rest.size()));
            const bool end = last_frame && chunk.size() == rest.size();
            const auto r = codec.decompress_some(chunk, end, buffer, limit);
            REQUIRE(r.consumed <= chunk.size());
            REQUIRE(r.produced <= buffer.size());
            d.data.insert(d.data.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.produced));
            rest = rest.subspan(r.consumed);
            if (r.status != decompress_status::more) {
                d.status = r.status;
                return d;
            }
            stalls = r.consumed == 0 && r.produced == 0 ? stalls + 1 : 0;
            REQUIRE_MESSAGE(stalls < 2, "decompress_some made no progress");
            if (rest.empty() && !end) break;  // next frame
        }
    }
    FAIL("the message did not end");
    return d;
}

decoded decompress_message(permessage& codec, const bytes& payload, std::size_t limit = SIZE_MAX,
                           std::size_t in_chunk = SIZE_MAX, std::size_t out_chunk = 4096) {
    return decompress_frames(codec, {payload}, limit, in_chunk, out_chunk);
}

// What python-websockets and most peers do with a payload: zlib raw inflate with exactly the agreed
// window, after appending 00 00 ff ff. With a 1-byte output per call zlib checks every distance
// against the window it has (plus that one byte), so it holds a compressor to its promise.
class reference_inflater {
public:
    explicit reference_inflater(int window_bits) {
        REQUIRE(inflateInit2(&z_, -window_bits) == Z_OK);
    }
    ~reference_inflater() { inflateEnd(&z_); }
    reference_inflater(const reference_inflater&) = delete;
    reference_inflater& operator=(const reference_inflater&) = delete;

    void reset() { inflateReset(&z_); }

    std::optional<bytes> decode(const bytes& payload) {
        auto input = payload;
        input.insert(input.end(), {std::byte{0}, std::byte{0}, std::byte{0xff}, std::byte{0xff}});
        bytes out;
        z_.next_in = reinterpret_cast<Bytef*>(input.data());
        z_.avail_in = static_cast<uInt>(input.size());
        while (z_.avail_in != 0) {
            Bytef byte;
            z_.next_out = &byte;
            z_.avail_out = 1;
            const int rc = inflate(&z_, Z_SYNC_FLUSH);
            if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;
            if (z_.avail_out == 0) out.push_back(std::byte{byte});
            else if (rc == Z_BUF_ERROR) return std::nullopt;
        }
        return out;
    }

private:
    z_stream z_{};
};

// A small DEFLATE decoder after Mark Adler's puff.c, independent of zlib, that records the longest
// back-reference: the exact check that a compressor stays inside the window it promised.
class strict_inflater {
public:
    std::size_t longest_distance = 0;

    void forget_history() { history_.clear(); }

    // Decodes the whole blocks of a payload with the 00 00 ff ff tail appended; nullopt on bad data.
    std::optional<bytes> decode(const bytes& payload) {
        in_ = payload;
        in_.insert(in_.end(), {std::byte{0}, std::byte{0}, std::byte{0xff}, std::byte{0xff}});
        at_ = 0;
        bit_buffer_ = 0;
        bit_count_ = 0;
        const auto start = history_.size();
        try {
            while (!(at_ == in_.size() && bit_count_ == 0)) {
                if (bits(1) != 0) return std::nullopt;  // BFINAL: we never send it
                switch (bits(2)) {
                case 0: stored(); break;
                case 1: fixed(); break;
                case 2: dynamic(); break;
                default: return std::nullopt;
                }
            }
        } catch (const std::out_of_range&) {
            return std::nullopt;
        }
        return bytes(history_.begin() + static_cast<std::ptrdiff_t>(start), history_.end());
    }

private:
    struct huffman {
        std::array<int, 16> count{};
        std::array<int, 288> symbol{};
    };

    unsigned bits(int need) {
        while (bit_count_ < need) {
            if (at_ == in_.size()) throw std::out_of_range("out of input");
            bit_buffer_ |= std::to_integer<unsigned>(in_[at_++]) << bit_count_;
            bit_count_ += 8;
        }
        const unsigned value = bit_buffer_ & ((1u << need) - 1);
        bit_buffer_ >>= need;
        bit_count_ -= need;
        return value;
    }

    void stored() {
        bit_buffer_ = 0;
        bit_count_ = 0;
        if (in_.size() - at_ < 4) throw std::out_of_range("stored header");
        const unsigned length = std::to_integer<unsigned>(in_[at_]) | std::to_integer<unsigned>(in_[at_ + 1]) << 8;
        const unsigned complement = std::to_integer<unsigned>(in_[at_ + 2]) | std::to_integer<unsigned>(in_[at_ + 3]) << 8;
        if (length != (~complement & 0xffff)) throw std::out_of_range("stored lengths");
        at_ += 4;
        if (in_.size() - at_ < length) throw std::out_of_range("stored data");
        history_.insert(history_.end(), in_.begin() + static_cast<std::ptrdiff_t>(at_),
                        in_.begin() + static_cast<std::ptrdiff_t>(at_ + length));
        at_ += length;
    }

    static huffman build(const unsigned short* lengths, int n) {
        huffman h;
        for (int i = 0; i < n; ++i) ++h.count[lengths[i]];
        std::array<int, 16> offsets{};
        for (int len = 1; len < 15; ++len) offsets[len + 1] = offsets[len] + h.count[len];
        for (int i = 0; i < n; ++i)
            if (lengths[i] != 0) h.symbol[offsets[lengths[i]]++] = i;
        h.count[0] = 0;
        return h;
    }

    int decode(const huffman& h) {
        int code = 0, first = 0, index = 0;
        for (int len = 1; len <= 15; ++len) {
            code |= static_cast<int>(bits(1));
            const int count = h.count[len];
            if (code - count < first) return h.symbol[index + (code - first)];
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        throw std::out_of_range("bad code");
    }

    void codes(const huffman& lengths, const huffman& distances) {
        static constexpr int length_base[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                              31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
        static constexpr int length_extra[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                               2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
        static constexpr int distance_base[] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                                193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                                6145, 8193, 12289, 16385, 24577};
        static constexpr int distance_extra[] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
        for (;;) {
            const int symbol = decode(lengths);
            if (symbol < 256) {
                history_.push_back(static_cast<std::byte>(symbol));
                continue;
            }
            if (symbol == 256) return;
            const int length_code = symbol - 257;
            if (length_code >= 29) throw std::out_of_range("bad length");
            const int length = length_base[length_code] + static_cast<int>(bits(length_extra[length_code]));
            const int distance_code = decode(distances);
            if (distance_code >= 30) throw std::out_of_range("bad distance");
            const auto distance = static_cast<std::size_t>(distance_base[distance_code] +
                                                           static_cast<int>(bits(distance_extra[distance_code])));
            if (distance > history_.size()) throw std::out_of_range("distance too far back");
            longest_distance = std::max(longest_distance, distance);
            for (int i = 0; i < length; ++i) history_.push_back(history_[history_.size() - distance]);
        }
    }

    void fixed() {
        std::array<unsigned short, 288 + 30> lengths{};
        for (int i = 0; i < 144; ++i) lengths[i] = 8;
        for (int i = 144; i < 256; ++i) lengths[i] = 9;
        for (int i = 256; i < 280; ++i) lengths[i] = 7;
        for (int i = 280; i < 288; ++i) lengths[i] = 8;
        for (int i = 288; i < 288 + 30; ++i) lengths[i] = 5;
        codes(build(lengths.data(), 288), build(lengths.data() + 288, 30));
    }

    void dynamic() {
        static constexpr int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
        const int literal_count = static_cast<int>(bits(5)) + 257;
        const int distance_count = static_cast<int>(bits(5)) + 1;
        const int code_count = static_cast<int>(bits(4)) + 4;
        std::array<unsigned short, 320> lengths{};
        for (int i = 0; i < code_count; ++i) lengths[order[i]] = static_cast<unsigned short>(bits(3));
        const auto length_codes = build(lengths.data(), 19);
        int index = 0;
        while (index < literal_count + distance_count) {
            int symbol = decode(length_codes);
            if (symbol < 16) {
                lengths[index++] = static_cast<unsigned short>(symbol);
                continue;
            }
            unsigned short repeated = 0;
            int times;
            if (symbol == 16) {
                if (index == 0) throw std::out_of_range("repeat with no first length");
                repeated = lengths[index - 1];
                times = 3 + static_cast<int>(bits(2));
            } else if (symbol == 17) {
                times = 3 + static_cast<int>(bits(3));
            } else {
                times = 11 + static_cast<int>(bits(7));
            }
            if (index + times > literal_count + distance_count) throw std::out_of_range("too many lengths");
            while (times-- > 0) lengths[index++] = repeated;
        }
        codes(build(lengths.data(), literal_count), build(lengths.data() + literal_count, distance_count));
    }

    bytes in_;
    std::size_t at_ = 0;
    unsigned bit_buffer_ = 0;
    int bit_count_ = 0;
    bytes history_;
};

}  // namespace

// ---- RFC 7692 §7.2.3 ----

TEST_CASE("RFC 7692 §7.2.3.1: \"Hello\" in one compressed block, whole and in two fragments") {
    permessage server(role::server, {});
    CHECK(to_hex(compress_message(server, to_bytes("Hello"))) == "f248cdc9c90700");

    permessage client(role::client, {});
    auto d = decompress_message(client, from_hex("f2 48 cd c9 c9 07 00"));
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello"));
    d = decompress_frames(client, {from_hex("f2 48 cd"), from_hex("c9 c9 07 00")});
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello"));
}

TEST_CASE("RFC 7692 §7.2.3.2: a second \"Hello\" shares the sliding window, unless context takeover is off") {
    permessage with_takeover(role::server, {});
    CHECK(to_hex(compress_message(with_takeover, to_bytes("Hello"))) == "f248cdc9c90700");
    CHECK(to_hex(compress_message(with_takeover, to_bytes("Hello"))) == "f200110000");

    permessage without(role::server, {15, 15, true, false});
    CHECK(to_hex(compress_message(without, to_bytes("Hello"))) == "f248cdc9c90700");
    CHECK(to_hex(compress_message(without, to_bytes("Hello"))) == "f248cdc9c90700");

    permessage client(role::client, {});
    CHECK(decompress_message(client, from_hex("f2 48 cd c9 c9 07 00")).data == to_bytes("Hello"));
    const auto d = decompress_message(client, from_hex("f2 00 11 00 00"));
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello"));
}

TEST_CASE("RFC 7692 §7.2.3.3–5: a stored block, a block with BFINAL set, two blocks in one message") {
    permessage client(role::client, {});
    auto d = decompress_message(client, from_hex("00 05 00 fa ff 48 65 6c 6c 6f 00"));
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello"));

    d = decompress_message(client, from_hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00"));
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello"));

    SUBCASE("BFINAL, then the window still serves the next message (context takeover)") {
        permessage fresh(role::client, {});
        d = decompress_message(fresh, from_hex("f3 48 cd c9 c9 07 00 00"));
        CHECK(d.status == decompress_status::end_of_message);
        CHECK(d.data == to_bytes("Hello"));
        d = decompress_message(fresh, from_hex("f2 00 11 00 00"));  // refers back to the first "Hello"
        CHECK(d.status == decompress_status::end_of_message);
        CHECK(d.data == to_bytes("Hello"));
    }
    SUBCASE("BFINAL without the trailing 00 octet is tolerated") {
        permessage fresh(role::client, {});
        d = decompress_message(fresh, from_hex("f3 48 cd c9 c9 07 00"));
        CHECK(d.status == decompress_status::end_of_message);
        CHECK(d.data == to_bytes("Hello"));
        d = decompress_message(fresh, from_hex("f2 00 11 00 00"));
        CHECK(d.data == to_bytes("Hello"));
    }
    SUBCASE("BFINAL in the middle of a message, fed a byte at a time") {
        permessage fresh(role::client, {});
        d = decompress_message(fresh, from_hex("f3 48 cd c9 c9 07 00 f2 00 11 00 00"), SIZE_MAX, 1, 1);
        CHECK(d.status == decompress_status::end_of_message);
        CHECK(d.data == to_bytes("HelloHello"));
    }
}

TEST_CASE("empty messages and an empty final fragment") {
    permessage server(role::server, {});
    permessage client(role::client, {});
    // A fresh compressor and one right after a flush both end an empty message as one 0 byte (§7.2.3.6).
    CHECK(to_hex(compress_message(server, {})) == "00");
    CHECK(to_hex(compress_message(server, {})) == "00");
    CHECK(decompress_message(client, from_hex("00")).status == decompress_status::end_of_message);
    // An empty payload with RSV1 set is an empty message too, and leaves the window alone.
    const auto d = decompress_message(client, {});
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data.empty());

    bytes first, last;
    server.compress(to_bytes("Hello"), false, first);
    server.compress({}, true, last);
    CHECK(to_hex(first) == "f248cdc9c907000000ffff");  // a non-final fragment keeps its flush marker
    CHECK(to_hex(last) == "00");
    CHECK(decompress_frames(client, {first, last}).data == to_bytes("Hello"));
    // A sender that flushes every fragment and sends a literally empty final frame (python-websockets
    // does, for ["Hello", ""]) leaves the flush marker in: the message still ends there.
    first.clear();
    server.compress(to_bytes("Hello"), false, first);
    const auto d2 = decompress_frames(client, {first, {}});
    CHECK(d2.status == decompress_status::end_of_message);
    CHECK(d2.data == to_bytes("Hello"));
}

// ---- round trips ----

TEST_CASE("round trips at every window size 8–15, with and without context takeover, both directions") {
    const std::vector<bytes> messages = {
        {},
        to_bytes("Hello"),
        chatty_text(100'000, 1),
        random_bytes(70'000, 2),
        periodic(20'000, 300, 3),  // repeats 300 bytes back: beyond a 256-byte window
        chatty_text(3'000, 4),
        to_bytes("x"),
        periodic(5'000, 200, 5),
    };
    for (int bits = 8; bits <= 15; ++bits)
        for (bool no_takeover : {false, true})
            for (bool release : {false, true})
                for (auto sender_role : {role::server, role::client}) {
                    CAPTURE(bits);
                    CAPTURE(no_takeover);
                    CAPTURE(release);
                    CAPTURE(sender_role == role::server);
                    const auto receiver_role = sender_role == role::server ? role::client : role::server;
                    const auto agreed = symmetric(bits, no_takeover);
                    permessage sender(sender_role, agreed, {.release_between_messages = release});
                    permessage receiver(receiver_role, agreed, {.release_between_messages = release});
                    reference_inflater reference(bits);
                    strict_inflater strict;
                    for (const auto& message : messages) {
                        const auto payload = compress_message(sender, message);
                        const auto d = decompress_message(receiver, payload);
                        REQUIRE(d.status == decompress_status::end_of_message);
                        REQUIRE(d.data == message);

                        if (no_takeover) {
                            reference.reset();
                            strict.forget_history();
                        }
                        CHECK(reference.decode(payload) == message);
                        CHECK(strict.decode(payload) == message);
                    }
                    // The promise of §7.1.2: no reference further back than the agreed window.
                    CHECK(strict.longest_distance <= (std::size_t{1} << bits));
                    if (bits == 8) CHECK(strict.longest_distance <= 250);  // zlib's 512 − MIN_LOOKAHEAD
                }
}

TEST_CASE("a window of 8: compressed with zlib's 9, yet never referring back more than 256 bytes") {
    permessage server(role::server, {.server_max_window_bits = 8});
    CHECK(server.send_window_bits() == 8);
    strict_inflater strict;
    reference_inflater exact_window(8);
    for (std::size_t period = 100; period <= 600; period += 25) {
        CAPTURE(period);
        // Random units repeated: only a match `period` bytes back can compress them.
        const auto message = periodic(8'000, period, static_cast<unsigned>(period));
        const auto payload = compress_message(server, message);
        CHECK(strict.decode(payload) == message);
        CHECK(exact_window.decode(payload) == message);
        if (period <= 250)
            CHECK(payload.size() < message.size() / 4);  // inside the window: still compresses
        else
            CHECK(payload.size() > message.size() * 9 / 10);  // beyond it: left alone, as promised
    }
    CHECK(strict.longest_distance <= 256);
    MESSAGE("window 8: the longest distance zlib used is ", strict.longest_distance, " bytes");
}

TEST_CASE("fragmented compression: every fragment decodes as it arrives, and the whole message at the end") {
    const std::vector<bytes> pieces = {to_bytes("Hello, "), {}, chatty_text(10'000, 7), to_bytes("!"), {}};
    for (bool no_takeover : {false, true}) {
        CAPTURE(no_takeover);
        permessage server(role::server, symmetric(15, no_takeover));
        permessage client(role::client, symmetric(15, no_takeover));
        for (int round = 0; round < 3; ++round) {
            std::vector<bytes> frames;
            bytes whole, delivered;
            bytes buffer(64 * 1024);
            for (std::size_t i = 0; i < pieces.size(); ++i) {
                const bool last = i + 1 == pieces.size();
                bytes frame;
                server.compress(pieces[i], last, frame);
                whole.insert(whole.end(), pieces[i].begin(), pieces[i].end());
                // The receiver gets each fragment's data before the next fragment exists (Z_SYNC_FLUSH).
                const auto r = client.decompress_some(frame, last, buffer, SIZE_MAX);
                CHECK(r.consumed == frame.size());
                delivered.insert(delivered.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.produced));
                CHECK(delivered == whole);
                CHECK(r.status == (last ? decompress_status::end_of_message : decompress_status::more));
                frames.push_back(std::move(frame));
            }
            // The same frames decode the same way through a separate receiver, in tiny chunks.
            permessage other(role::client, symmetric(15, no_takeover));
            if (round == 0 || no_takeover) CHECK(decompress_frames(other, frames, SIZE_MAX, 7, 5).data == whole);
        }
    }
}

TEST_CASE("compress_some into small buffers and decompress_some a byte at a time give the same message") {
    const auto message = chatty_text(50'000, 11);
    for (std::size_t room : {std::size_t{16}, std::size_t{17}, std::size_t{100}, std::size_t{4096}}) {
        CAPTURE(room);
        permessage server(role::server, {});
        permessage client(role::client, {});
        for (int round = 0; round < 2; ++round) {
            bytes payload, buffer(room);
            std::span<const std::byte> input(message);
            for (;;) {
                const auto r = server.compress_some(input, true, buffer);
                CHECK(r.produced <= room);
                payload.insert(payload.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.produced));
                input = input.subspan(r.consumed);
                if (r.done) break;
            }
            CHECK(input.empty());
            const auto d = decompress_message(client, payload, SIZE_MAX, round == 0 ? 1 : 333, round == 0 ? 1 : 77);
            CHECK(d.status == decompress_status::end_of_message);
            CHECK(d.data == message);
        }
    }
    permessage server(role::server, {});
    std::array<std::byte, 15> too_small;
    CHECK_THROWS_AS(server.compress_some(message, true, too_small), std::invalid_argument);
}

TEST_CASE("disable_compression: a message sent uncompressed leaves both contexts as they were") {
    // The stream sends such a message with RSV1 clear and never hands it to the codec; the receiver
    // sees RSV1 clear and does not either. What matters is that the compressed messages around it
    // still decode, and are exactly what they would be without it.
    permessage sender(role::server, {});
    permessage twin(role::server, {});
    permessage receiver(role::client, {});
    const auto first = chatty_text(2'000, 21), secret = to_bytes("password=hunter2"), third = chatty_text(2'000, 22);

    const auto p1 = compress_message(sender, first);
    CHECK(p1 == compress_message(twin, first));
    CHECK(decompress_message(receiver, p1).data == first);
    // `secret` goes out as is.
    const auto p3 = compress_message(sender, third);
    CHECK(p3 == compress_message(twin, third));
    CHECK(decompress_message(receiver, p3).data == third);
}

// ---- hostile input ----

TEST_CASE("a decompression bomb costs no more than the message limit and ends with too_big (1009)") {
    // 100 MiB of zeros compressed with context takeover: each MiB after the first compresses to the
    // same bytes, so the payload is built from two MiB of work.
    permessage server(role::server, {});
    const bytes zeros(1 << 20);
    bytes first, next, end;
    server.compress(zeros, false, first);
    server.compress(zeros, false, next);
    bytes repeat;
    server.compress(zeros, false, repeat);
    REQUIRE(repeat == next);
    server.compress({}, true, end);
    bytes bomb = first;
    for (int i = 1; i < 100; ++i) bomb.insert(bomb.end(), next.begin(), next.end());
    bomb.insert(bomb.end(), end.begin(), end.end());
    MESSAGE("100 MiB of zeros compressed to ", bomb.size(), " bytes");
    CHECK(bomb.size() < 110'000);

    // Proof that it is what it claims, by a decoder without a limit.
    permessage unlimited(role::client, {});
    std::size_t total = 0;
    bytes buffer(1 << 20);
    for (std::span<const std::byte> rest(bomb);;) {
        const auto r = unlimited.decompress_some(rest, true, buffer, SIZE_MAX);
        rest = rest.subspan(r.consumed);
        total += r.produced;
        if (r.status != decompress_status::more) break;
    }
    CHECK(total == 100u << 20);

    constexpr std::size_t limit = 1 << 20;
    for (std::size_t out_chunk : {std::size_t{64 * 1024}, std::size_t{1000}, limit, 2 * limit}) {
        CAPTURE(out_chunk);
        permessage client(role::client, {});
        const auto d = decompress_message(client, bomb, limit, 4096, out_chunk);
        CHECK(d.status == decompress_status::too_big);
        CHECK(d.data.size() == limit);  // everything up to the limit, not a byte more
    }
}

TEST_CASE("the message limit is exact") {
    const auto message = chatty_text(10'000, 31);
    for (std::size_t limit : {std::size_t{9'999}, std::size_t{10'000}, std::size_t{10'001}}) {
        for (std::size_t out_chunk : {std::size_t{100}, std::size_t{10'000}, std::size_t{20'000}}) {
            CAPTURE(limit);
            CAPTURE(out_chunk);
            permessage server(role::server, {});
            permessage client(role::client, {});
            const auto d = decompress_message(client, compress_message(server, message), limit, SIZE_MAX, out_chunk);
            CHECK(d.status == (limit < message.size() ? decompress_status::too_big : decompress_status::end_of_message));
            CHECK(d.data.size() == std::min(limit, message.size()));
        }
    }
}

TEST_CASE("corrupt data right after the limit: no byte past the limit is reported") {
    // A stored block of one byte ("a"), then a block of type 3. With the output's room for the byte past
    // the limit (which tells too_big from a message that ends at it), zlib writes the "a" and finds the
    // bad block in the same call. Found by the inflate fuzz target.
    const auto payload = from_hex("00 01 00 fe ff 61 ff");
    for (std::size_t limit : {std::size_t{0}, std::size_t{1}}) {
        CAPTURE(limit);
        permessage client(role::client, {});
        bytes buffer(16);
        const auto r = client.decompress_some(payload, true, buffer, limit);
        CHECK(r.status == decompress_status::corrupt);
        CHECK(r.produced == limit);
    }
}

TEST_CASE("corrupt data is reported as corrupt (1007)") {
    const char* corrupt[] = {
        "ff ff ff ff",                    // block type 3 does not exist
        "f2 48 cd",                       // ends inside a block
        "f2 00 11 00 00",                 // refers back to data this connection never had
        "00 05 00 fa fe 48 65 6c 6c 6f",  // stored block whose lengths do not match
        "fc ff ff",                       // a dynamic block declaring 288 literal/length codes (286 exist)
        "04 00 00 00 00",                 // a dynamic block cut short by the end of the message
    };
    for (const char* hex : corrupt) {
        CAPTURE(hex);
        permessage client(role::client, {});
        CHECK(decompress_message(client, from_hex(hex)).status == decompress_status::corrupt);
    }

    SUBCASE("a peer that agreed to no context takeover must not refer to its previous message") {
        permessage client(role::client, {15, 15, true, false});
        CHECK(decompress_message(client, from_hex("f2 48 cd c9 c9 07 00")).data == to_bytes("Hello"));
        CHECK(decompress_message(client, from_hex("f2 00 11 00 00")).status == decompress_status::corrupt);
    }
    SUBCASE("a peer that agreed to a window of 9 must not refer back further") {
        permessage liar(role::server, symmetric(15, false));
        permessage client(role::client, symmetric(9, false));
        const auto block = random_bytes(1'000, 41);
        CHECK(decompress_message(client, compress_message(liar, block)).data == block);
        CHECK(decompress_message(client, compress_message(liar, block)).status == decompress_status::corrupt);
    }
}

// ---- interop ----

namespace {

struct python_vector {
    int window_bits;
    bool no_context_takeover;
    std::vector<std::string_view> payloads;
};

// Generated by python_vectors.py (python-websockets 10.4).
const python_vector python_vectors[] = {
    {9, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e4bb11116941b6149b91186065430c3900a6618d50200",
    }},
    {9, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {10, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a98614805338c6a0100",
    }},
    {10, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {11, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a984185fc6968540b00",
    }},
    {11, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {12, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a984185fc6968540b00",
    }},
    {12, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {13, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a984185fc6968540b00",
    }},
    {13, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {14, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a984185fc6968540b00",
    }},
    {14, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
    {15, false, {
        "f248cdc9c90700",
        "f200110000",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540810c906205241228559c5aa86465584bb11146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "a23808cd298f050bca8db0a4dc0843032a984185fc6968540b00",
    }},
    {15, true, {
        "f248cdc9c90700",
        "f248cdc9c90700",
        "00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa86465585b4da91146941b614cb91126941b614ab91166b50000",
        "000001fffe000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00",
        "aa562a2d4e2d52b2524a4c4954d2514a2d4bcd2b01f272538b8b13d353812249f9299540818cd49c9c7c05241228559c5aa864655e5b4da91116941b6149b91186065430c3900a6618d50200",
    }},
};
const std::string_view python_fragments[] = {"f248cdc9c9d75100000000ffff", "000000ffff", "4a2b4a4ccf4dcd2b494d5128cf2fca495154f0c0210100"};

std::vector<bytes> python_messages() {
    const auto text = [](int first) {
        std::string s;
        for (int seq = first; seq < first + 6; ++seq)
            s += R"({"user":"ada","event":"message","body":"hello hello hello","seq":)" + std::to_string(seq) + "}";
        return to_bytes(s);
    };
    bytes all(256);
    for (int i = 0; i < 256; ++i) all[static_cast<std::size_t>(i)] = static_cast<std::byte>(i);
    return {to_bytes("Hello"), to_bytes("Hello"), {}, text(1), all, text(7)};
}

}  // namespace

TEST_CASE("interop: what python-websockets sends decodes, at every window size, with and without takeover") {
    const auto messages = python_messages();
    int same_bytes = 0, vectors = 0;
    for (const auto& v : python_vectors) {
        CAPTURE(v.window_bits);
        CAPTURE(v.no_context_takeover);
        const negotiated agreed{v.window_bits, 15, v.no_context_takeover, false};
        permessage client(role::client, agreed);
        permessage server(role::server, agreed);
        REQUIRE(v.payloads.size() == messages.size());
        for (std::size_t i = 0; i < messages.size(); ++i) {
            const auto payload = from_hex(v.payloads[i]);
            const auto d = decompress_message(client, payload, SIZE_MAX, 3, 50);
            CHECK(d.status == decompress_status::end_of_message);
            CHECK(d.data == messages[i]);
            same_bytes += compress_message(server, messages[i]) == payload;
            ++vectors;
        }
    }
    // Same zlib, same level and flush points: our bytes are python's (informative, not required).
    MESSAGE(same_bytes, " of ", vectors, " python-websockets payloads are byte-identical to ours");

    std::vector<bytes> frames;
    for (auto hex : python_fragments) frames.push_back(from_hex(hex));
    permessage client(role::client, {});
    const auto d = decompress_frames(client, frames, SIZE_MAX, 2, 3);
    CHECK(d.status == decompress_status::end_of_message);
    CHECK(d.data == to_bytes("Hello, fragmented world! Hello, fragmented world!"));
}

// ---- memory ----

namespace {

struct footprint {
    std::size_t idle = 0;        // between messages
    std::size_t in_message = 0;  // while a message is in flight in each direction
};

// One end of a connection after it has sent and received a message with these parameters.
footprint measure(int bits, bool no_takeover, const pmd::codec_options& options) {
    const auto agreed = symmetric(bits, no_takeover);
    permessage server(role::server, agreed, options);
    permessage client(role::client, agreed, options);
    const auto message = chatty_text(16 * 1024, 51);
    const auto payload = compress_message(client, message);
    const std::span<const std::byte> first_half = std::span(payload).first(payload.size() / 2);
    bytes out, buffer(64 * 1024);

    footprint f;
    server.compress(message, false, out);  // both directions in the middle of a message
    REQUIRE(server.decompress_some(first_half, false, buffer, SIZE_MAX).consumed == first_half.size());
    f.in_message = server.memory_in_use();
    server.compress({}, true, out);
    const auto rest = server.decompress_some(std::span(payload).subspan(first_half.size()), true, buffer, SIZE_MAX);
    REQUIRE(rest.status == decompress_status::end_of_message);
    f.idle = server.memory_in_use();
    return f;
}

}  // namespace

TEST_CASE("memory a compressed connection holds, per window size (zlib's state, counted by zalloc/zfree)") {
    const auto message = chatty_text(16 * 1024, 51);
    // Each direction alone: a compressor after one message, an inflater after one message.
    const auto compressor = [&](int bits, int memory_level) {
        permessage codec(role::server, symmetric(bits, false), {.memory_level = memory_level});
        compress_message(codec, message);
        return codec.memory_in_use();
    };
    const auto inflater = [&](int bits) {
        permessage sender(role::client, symmetric(bits, false));
        permessage codec(role::server, symmetric(bits, false));
        decompress_message(codec, compress_message(sender, message));
        return codec.memory_in_use();
    };
    std::ostringstream table;
    table << "\nzlib bytes held by one end of a connection (same window both ways, after 16 KiB text messages)\n"
          << "window | deflate (memLevel 5, default / 8) | inflate | connection with takeover (5 / 8) | "
             "no takeover, idle: release (default) / keep | no takeover, mid-message\n";
    std::size_t previous = 0;
    for (int bits = 8; bits <= 15; ++bits) {
        const auto deflate5 = compressor(bits, 5), deflate8 = compressor(bits, 8), inflate = inflater(bits);
        const auto level5 = measure(bits, false, {});
        const auto level8 = measure(bits, false, {.memory_level = 8});
        const auto released = measure(bits, true, {});
        const auto kept = measure(bits, true, {.release_between_messages = false});
        table << std::setw(6) << bits << " | " << std::setw(16) << deflate5 << " / " << std::setw(16) << deflate8 << " | "
              << std::setw(7) << inflate << " | " << std::setw(15) << level5.idle << " / " << std::setw(15) << level8.idle
              << " | " << std::setw(27) << released.idle << " / " << std::setw(14) << kept.idle << " | " << std::setw(24)
              << released.in_message << "\n";
        CHECK(level5.idle == deflate5 + inflate);
        CHECK(level8.idle == deflate8 + inflate);
        CHECK(level5.idle >= previous);
        CHECK(released.idle == 0);  // an idle connection without takeover holds no zlib memory
        CHECK(kept.idle == level5.idle);
        CHECK(released.in_message == level5.idle);
        previous = level5.idle;
    }
    MESSAGE(table.str());
}

TEST_CASE("steady-state messages make no allocation, with and without takeover, kept or released") {
    const auto message = chatty_text(3'000, 61);
    const std::pair<bool, bool> configurations[] = {{false, false}, {true, false}, {true, true}};
    for (const auto& configuration : configurations) {
        const bool no_takeover = configuration.first, release = configuration.second;
        CAPTURE(no_takeover);
        CAPTURE(release);
        const auto agreed = symmetric(15, no_takeover);
        permessage server(role::server, agreed, {.release_between_messages = release});
        permessage client(role::client, agreed, {.release_between_messages = release});
        bytes payload;
        std::array<std::byte, 4096> buffer;
        const auto exchange = [&] {
            payload.clear();
            server.compress(message, true, payload);
            std::size_t delivered = 0;
            for (std::span<const std::byte> rest(payload);;) {
                const auto r = client.decompress_some(rest, true, buffer, SIZE_MAX);
                rest = rest.subspan(r.consumed);
                delivered += r.produced;
                if (r.status != decompress_status::more) return r.status == decompress_status::end_of_message &&
                                                                delivered == message.size();
            }
        };
        for (int i = 0; i < 10; ++i) REQUIRE(exchange());
        const auto before = allocations.load();
        bool all_ok = true;
        for (int i = 0; i < 1'000; ++i) all_ok = exchange() && all_ok;
        const auto made = allocations.load() - before;
        CHECK(all_ok);
        CHECK(made == 0);
    }
}

// Not a test: `unit-deflate -tc='measure*' --no-skip` prints what keeping and resetting, releasing to
// the per-thread cache, and re-creating through the allocator cost per message, with context takeover
// as the baseline. The best of five runs of 2,000 messages, each different (takeover would otherwise
// find each message whole in the one before).
TEST_CASE("measure: per-message cost of reset, release to the cache, and init/end through malloc" * doctest::skip()) {
    using clock = std::chrono::steady_clock;
    for (std::size_t size : {std::size_t{64}, std::size_t{1024}, std::size_t{16 * 1024}}) {
        std::vector<bytes> messages;
        for (unsigned seed = 0; seed < 64; ++seed) messages.push_back(chatty_text(size, 71 + seed));
        constexpr int rounds = 2'000;
        const auto per_message = [&](auto&& body) {
            double best = 1e300;
            for (int run = 0; run < 5; ++run) {
                const auto start = clock::now();
                for (int i = 0; i < rounds; ++i) body(messages[static_cast<std::size_t>(i) % messages.size()]);
                best = std::min(best, std::chrono::duration<double, std::nano>(clock::now() - start).count() / rounds);
            }
            return static_cast<long>(best);
        };
        const auto codec_cost = [&](bool no_takeover, bool release) {
            const auto agreed = symmetric(15, no_takeover);
            permessage server(role::server, agreed, {.release_between_messages = release});
            permessage client(role::client, agreed, {.release_between_messages = release});
            bytes payload;
            std::array<std::byte, 32 * 1024> buffer;
            return per_message([&](const bytes& message) {
                payload.clear();
                server.compress(message, true, payload);
                client.decompress_some(payload, true, buffer, SIZE_MAX);
            });
        };
        const auto raw_cost = [&] {
            bytes payload(size + 1024);
            std::array<std::byte, 32 * 1024> buffer;
            return per_message([&](const bytes& message) {
                z_stream d{};
                deflateInit2(&d, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, pmd::codec_options{}.memory_level, Z_DEFAULT_STRATEGY);
                d.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(message.data()));
                d.avail_in = static_cast<uInt>(message.size());
                d.next_out = reinterpret_cast<Bytef*>(payload.data());
                d.avail_out = static_cast<uInt>(payload.size());
                deflate(&d, Z_SYNC_FLUSH);
                const auto n = payload.size() - d.avail_out;
                deflateEnd(&d);
                z_stream i{};
                inflateInit2(&i, -15);
                i.next_in = reinterpret_cast<Bytef*>(payload.data());
                i.avail_in = static_cast<uInt>(n);
                i.next_out = reinterpret_cast<Bytef*>(buffer.data());
                i.avail_out = static_cast<uInt>(buffer.size());
                inflate(&i, Z_SYNC_FLUSH);
                inflateEnd(&i);
            });
        };
        MESSAGE(size, " B messages, ns per message (compress + decompress, window 15, default memLevel): takeover ",
                codec_cost(false, false), "; no takeover: keep + reset ", codec_cost(true, false),
                ", release to the cache ", codec_cost(true, true), ", init/end through malloc ", raw_cost());
    }
}
