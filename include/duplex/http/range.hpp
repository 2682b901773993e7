// Byte ranges of a request (RFC 9110 §14.2): the one range of a `Range: bytes=…` field that a server
// serves with 206, or why it does not. Several ranges are not served as multipart/byteranges: such a
// request gets the whole representation (a server may ignore Range).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>

namespace duplex::http {

struct byte_range_request {
    enum class outcome {
        whole,          // no Range, one we ignore (another unit, malformed, several ranges): 200 with everything
        partial,        // one satisfiable range: 206 with bytes [first, last]
        unsatisfiable,  // a range that starts past the end (or an empty suffix): 416
    };
    outcome result = outcome::whole;
    std::uint64_t first = 0, last = 0;  // partial: inclusive, within the representation

    std::uint64_t size() const noexcept { return last - first + 1; }
};

namespace detail {

inline bool parse_decimal(std::string_view text, std::uint64_t& out) noexcept {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
}

inline std::string_view trim_spaces(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace detail

// What a `Range` field value asks of a representation of `size` bytes.
inline byte_range_request parse_byte_range(std::string_view value, std::uint64_t size) noexcept {
    using outcome = byte_range_request::outcome;
    value = detail::trim_spaces(value);
    constexpr std::string_view unit = "bytes=";
    if (value.size() < unit.size()) return {};
    for (std::size_t i = 0; i < unit.size(); ++i)  // the range unit is case-insensitive
        if ((value[i] | (unit[i] == '=' ? 0 : 0x20)) != unit[i]) return {};
    const auto spec = detail::trim_spaces(value.substr(unit.size()));
    if (spec.find(',') != std::string_view::npos) return {};
    const auto dash = spec.find('-');
    if (dash == std::string_view::npos) return {};
    const auto first_text = detail::trim_spaces(spec.substr(0, dash));
    const auto last_text = detail::trim_spaces(spec.substr(dash + 1));
    std::uint64_t first = 0, last = 0;
    if (first_text.empty()) {  // suffix: the last N bytes
        if (!detail::parse_decimal(last_text, last)) return {};
        if (last == 0 || size == 0) return {outcome::unsatisfiable};
        return {outcome::partial, size - std::min(last, size), size - 1};
    }
    if (!detail::parse_decimal(first_text, first)) return {};
    if (last_text.empty()) {
        last = size == 0 ? 0 : size - 1;
    } else if (!detail::parse_decimal(last_text, last) || last < first) {
        return {};  // invalid: ignored (RFC 9110 §14.1.1)
    }
    if (first >= size) return {outcome::unsatisfiable};
    return {outcome::partial, first, std::min(last, size - 1)};
}

}  // namespace duplex::http
