// RFC 6455 §5.3 payload masking: XOR with a 4-byte key that repeats from the first payload byte.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace duplex::ws {

using mask_key = std::array<std::uint8_t, 4>;

namespace detail {

// The key lined up with payload position `offset`: byte i of the word masks payload byte offset + i.
// Kept in memory order (not as a number), so the same word works on either endianness.
inline std::uint32_t mask_pattern(mask_key key, std::size_t offset) noexcept {
    const mask_key rotated{key[offset % 4], key[(offset + 1) % 4], key[(offset + 2) % 4], key[(offset + 3) % 4]};
    return std::bit_cast<std::uint32_t>(rotated);
}

#if defined(__AVX2__)
inline constexpr std::size_t mask_vector_width = 32;
#elif defined(__SSE2__) || defined(_M_X64)
inline constexpr std::size_t mask_vector_width = 16;
#else
inline constexpr std::size_t mask_vector_width = 8;
#endif

// Serves both entry points: in place (dst == src) each block is loaded before it is stored.
inline void mask_into(std::byte* dst, const std::byte* src, std::size_t size, mask_key key,
                      std::size_t offset) noexcept {
    constexpr std::size_t width = mask_vector_width;
    std::size_t i = 0;
    // A received payload starts wherever its frame header ended, and stores that split cache lines cost
    // in-place unmasking up to half its bandwidth. Small payloads skip this: for them the byte loop up to
    // the next vector boundary would cost more than the split stores it saves.
    if (size >= 8 * width) {
        const std::size_t head = (width - reinterpret_cast<std::uintptr_t>(dst) % width) % width;
        for (; i < head; ++i) dst[i] = src[i] ^ std::byte{key[(offset + i) % 4]};
    }
    // From here every block is a multiple of four bytes long, so the pattern stays lined up until the
    // last few bytes.
    const std::uint32_t pattern = mask_pattern(key, offset + i);
#if defined(__AVX2__)
    const __m256i wide = _mm256_set1_epi32(static_cast<int>(pattern));
    const auto masked = [&](std::size_t at) {
        return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + at)), wide);
    };
    const auto store = [&](std::size_t at, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + at), v); };
#elif defined(__SSE2__) || defined(_M_X64)
    const __m128i wide = _mm_set1_epi32(static_cast<int>(pattern));
    const auto masked = [&](std::size_t at) {
        return _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + at)), wide);
    };
    const auto store = [&](std::size_t at, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + at), v); };
#endif
#if defined(__AVX2__) || defined(__SSE2__) || defined(_M_X64)
    // Four independent vectors per iteration keep both load ports busy.
    for (; size - i >= 4 * width; i += 4 * width) {
        const auto a = masked(i), b = masked(i + width), c = masked(i + 2 * width), d = masked(i + 3 * width);
        store(i, a);
        store(i + width, b);
        store(i + 2 * width, c);
        store(i + 3 * width, d);
    }
    for (; size - i >= width; i += width) store(i, masked(i));
#endif
    // The whole payload on other architectures; on x86 what is left after the last full vector.
    const std::uint64_t pattern64 = (std::uint64_t{pattern} << 32) | pattern;
    for (; size - i >= 8; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, src + i, 8);
        word ^= pattern64;
        std::memcpy(dst + i, &word, 8);
    }
    for (; i < size; ++i) dst[i] = src[i] ^ std::byte{key[(offset + i) % 4]};
}

}  // namespace detail

// XOR-masks (or unmasks) data in place per RFC 6455 §5.3. `offset` is the position of data[0] within the
// frame payload, so a payload processed in several pieces (across read boundaries) is masked correctly.
inline void apply_mask(std::byte* data, std::size_t size, mask_key key, std::size_t offset = 0) noexcept {
    detail::mask_into(data, data, size, key, offset);
}

// Writes src XOR mask into dst (the send path of a client: copy and mask in one pass).
// dst and src do not overlap.
inline void copy_masked(std::byte* dst, const std::byte* src, std::size_t size, mask_key key,
                        std::size_t offset = 0) noexcept {
    detail::mask_into(dst, src, size, key, offset);
}

}  // namespace duplex::ws
