// duplex-deflate-bench — permessage-deflate (RFC 7692) throughput through duplex, next to zlib itself on
// the same data with the same parameters (the limit), and the memory a compressed connection holds.
//
//   duplex-deflate-bench [--quick] [--filter TEXT]
//
// Corpora, generated deterministically:
//   chat   20,000 JSON chat messages of 100-300 bytes, one WebSocket text message each; with context
//          takeover (the default) and without
//   text   a 1 MiB English-like text (made-up words) as one message, without context takeover (each
//          message stands alone)
// Directions, in MB/s of uncompressed payload:
//   compress-and-send    stream: ws::stream::send of every message on a server stream over an in-memory
//                        transport (compression into the output buffer, framing, the writes), then
//                        close_output to flush; codec: permessage::compress_some alone; zlib: deflate with
//                        Z_SYNC_FLUSH (deflateReset between messages without context takeover)
//   receive-and-inflate  stream: ws::stream::receive into a 64 KiB buffer of a client's masked compressed
//                        frames (reading 4 KiB at a time, parsing, unmasking, inflating); codec:
//                        permessage::decompress_some of the same payloads; zlib: inflate of the same payloads
//                        with the 00 00 ff ff tail, into the same buffer
// Same parameters everywhere: raw DEFLATE, window 15, zlib's default level (6), memLevel 5 (duplex's
// default; codec_options::memory_level). Each figure is the median of several runs over the whole
// corpus (the best run in brackets); "÷ zlib" is duplex's median over zlib's.
//
// Memory: zlib's bytes held by one end of a compressed connection (both directions agreed the same
// window), counted by the codec's zalloc/zfree (permessage::memory_in_use): with context takeover for as
// long as the connection lives; without it, nothing while idle and this much while a message is in flight
// each way. Plus sizeof(permessage), the codec object a compressed connection allocates.
#include <duplex/deflate/permessage.hpp>
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/mask.hpp>
#include <duplex/websocket/stream.hpp>

#include "memory_stream.hpp"

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using bytes = std::vector<std::byte>;
using clock_type = std::chrono::steady_clock;
namespace pmd = duplex::deflate;
using duplex::ws::role;

constexpr std::size_t receive_buffer_size = 64 * 1024;
constexpr int window_bits = 15;

struct settings {
    bool quick = false;
    std::string filter;
};

struct corpus {
    std::string name;
    std::vector<bytes> messages;
    std::size_t payload_bytes = 0;
    bool no_takeover = false;
};

// A fixed generator: std::mt19937's output is the same everywhere (its distributions are not).
class generator {
public:
    explicit generator(std::uint32_t seed) : engine_(seed) {}
    std::size_t below(std::size_t n) { return engine_() % n; }
    template <class T, std::size_t N>
    const T& pick(const T (&items)[N]) { return items[below(N)]; }

private:
    std::mt19937 engine_;
};

constexpr const char* words[] = {"the", "a", "to", "and", "of", "in", "is", "it", "you", "that", "we", "for", "on",
                                 "are", "with", "this", "be", "have", "not", "at", "meeting", "release", "deploy",
                                 "review", "tomorrow", "today", "coffee", "lunch", "build", "server", "client",
                                 "message", "thanks", "great", "sounds", "good", "please", "check", "latency",
                                 "compression", "websocket", "ticket", "merged", "broken", "fixed", "again"};
constexpr const char* users[] = {"ana", "ben", "chen", "dora", "eli", "farah", "goran", "hana", "ivan", "jun"};
constexpr const char* rooms[] = {"general", "random", "dev", "ops", "design"};

bytes to_bytes(std::string_view s) {
    bytes out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

corpus chat_corpus(std::size_t count, bool no_takeover) {
    generator g(7692);
    corpus c;
    c.name = no_takeover ? "chat, no context takeover" : "chat, context takeover";
    c.no_takeover = no_takeover;
    for (std::size_t i = 0; i < count; ++i) {
        std::string text;
        const std::size_t target = 40 + g.below(180);
        while (text.size() < target) {
            if (!text.empty()) text += ' ';
            text += g.pick(words);
        }
        char head[160];
        std::snprintf(head, sizeof head, R"({"type":"message","room":"%s","id":%zu,"user":"%s","ts":%llu,"text":")",
                      g.pick(rooms), 100000 + i, g.pick(users), 1700000000000ULL + i * 917 + g.below(900));
        std::string json = head + text + "\"}";
        c.payload_bytes += json.size();
        c.messages.push_back(to_bytes(json));
    }
    return c;
}

