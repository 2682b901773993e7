// Incremental UTF-8 validation (RFC 3629) for text messages, which RFC 6455 §8.1 requires to be valid
// UTF-8 and which arrive in pieces split anywhere, even inside a code point.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace duplex::ws {

namespace detail::utf8_dfa {

// States are named by what the next byte must be, so each one rejects exactly the bytes that make the
// input impossible (overlongs, surrogates and code points above U+10FFFF fail at their second byte).
enum : std::uint8_t {
    accept,   // on a code point boundary
    reject,   // absorbing: nothing can repair the input
    need_1,   // one more continuation byte, any of 80..BF
    need_2,
    need_3,
    after_e0, // A0..BF: below that the code point would fit in two bytes (overlong)
    after_ed, // 80..9F: above that are the surrogates D800..DFFF
    after_f0, // 90..BF: below that the code point would fit in three bytes (overlong)
    after_f4, // 80..8F: above that lies beyond U+10FFFF
    state_count,
};

// Byte classes: the bytes each state has to tell apart.
enum : std::uint8_t {
    ascii,
    cont_80_8f,
    cont_90_9f,
    cont_a0_bf,
    never,    // C0, C1 (only overlong leads) and F5..FF (beyond U+10FFFF)
    lead_2,   // C2..DF
    lead_e0,
    lead_3,   // E1..EC, EE, EF
    lead_ed,
    lead_f0,
    lead_4,   // F1..F3
    lead_f4,
};

constexpr std::uint8_t byte_class(unsigned byte) noexcept {
    if (byte < 0x80) return ascii;
    if (byte < 0x90) return cont_80_8f;
    if (byte < 0xA0) return cont_90_9f;
    if (byte < 0xC0) return cont_a0_bf;
    if (byte < 0xC2) return never;
    if (byte < 0xE0) return lead_2;
    if (byte == 0xE0) return lead_e0;
    if (byte == 0xED) return lead_ed;
    if (byte < 0xF0) return lead_3;
    if (byte == 0xF0) return lead_f0;
    if (byte < 0xF4) return lead_4;
    if (byte == 0xF4) return lead_f4;
    return never;
}

constexpr std::uint8_t next_state(std::uint8_t state, std::uint8_t cls) noexcept {
    const bool continuation = cls == cont_80_8f || cls == cont_90_9f || cls == cont_a0_bf;
    switch (state) {
    case accept:
        switch (cls) {
        case ascii: return accept;
        case lead_2: return need_1;
        case lead_e0: return after_e0;
        case lead_3: return need_2;
        case lead_ed: return after_ed;
        case lead_f0: return after_f0;
        case lead_4: return need_3;
        case lead_f4: return after_f4;
        default: return reject;
        }
    case need_1: return continuation ? accept : reject;
    case need_2: return continuation ? need_1 : reject;
    case need_3: return continuation ? need_2 : reject;
    case after_e0: return cls == cont_a0_bf ? need_1 : reject;
    case after_ed: return cls == cont_80_8f || cls == cont_90_9f ? need_1 : reject;
    case after_f0: return cls == cont_90_9f || cls == cont_a0_bf ? need_2 : reject;
    case after_f4: return cls == cont_80_8f ? need_2 : reject;
    default: return reject;
    }
}

// A shift DFA. A state is represented by its bit offset, and each byte has one 64-bit row holding every
// state's successor (as a bit offset) in the 6-bit field at that state's offset. A step is then
// `row >> state`: the row lookup depends only on the input byte, so the one serial dependency from byte
// to byte is a single shift instead of the load of a classic transition table. One row per byte (2 KiB)
// rather than a 256-byte class table plus one row per class (352 bytes): the extra load per byte of the
// smaller layout cost a third of the non-ASCII throughput.
inline constexpr unsigned bits_per_state = 6;
// Also makes every offset (at most 58) fit in a 6-bit field.
static_assert(state_count * bits_per_state <= 64);

constexpr std::uint8_t bits(std::uint8_t state) noexcept { return static_cast<std::uint8_t>(state * bits_per_state); }

inline constexpr std::array<std::uint64_t, 256> transitions = [] {
    std::array<std::uint64_t, 256> table{};
    for (unsigned byte = 0; byte < 256; ++byte) {
        for (std::uint8_t state = 0; state < state_count; ++state) {
            table[byte] |= std::uint64_t{bits(next_state(state, byte_class(byte)))} << bits(state);
        }
    }
    return table;
}();

// Only the low six bits of `state` are the state; the caller masks once per run of steps, which keeps
// the `and` off the serial path (x86 and ARM64 shifts ignore the upper bits, so the mask here compiles away).
inline std::uint64_t step(std::uint64_t state, unsigned char byte) noexcept {
    return transitions[byte] >> (state & 63);
}

// Non-ASCII text runs through the DFA in chunks this long: short enough that text which returns to ASCII
// (spaces, markup) soon gets back to the vector path and that an error stops the work within a few bytes,
// long enough to amortise the checks between chunks.
inline constexpr std::size_t chunk_size = 32;

// Eight steps per iteration, written out by the fold: a loop test per byte costs as much as the step
// itself, while writing out the whole chunk makes GCC hoist every load and spill them to the stack.
inline std::uint64_t step_chunk(std::uint64_t state, const unsigned char* p) noexcept {
    constexpr std::size_t unroll = 8;
    static_assert(chunk_size % unroll == 0);
    for (const auto* const chunk_end = p + chunk_size; p != chunk_end; p += unroll) {
        [&]<std::size_t... k>(std::index_sequence<k...>) {
            ((state = step(state, p[k])), ...);
        }(std::make_index_sequence<unroll>{});
    }
    return state;
}

// Returns the first byte at or after p that may be non-ASCII: exactly the first one where vectors find it,
// or a few bytes before it (the DFA then walks over the ASCII in between).
inline const unsigned char* skip_ascii(const unsigned char* p, const unsigned char* end) noexcept {
#if defined(__AVX2__)
    const auto load = [](const unsigned char* at) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)); };
    for (; end - p >= 64; p += 64) {
        if (_mm256_movemask_epi8(_mm256_or_si256(load(p), load(p + 32))) != 0) break;
    }
    for (; end - p >= 32; p += 32) {
        if (const auto high = static_cast<unsigned>(_mm256_movemask_epi8(load(p)))) return p + std::countr_zero(high);
    }
