// duplex-micro — micro-benchmarks of the sans-I/O hot paths, each beside a baseline:
//   masking (duplex::ws::apply_mask, copy_masked) against memcpy and a byte-at-a-time loop;
//   UTF-8 validation (duplex::ws::is_valid_utf8, utf8_validator fed in pieces) against a plain scalar
//   decoder, on ASCII and on mixed scripts;
//   frame header decoding (duplex::ws::decode_header), in nanoseconds per header.
//
//   duplex-micro [--quick] [--filter TEXT]
//
// Each figure is the median of several timed batches (a batch runs long enough for the clock to be
// exact); the best batch is printed too, as on a shared machine it is the one least disturbed. Lines
// starting with MICRO are for scripts: `MICRO group=... name=... size=... median=... best=... unit=...`.
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/mask.hpp>
#include <duplex/websocket/utf8.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

// Keeps the compiler from dropping or hoisting work whose result is otherwise unused.
template <class T>
inline void keep(const T& value) {
    asm volatile("" : : "r,m"(value) : "memory");
}

struct settings {
    bool quick = false;
    std::string filter;
};

struct timing {
    double median_ns = 0;  // per call
    double best_ns = 0;
};

// Times `body` (one call = one operation): calibrates a batch to about 20 ms (5 ms with --quick),
// then takes the median and the best of several batches.
template <class Body>
timing time_calls(const settings& s, Body&& body) {
    using clock = std::chrono::steady_clock;
    const auto batch_target = std::chrono::milliseconds(s.quick ? 5 : 20);
    const int batches = s.quick ? 5 : 11;
    std::uint64_t calls = 1;
    for (;;) {
        const auto t0 = clock::now();
        for (std::uint64_t i = 0; i < calls; ++i) body();
        if (clock::now() - t0 >= batch_target / 4 || calls >= (std::uint64_t{1} << 40)) break;
        calls *= 2;
    }
    calls *= 4;
    std::vector<double> per_call;
    for (int b = 0; b < batches; ++b) {
        const auto t0 = clock::now();
        for (std::uint64_t i = 0; i < calls; ++i) body();
        const std::chrono::duration<double, std::nano> elapsed = clock::now() - t0;
        per_call.push_back(elapsed.count() / double(calls));
    }
    std::sort(per_call.begin(), per_call.end());
    return {per_call[per_call.size() / 2], per_call.front()};
}

bool selected(const settings& s, std::string_view group, std::string_view name) {
    if (s.filter.empty()) return true;
    return std::string(group).find(s.filter) != std::string::npos || std::string(name).find(s.filter) != std::string::npos;
}

std::string human_size(std::size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
    if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
    return std::to_string(n) + " B";
}

// Bandwidth in GB/s (10^9 bytes per second) of an operation over `bytes` bytes.
void report_bandwidth(const settings& s, std::string_view group, std::string_view name, std::size_t bytes,
                      const timing& t) {
    (void)s;
    const double median = double(bytes) / t.median_ns;  // bytes per ns = GB/s
    const double best = double(bytes) / t.best_ns;
    std::printf("  %-28s %8s  %8.2f GB/s  (best %6.2f)  %10.1f ns\n", std::string(name).c_str(),
                human_size(bytes).c_str(), median, best, t.median_ns);
    std::printf("MICRO group=%s name=%s size=%zu median=%.3f best=%.3f unit=GB/s ns=%.1f\n", std::string(group).c_str(),
                std::string(name).c_str(), bytes, median, best, t.median_ns);
}

// ---------------------------------------------------------------- masking

void byte_loop_mask(std::byte* data, std::size_t size, duplex::ws::mask_key key) {
    for (std::size_t i = 0; i < size; ++i) data[i] ^= std::byte{key[i % 4]};
}

