// ASCII helpers of the HTTP layer: case folding for the case-insensitive tokens (header names, list
// tokens, query names) and hex digits for percent-decoding.
#pragma once

#include <cstddef>
#include <string_view>

namespace duplex::http::detail {

inline constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Header names and list tokens are ASCII and compared without regard to case (RFC 9110 §5.1).
inline constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

// A hex digit's value, -1 for another character (percent-decoding).
inline constexpr int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace duplex::http::detail