// English-like prose: 4,000 made-up words of 1-4 syllables, drawn with a skew towards the first ones
// (as word frequencies are), in sentences and paragraphs. It compresses to about a third, as text does.
corpus text_corpus(std::size_t repeats) {
    constexpr const char* syllables[] = {"ta", "ne", "ri", "so", "lu", "mar", "ven", "dor", "ish", "al", "ber", "con",
                                         "ex", "in", "pro", "ti", "ka", "le", "mo", "str", "an", "er", "ou", "th"};
    generator g(1951);
    std::vector<std::string> vocabulary;
    for (int i = 0; i < 4000; ++i) {
        std::string word;
        for (std::size_t n = 1 + g.below(4); n > 0; --n) word += g.pick(syllables);
        vocabulary.push_back(word);
    }
    const auto word = [&] {
        const double u = static_cast<double>(g.below(1'000'000)) / 1e6;
        return vocabulary[static_cast<std::size_t>(u * u * u * static_cast<double>(vocabulary.size()))];
    };
    std::string text;
    while (text.size() < (std::size_t{1} << 20)) {
        std::string sentence = word();
        sentence[0] = static_cast<char>(sentence[0] - 'a' + 'A');
        for (std::size_t n = 5 + g.below(20); n > 0; --n) sentence += (g.below(9) == 0 ? ", " : " ") + word();
        text += sentence + (g.below(6) == 0 ? ".\n\n" : ". ");
    }
    text.resize(std::size_t{1} << 20);
    corpus c;
    c.name = "1 MiB text, no context takeover";
    c.no_takeover = true;
    for (std::size_t i = 0; i < repeats; ++i) {
        c.messages.push_back(to_bytes(text));
        c.payload_bytes += text.size();
    }
    return c;
}

pmd::negotiated agreement(bool no_takeover, int bits = window_bits) {
    pmd::negotiated n;
    n.server_max_window_bits = n.client_max_window_bits = bits;
    n.server_no_context_takeover = n.client_no_context_takeover = no_takeover;
    return n;
}

// ---- zlib alone ----

z_stream zlib_deflater() {
    z_stream z{};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -window_bits, pmd::codec_options{}.memory_level,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        std::abort();
    return z;
}

// Compresses every message with Z_SYNC_FLUSH and drops the 00 00 ff ff, as RFC 7692 7.2.1 does.
std::vector<bytes> zlib_compress_all(const corpus& c, bytes& scratch) {
    std::vector<bytes> out;
    z_stream z = zlib_deflater();
    for (const auto& m : c.messages) {
        scratch.resize(deflateBound(&z, static_cast<uLong>(m.size())) + 16);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(m.data()));
        z.avail_in = static_cast<uInt>(m.size());
        z.next_out = reinterpret_cast<Bytef*>(scratch.data());
        z.avail_out = static_cast<uInt>(scratch.size());
        deflate(&z, Z_SYNC_FLUSH);
        out.emplace_back(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(scratch.size() - z.avail_out - 4));
        if (c.no_takeover) deflateReset(&z);
    }
    deflateEnd(&z);
    return out;
}

double zlib_compress_seconds(const corpus& c) {
    bytes output(2 * (std::size_t{1} << 20));
    z_stream z = zlib_deflater();
    const auto start = clock_type::now();
    for (const auto& m : c.messages) {
        z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(m.data()));
        z.avail_in = static_cast<uInt>(m.size());
        z.next_out = reinterpret_cast<Bytef*>(output.data());
        z.avail_out = static_cast<uInt>(output.size());
        deflate(&z, Z_SYNC_FLUSH);
        if (c.no_takeover) deflateReset(&z);
    }
    const std::chrono::duration<double> seconds = clock_type::now() - start;
    deflateEnd(&z);
    return seconds.count();
}

