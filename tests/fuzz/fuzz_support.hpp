// What the fuzz targets share: a reader that takes parameters off the front of the input, a property
// check that aborts (the fuzzer's crash signal), and an independent reference UTF-8 checker.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string_view>

namespace fuzz {

// A broken property is a crash: libFuzzer saves the input, the corpus replay fails.
[[noreturn]] inline void property_failed(const char* what, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
    std::fflush(stderr);
    std::abort();
}

#define FUZZ_CHECK(condition) \
    ((condition) ? static_cast<void>(0) : ::fuzz::property_failed(#condition, __FILE__, __LINE__))

// Takes parameters off the front of the input; past its end every parameter reads as zero.
class input_reader {
public:
    input_reader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

    std::uint8_t byte() noexcept { return position_ < size_ ? data_[position_++] : 0; }

    std::uint16_t u16() noexcept {
        const auto high = byte();
        return static_cast<std::uint16_t>((high << 8) | byte());
    }

    // The next `n` bytes (fewer at the end of the input).
    std::span<const std::uint8_t> bytes(std::size_t n) noexcept {
        n = std::min(n, size_ - position_);
        std::span<const std::uint8_t> out(data_ + position_, n);
        position_ += n;
        return out;
    }

    std::span<const std::uint8_t> rest() noexcept { return bytes(size_ - position_); }
    std::size_t remaining() const noexcept { return size_ - position_; }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t position_ = 0;
};

inline std::string_view as_text(std::span<const std::uint8_t> bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

inline const std::byte* as_bytes(const std::uint8_t* data) noexcept { return reinterpret_cast<const std::byte*>(data); }

// Reference UTF-8 checker (RFC 3629), written differently from the library's DFA: it decodes code
// points arithmetically and, after each byte of a sequence, asks whether any completion of the bits
// seen so far could still be a valid code point for that sequence length. The first byte for which
// none can is the fail-fast position.
struct utf8_verdict {
    std::optional<std::size_t> failure;  // index of the first byte that makes the input impossible
    bool complete = true;                // no failure, and the input ends on a code point boundary
};

inline utf8_verdict reference_utf8(std::span<const std::uint8_t> s) noexcept {
    constexpr std::uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};  // by sequence length
    const auto possible = [&](std::uint32_t prefix, int length, int seen) {
        const int missing_bits = 6 * (length - seen);
        const std::uint32_t low = prefix << missing_bits;
        const std::uint32_t high = low | ((std::uint32_t{1} << missing_bits) - 1);
        const std::uint32_t from = std::max(low, smallest[length]);
        const std::uint32_t to = std::min<std::uint32_t>(high, 0x10FFFF);
        if (from > to) return false;
        return !(from >= 0xD800 && to <= 0xDFFF);  // all of it surrogates
    };
    std::size_t i = 0;
    while (i < s.size()) {
        const std::uint8_t lead = s[i];
        int length;
        std::uint32_t prefix;
        if (lead < 0x80) { length = 1; prefix = lead; }
        else if ((lead & 0xE0) == 0xC0) { length = 2; prefix = lead & 0x1F; }
        else if ((lead & 0xF0) == 0xE0) { length = 3; prefix = lead & 0x0F; }
        else if ((lead & 0xF8) == 0xF0) { length = 4; prefix = lead & 0x07; }
        else return {i, false};
        if (!possible(prefix, length, 1)) return {i, false};
        for (int k = 1; k < length; ++k) {
            const std::size_t at = i + static_cast<std::size_t>(k);
            if (at == s.size()) return {std::nullopt, false};
            if ((s[at] & 0xC0) != 0x80) return {at, false};
            prefix = (prefix << 6) | (s[at] & 0x3F);
            if (!possible(prefix, length, k + 1)) return {at, false};
        }
        i += static_cast<std::size_t>(length);
    }
    return {std::nullopt, true};
}

inline bool reference_valid_utf8(std::string_view text) noexcept {
    return reference_utf8({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}).complete;
}

}  // namespace fuzz