void bench_mask(const settings& s) {
    std::printf("\nmasking (payload starting 6 bytes into its buffer, as after a client frame header)\n");
    const duplex::ws::mask_key key{0x12, 0x34, 0x56, 0x78};
    for (const std::size_t size : {std::size_t{64}, std::size_t{1024}, std::size_t{16384}, std::size_t{1} << 20}) {
        auto src_buffer = std::make_unique<std::byte[]>(size + 64);
        auto dst_buffer = std::make_unique<std::byte[]>(size + 64);
        for (std::size_t i = 0; i < size + 64; ++i) src_buffer[i] = std::byte(i * 131 + 7);
        std::byte* const src = src_buffer.get() + 6;
        std::byte* const dst = dst_buffer.get() + 6;
        if (selected(s, "mask", "memcpy"))
            report_bandwidth(s, "mask", "memcpy", size, time_calls(s, [&] {
                                 std::memcpy(dst, src, size);
                                 keep(dst);
                             }));
        if (selected(s, "mask", "copy_masked"))
            report_bandwidth(s, "mask", "copy_masked", size, time_calls(s, [&] {
                                 duplex::ws::copy_masked(dst, src, size, key);
                                 keep(dst);
                             }));
        if (selected(s, "mask", "apply_mask"))
            report_bandwidth(s, "mask", "apply_mask", size, time_calls(s, [&] {
                                 duplex::ws::apply_mask(dst, size, key);
                                 keep(dst);
                             }));
        if (selected(s, "mask", "byte_loop_mask"))
            report_bandwidth(s, "mask", "byte_loop_mask", size, time_calls(s, [&] {
                                 byte_loop_mask(dst, size, key);
                                 keep(dst);
                             }));
    }
}

// ---------------------------------------------------------------- UTF-8