double zlib_inflate_seconds(const corpus& c, const std::vector<bytes>& payloads) {
    static constexpr Bytef tail[] = {0x00, 0x00, 0xff, 0xff};
    bytes output(receive_buffer_size);
    z_stream z{};
    if (inflateInit2(&z, -window_bits) != Z_OK) std::abort();
    std::size_t produced = 0;
    const auto start = clock_type::now();
    for (const auto& p : payloads) {
        const auto feed = [&](const Bytef* data, std::size_t size) {
            z.next_in = const_cast<Bytef*>(data);
            z.avail_in = static_cast<uInt>(size);
            do {
                z.next_out = reinterpret_cast<Bytef*>(output.data());
                z.avail_out = static_cast<uInt>(output.size());
                inflate(&z, Z_SYNC_FLUSH);
                produced += output.size() - z.avail_out;
            } while (z.avail_in != 0 || z.avail_out == 0);
        };
        feed(reinterpret_cast<const Bytef*>(p.data()), p.size());
        feed(tail, sizeof tail);
        if (c.no_takeover) inflateReset(&z);
    }
    const std::chrono::duration<double> seconds = clock_type::now() - start;
    inflateEnd(&z);
    if (produced != c.payload_bytes) std::abort();
    return seconds.count();
}

// ---- duplex's codec alone ----

double codec_compress_seconds(const corpus& c) {
    pmd::permessage codec(role::server, agreement(c.no_takeover));
    bytes output(2 * (std::size_t{1} << 20));
    const auto start = clock_type::now();
    for (const auto& m : c.messages) {
        std::span<const std::byte> input(m);
        for (;;) {
            const auto r = codec.compress_some(input, true, output);
            input = input.subspan(r.consumed);
            if (r.done) break;
        }
    }
    const std::chrono::duration<double> seconds = clock_type::now() - start;
    return seconds.count();
}

double codec_inflate_seconds(const corpus& c, const std::vector<bytes>& payloads) {
    pmd::permessage codec(role::server, agreement(c.no_takeover));
    bytes output(receive_buffer_size);
    std::size_t produced = 0;
    const auto start = clock_type::now();
    for (const auto& p : payloads) {
        std::span<const std::byte> input(p);
        for (;;) {
            const auto r = codec.decompress_some(input, true, output, SIZE_MAX);
            input = input.subspan(r.consumed);
            produced += r.produced;
            if (r.status == pmd::decompress_status::end_of_message) break;
            if (r.status != pmd::decompress_status::more) std::abort();
        }
    }
    const std::chrono::duration<double> seconds = clock_type::now() - start;
    if (produced != c.payload_bytes) std::abort();
    return seconds.count();
}

// ---- through a ws::stream ----

using memory_ws = duplex::ws::stream<test::memory_stream>;

std::string upgrade_request(bool no_takeover) {
    return std::string("GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits") +
           (no_takeover ? "; server_no_context_takeover; client_no_context_takeover" : "") + "\r\n\r\n";
}

// A server stream that has accepted the upgrade in `state->input`, with compression.
duplex::awaitable<void> accept_compressed(memory_ws& s) {
    const auto request = co_await s.read_request();
    const std::optional<pmd::options> compression = pmd::options{};
    const duplex::http::headers no_headers;
    const std::string_view no_sub_protocol;
    co_await s.accept(request, no_sub_protocol, no_headers, compression);
    if (!s.compression()) std::abort();
}

duplex::awaitable<void> send_all(memory_ws s, const corpus& c, std::shared_ptr<test::memory_stream::state> state,
                                 double& seconds) {
    co_await accept_compressed(s);
    state->output.clear();
    const auto start = clock_type::now();
    for (const auto& m : c.messages) {
        co_await s.send(asio::buffer(m), duplex::message_type::text, true);
        if (state->output.size() > (std::size_t{16} << 20)) state->output.clear();
    }
    const std::string_view no_reason;
    co_await s.close_output(duplex::close_status::normal_closure, no_reason);
    const std::chrono::duration<double> elapsed = clock_type::now() - start;
    seconds = elapsed.count();
}

double stream_send_seconds(const corpus& c) {
    asio::io_context io(1);
    auto state = std::make_shared<test::memory_stream::state>();
    state->input = to_bytes(upgrade_request(c.no_takeover));
    double seconds = -1;
    asio::co_spawn(io, send_all(memory_ws(test::memory_stream(io.get_executor(), state), role::server), c, state, seconds),
                   [](std::exception_ptr e) {
                       if (e) std::rethrow_exception(e);
                   });
    io.run();
    if (seconds < 0) std::abort();
    return seconds;
}