#elif defined(__SSE2__) || defined(_M_X64)
    const auto load = [](const unsigned char* at) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(at)); };
    for (; end - p >= 64; p += 64) {
        const __m128i any = _mm_or_si128(_mm_or_si128(load(p), load(p + 16)), _mm_or_si128(load(p + 32), load(p + 48)));
        if (_mm_movemask_epi8(any) != 0) break;
    }
    for (; end - p >= 16; p += 16) {
        if (const auto high = static_cast<unsigned>(_mm_movemask_epi8(load(p)))) return p + std::countr_zero(high);
    }
#else
    for (; end - p >= 8; p += 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        if ((word & 0x8080808080808080) != 0) break;
    }
#endif
    return p;
}

}  // namespace detail::utf8_dfa

// Incremental UTF-8 validator (RFC 3629) for text messages that arrive in pieces split anywhere,
// including in the middle of a code point, across frames and reads.
class utf8_validator {
public:
    // Feeds the next bytes. Returns false as soon as the bytes seen so far can no longer be the prefix of
    // valid UTF-8 (e.g. F4 90, ED A0, E0 80, C0, F5 fail at the first byte that makes them impossible);
    // once false it stays false until reset().
    bool feed(const std::byte* data, std::size_t size) noexcept {
        using namespace detail::utf8_dfa;
        const auto* p = reinterpret_cast<const unsigned char*>(data);
        const auto* const end = p + size;
        std::uint64_t state = state_;
        while (p != end && state != bits(reject)) {
            if (state == bits(accept) && *p < 0x80) {
                p = skip_ascii(p, end);
                if (p == end) break;
            }
            if (static_cast<std::size_t>(end - p) >= chunk_size) {
                state = step_chunk(state, p);
                p += chunk_size;
            } else {
                for (; p != end; ++p) state = step(state, *p);
            }
            state &= 63;
        }
        state_ = static_cast<std::uint8_t>(state);
        return state_ != bits(reject);
    }

    // True when no error occurred and the bytes fed so far end on a code point boundary.
    bool complete() const noexcept { return state_ == detail::utf8_dfa::bits(detail::utf8_dfa::accept); }
    bool failed() const noexcept { return state_ == detail::utf8_dfa::bits(detail::utf8_dfa::reject); }
    void reset() noexcept { state_ = detail::utf8_dfa::bits(detail::utf8_dfa::accept); }

private:
    std::uint8_t state_ = detail::utf8_dfa::bits(detail::utf8_dfa::accept);
};

// Whole-buffer convenience (used for close reasons).
inline bool is_valid_utf8(const std::byte* data, std::size_t size) noexcept {
    utf8_validator validator;
    return validator.feed(data, size) && validator.complete();
}

inline bool is_valid_utf8(std::string_view text) noexcept {
    return is_valid_utf8(reinterpret_cast<const std::byte*>(text.data()), text.size());
}

}  // namespace duplex::ws