// The baseline: decode one code point at a time and check its range, as most hand-written validators do.
[[gnu::noinline]] bool scalar_utf8_valid(const unsigned char* s, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        const unsigned lead = s[i];
        if (lead < 0x80) {
            ++i;
            continue;
        }
        std::size_t length;
        std::uint32_t cp, smallest;
        if ((lead & 0xE0) == 0xC0) {
            length = 2, cp = lead & 0x1F, smallest = 0x80;
        } else if ((lead & 0xF0) == 0xE0) {
            length = 3, cp = lead & 0x0F, smallest = 0x800;
        } else if ((lead & 0xF8) == 0xF0) {
            length = 4, cp = lead & 0x07, smallest = 0x10000;
        } else {
            return false;
        }
        if (n - i < length) return false;
        for (std::size_t k = 1; k < length; ++k) {
            const unsigned next = s[i + k];
            if ((next & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (next & 0x3F);
        }
        if (cp < smallest || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += length;
    }
    return true;
}

// Text of exactly `size` bytes made of whole phrases (ASCII spaces pad the end), so it is valid UTF-8.
std::string make_text(std::size_t size, bool mixed) {
    static constexpr std::string_view ascii[] = {"The quick brown fox jumps over the lazy dog. ",
                                                 "{\"type\":\"message\",\"id\":12345,\"text\":\"hello\"} "};
    static constexpr std::string_view scripts[] = {
        "Ünïcödé façade naïve café ", "Καλημέρα κόσμε ", "Здравствуй, мир ", "こんにちは世界 ",
        "你好，世界 ",               "مرحبا بالعالم ",    "😀🚀✨🎉 ",         "hello world ",
    };
    std::string text;
    std::size_t i = 0;
    for (;;) {
        const auto phrase = mixed ? scripts[i % std::size(scripts)] : ascii[i % std::size(ascii)];
        if (text.size() + phrase.size() > size) break;
        text += phrase;
        ++i;
    }
    text.resize(size, ' ');
    return text;
}

void bench_utf8(const settings& s) {
    std::printf("\nUTF-8 validation\n");
    for (const bool mixed : {false, true}) {
        for (const std::size_t size : {std::size_t{64}, std::size_t{4096}, std::size_t{1} << 20}) {
            const auto text = make_text(size, mixed);
            const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
            const auto* chars = reinterpret_cast<const unsigned char*>(text.data());
            if (!duplex::ws::is_valid_utf8(text) || !scalar_utf8_valid(chars, text.size())) {
                std::fprintf(stderr, "duplex-micro: the %s sample is not valid UTF-8\n", mixed ? "mixed" : "ASCII");
                std::exit(1);
            }
            const std::string suffix = mixed ? "_mixed" : "_ascii";
            const std::string group = "utf8";
            if (selected(s, group, "is_valid_utf8" + suffix))
                report_bandwidth(s, group, "is_valid_utf8" + suffix, size, time_calls(s, [&] {
                                     keep(bytes);
                                     const bool ok = duplex::ws::is_valid_utf8(bytes, size);
                                     keep(ok);
                                 }));
            if (size >= 4096 && selected(s, group, "validator_1KiB_pieces" + suffix))
                report_bandwidth(s, group, "validator_1KiB_pieces" + suffix, size, time_calls(s, [&] {
                                     keep(bytes);
                                     duplex::ws::utf8_validator v;
                                     bool ok = true;
                                     for (std::size_t at = 0; at < size; at += 1024)
                                         ok &= v.feed(bytes + at, std::min<std::size_t>(1024, size - at));
                                     ok &= v.complete();
                                     keep(ok);
                                 }));
            if (selected(s, group, "scalar_baseline" + suffix))
                report_bandwidth(s, group, "scalar_baseline" + suffix, size, time_calls(s, [&] {
                                     keep(chars);
                                     const bool ok = scalar_utf8_valid(chars, size);
                                     keep(ok);
                                 }));
        }
    }
}

// ---------------------------------------------------------------- frame headers

void bench_decode_header(const settings& s) {
    std::printf("\nframe header decoding (4096 headers back to back, each with its payload left out)\n");
    struct kind {
        const char* name;
        bool masked;
        std::uint64_t length;  // 0: a random mix of every form
    };
    static constexpr kind kinds[] = {
        {"server_7bit", false, 64},         // 2 bytes: what a client receives for small messages
        {"client_7bit_masked", true, 64},   // 6 bytes: what a server receives for small messages
        {"client_16bit_masked", true, 16384},
        {"client_64bit_masked", true, 1 << 20},
        {"mixed", false, 0},
    };
    constexpr std::size_t count = 4096;
    for (const auto& k : kinds) {
        if (!selected(s, "decode_header", k.name)) continue;
        std::vector<std::byte> wire;
        std::vector<std::size_t> offsets;
        std::uint64_t x = 88172645463325252ull;
        for (std::size_t i = 0; i < count; ++i) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            duplex::ws::frame_header h;
            h.op = duplex::ws::opcode::binary;
            h.masked = k.length == 0 ? (x & 1) != 0 : k.masked;
            h.key = {1, 2, 3, 4};
            static constexpr std::uint64_t mixed_lengths[] = {0, 5, 125, 126, 4000, 65535, 65536, 1 << 20};
            h.payload_length = k.length == 0 ? mixed_lengths[(x >> 8) % std::size(mixed_lengths)] : k.length;
            std::array<std::byte, duplex::ws::max_header_size> buffer;
            const auto n = duplex::ws::encode_header(h, buffer.data());
            offsets.push_back(wire.size());
            wire.insert(wire.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
        }
        const auto t = time_calls(s, [&] {
            std::uint64_t sum = 0;
            std::size_t at = 0;
            for (std::size_t i = 0; i < count; ++i) {
                duplex::ws::frame_header h;
                const auto r = duplex::ws::decode_header(wire.data() + at, wire.size() - at, h);
                sum += h.payload_length + r.header_size;
                at += r.header_size;
            }
            keep(sum);
        });
        const double median = t.median_ns / count, best = t.best_ns / count;
        std::printf("  %-28s %8.2f ns/header  (best %5.2f)\n", k.name, median, best);
        std::printf("MICRO group=decode_header name=%s size=%zu median=%.3f best=%.3f unit=ns/header\n", k.name, count,
                    median, best);
    }
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--quick") s.quick = true;
        else if (arg == "--filter" && i + 1 < argc) s.filter = argv[++i];
        else {
            std::fprintf(stderr, "usage: duplex-micro [--quick] [--filter TEXT]\n");
            return 2;
        }
    }
#if defined(__AVX2__)
    const char* simd = "AVX2";
#elif defined(__SSE2__)
    const char* simd = "SSE2";
#else
    const char* simd = "none";
#endif
    std::printf("duplex-micro: SIMD path compiled in: %s\n", simd);
    bench_mask(s);
    bench_utf8(s);
    bench_decode_header(s);
}