// The client's side of the connection: its compressed messages, masked, as the server reads them.
bytes client_frames(const std::vector<bytes>& payloads) {
    bytes out;
    std::uint32_t key_state = 0x9e3779b9;
    for (const auto& p : payloads) {
        duplex::ws::frame_header h;
        h.rsv1 = true;
        h.op = duplex::ws::opcode::text;
        h.masked = true;
        key_state = key_state * 1664525 + 1013904223;
        std::memcpy(h.key.data(), &key_state, 4);
        h.payload_length = p.size();
        std::byte header[duplex::ws::max_header_size];
        const auto n = duplex::ws::encode_header(h, header);
        out.insert(out.end(), header, header + n);
        const auto at = out.size();
        out.resize(at + p.size());
        duplex::ws::copy_masked(out.data() + at, p.data(), p.size(), h.key);
    }
    return out;
}

duplex::awaitable<void> receive_all(memory_ws s, const corpus& c, double& seconds) {
    co_await accept_compressed(s);
    bytes buffer(receive_buffer_size);
    std::size_t messages = 0, produced = 0;
    const auto start = clock_type::now();
    while (messages < c.messages.size()) {
        const auto r = co_await s.receive(asio::buffer(buffer));
        if (r.close_status) std::abort();
        produced += r.count;
        messages += r.end_of_message ? 1 : 0;
    }
    const std::chrono::duration<double> elapsed = clock_type::now() - start;
    seconds = elapsed.count();
    if (produced != c.payload_bytes) std::abort();
    s.abort();
}

double stream_receive_seconds(const corpus& c, const bytes& frames) {
    asio::io_context io(1);
    auto state = std::make_shared<test::memory_stream::state>();
    state->input = to_bytes(upgrade_request(c.no_takeover));
    state->input.insert(state->input.end(), frames.begin(), frames.end());
    double seconds = -1;
    asio::co_spawn(io, receive_all(memory_ws(test::memory_stream(io.get_executor(), state), role::server), c, seconds),
                   [](std::exception_ptr e) {
                       if (e) std::rethrow_exception(e);
                   });
    io.run();
    if (seconds < 0) std::abort();
    return seconds;
}

// ---- reporting ----

struct rate {
    double median = 0, best = 0;  // MB/s
};

rate measure(const settings& s, const corpus& c, const std::function<double()>& run) {
    const int runs = s.quick ? 3 : 7;
    std::vector<double> rates;
    run();  // warm-up: caches, the allocator, zlib's block cache
    for (int i = 0; i < runs; ++i) rates.push_back(static_cast<double>(c.payload_bytes) / run() / 1e6);
    std::sort(rates.begin(), rates.end());
    return {rates[rates.size() / 2], rates.back()};
}

void throughput(const settings& s, const corpus& c) {
    bytes scratch;
    const auto zlib_payloads = zlib_compress_all(c, scratch);
    // The receiving side reads what duplex's client would send (the same bytes as zlib's, in practice).
    std::vector<bytes> payloads;
    {
        pmd::permessage client(role::client, agreement(c.no_takeover));
        for (const auto& m : c.messages) {
            bytes p;
            client.compress(m, true, p);
            payloads.push_back(std::move(p));
        }
    }
    std::size_t compressed = 0;
    for (const auto& p : payloads) compressed += p.size();
    const auto frames = client_frames(payloads);

    std::printf("\n%s: %zu messages, %.1f MB, compressed to %.1f%% (average %.0f -> %.0f bytes)\n", c.name.c_str(),
                c.messages.size(), static_cast<double>(c.payload_bytes) / 1e6,
                100.0 * static_cast<double>(compressed) / static_cast<double>(c.payload_bytes),
                static_cast<double>(c.payload_bytes) / static_cast<double>(c.messages.size()),
                static_cast<double>(compressed) / static_cast<double>(c.messages.size()));
    std::printf("%-20s | %21s | %21s | %21s | %7s | %7s\n", "MB/s (best)", "duplex stream", "duplex codec", "zlib",
                "stream", "codec");
    std::printf("%-20s | %21s | %21s | %21s | %7s | %7s\n", "", "", "", "", "÷ zlib", "÷ zlib");
    const auto row = [&](const char* what, rate stream, rate codec, rate zlib) {
        std::printf("%-20s | %11.1f (%7.1f) | %11.1f (%7.1f) | %11.1f (%7.1f) | %6.2fx | %6.2fx\n", what, stream.median,
                    stream.best, codec.median, codec.best, zlib.median, zlib.best, stream.median / zlib.median,
                    codec.median / zlib.median);
        std::printf("DEFLATE corpus=\"%s\" direction=\"%s\" stream=%.1f codec=%.1f zlib=%.1f unit=MB/s\n",
                    c.name.c_str(), what, stream.median, codec.median, zlib.median);
        std::fflush(stdout);
    };
    row("compress-and-send", measure(s, c, [&] { return stream_send_seconds(c); }),
        measure(s, c, [&] { return codec_compress_seconds(c); }), measure(s, c, [&] { return zlib_compress_seconds(c); }));
    row("receive-and-inflate", measure(s, c, [&] { return stream_receive_seconds(c, frames); }),
        measure(s, c, [&] { return codec_inflate_seconds(c, payloads); }),
        measure(s, c, [&] { return zlib_inflate_seconds(c, zlib_payloads); }));
}

// One end of a connection with the same window both ways: after a message each way (idle), and with a
// message in flight each way.
struct footprint {
    std::size_t idle = 0, in_flight = 0;
};

footprint connection_memory(int bits, bool no_takeover) {
    const auto corpus = chat_corpus(80, false);
    bytes message;
    for (const auto& m : corpus.messages) message.insert(message.end(), m.begin(), m.end());  // ~12 KB of chat
    pmd::permessage end(role::server, agreement(no_takeover, bits));
    pmd::permessage peer(role::client, agreement(no_takeover, bits));
    bytes payload, out, buffer(receive_buffer_size);
    peer.compress(message, true, payload);
    const auto half = std::span<const std::byte>(payload).first(payload.size() / 2);
    footprint f;
    end.compress(message, false, out);
    if (end.decompress_some(half, false, buffer, SIZE_MAX).consumed != half.size()) std::abort();
    f.in_flight = end.memory_in_use();
    end.compress({}, true, out);
    const auto rest = end.decompress_some(std::span<const std::byte>(payload).subspan(half.size()), true, buffer, SIZE_MAX);
    if (rest.status != pmd::decompress_status::end_of_message) std::abort();
    f.idle = end.memory_in_use();
    return f;
}

void memory_table() {
    std::printf("\nzlib memory of one end of a compressed connection (memLevel 5; sizeof(permessage) = %zu bytes more)\n",
                sizeof(pmd::permessage));
    std::printf("%6s | %20s | %22s | %26s\n", "window", "context takeover", "no takeover, idle", "no takeover, in flight");
    for (int bits = 8; bits <= 15; ++bits) {
        const auto with = connection_memory(bits, false);
        const auto without = connection_memory(bits, true);
        std::printf("%6d | %14zu bytes | %16zu bytes | %20zu bytes\n", bits, with.idle, without.idle, without.in_flight);
        std::printf("DEFLATE_MEMORY window=%d takeover=%zu no_takeover_idle=%zu no_takeover_in_flight=%zu unit=bytes\n",
                    bits, with.idle, without.idle, without.in_flight);
    }
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--quick") {
            s.quick = true;
        } else if (arg == "--filter" && i + 1 < argc) {
            s.filter = argv[++i];
        } else {
            std::fprintf(stderr, "usage: duplex-deflate-bench [--quick] [--filter TEXT]\n");
            return 2;
        }
    }
    std::printf("duplex-deflate-bench: window %d, zlib level %d (default), memLevel %d, zlib %s%s\n", window_bits,
                Z_DEFAULT_COMPRESSION, pmd::codec_options{}.memory_level, zlibVersion(), s.quick ? ", --quick" : "");
    const std::size_t chat_messages = s.quick ? 5'000 : 20'000;
    const corpus corpora[] = {chat_corpus(chat_messages, false), chat_corpus(chat_messages, true),
                              text_corpus(s.quick ? 2 : 8)};
    for (const auto& c : corpora)
        if (s.filter.empty() || c.name.find(s.filter) != std::string::npos) throughput(s, c);
    if (s.filter.empty() || std::string_view("memory").find(s.filter) != std::string_view::npos) memory_table();
    return 0;
}
