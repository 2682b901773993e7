// The checks request_parser and response_parser share: fed in chunks sized from the input, a parser
// must consume every byte it is given until the head ends (the stream relies on it), never pass its
// limits, and reach the same result as when fed the whole input at once.
#pragma once

#include <duplex/http/parser.hpp>

#include "fuzz_support.hpp"

#include <string_view>
#include <vector>

namespace fuzz {

// Limits from one byte: the defaults or small ones that the input can cross.
inline duplex::http::parser_limits limits_from(std::uint8_t b) {
    constexpr std::size_t head[] = {16 * 1024, 64, 300, 1024};
    constexpr std::size_t target[] = {8 * 1024, 1, 16, 100};
    constexpr std::size_t count[] = {100, 0, 1, 5};
    return {head[b & 3], target[(b >> 2) & 3], count[(b >> 4) & 3], (b & 0x40) == 0};
}

// Chunk sizes from one byte: all at once, a fixed size, or alternating between 1 and a size.
inline std::vector<std::size_t> chunks_from(std::uint8_t b, std::size_t total) {
    std::vector<std::size_t> sizes;
    if (b == 0xFF) {
        sizes.push_back(total);
        return sizes;
    }
    const std::size_t base = (b & 0x3F) + 1u;
    for (std::size_t done = 0, i = 0; done < total; ++i) {
        const std::size_t n = std::min(total - done, (b & 0x40) && i % 2 == 0 ? std::size_t{1} : base);
        sizes.push_back(n);
        done += n;
    }
    return sizes;
}

inline bool same_headers(const duplex::http::headers& a, const duplex::http::headers& b) {
    if (a.size() != b.size()) return false;
    auto j = b.begin();
    for (const auto& field : a) {
        if (field.name != j->name || field.value != j->value) return false;
        ++j;
    }
    return true;
}

// Feeds `text` in the given chunks and checks the per-feed properties.
template <class Parser>
std::size_t feed_in_chunks(Parser& parser, std::string_view text, const std::vector<std::size_t>& chunks) {
    using duplex::http::parse_status;
    std::size_t consumed = 0, offset = 0;
    for (const auto n : chunks) {
        const bool was_open = parser.status() == parse_status::need_more;
        const auto used = parser.feed(text.substr(offset, n));
        FUZZ_CHECK(used <= n);
        if (!was_open) FUZZ_CHECK(used == 0);
        if (parser.status() == parse_status::need_more) FUZZ_CHECK(used == n);
        consumed += used;
        offset += n;
    }
    return consumed;
}

// Runs the shared checks; `chunked` is left holding the message for the caller's own checks.
template <class Parser, class SameMessage>
void check_head_parser(Parser& chunked, std::string_view text, std::uint8_t limits_byte, std::uint8_t chunk_byte,
                       SameMessage same_message) {
    using duplex::http::parse_status;
    const auto limits = limits_from(limits_byte);
    const auto consumed = feed_in_chunks(chunked, text, chunks_from(chunk_byte, text.size()));

    Parser whole(limits);
    const auto whole_consumed = whole.feed(text);
    FUZZ_CHECK(whole_consumed == consumed);
    FUZZ_CHECK(whole.status() == chunked.status());
    FUZZ_CHECK(whole.error_status() == chunked.error_status());
    FUZZ_CHECK(whole.error_message() == chunked.error_message());
    FUZZ_CHECK(whole.head_bytes() == chunked.head_bytes());

    FUZZ_CHECK(chunked.head_bytes() == consumed);
    FUZZ_CHECK(consumed <= limits.max_head_bytes);
    const auto& m = chunked.get();
    switch (chunked.status()) {
    case parse_status::need_more:
        FUZZ_CHECK(consumed == text.size());
        FUZZ_CHECK(chunked.error_status() == 0);
        break;
    case parse_status::done:
        FUZZ_CHECK(chunked.error_status() == 0);
        FUZZ_CHECK(m.headers.size() <= limits.max_header_count);
        FUZZ_CHECK(m.version_major == 1 && m.version_minor >= 0 && m.version_minor <= 9);
        FUZZ_CHECK(text[consumed - 1] == '\n');
        for (const auto& field : m.headers) {
            FUZZ_CHECK(duplex::http::detail::is_token(field.name));
            for (char c : field.value) FUZZ_CHECK(duplex::http::detail::in(duplex::http::detail::field_value_chars, c));
            if (!field.value.empty()) {
                FUZZ_CHECK(!duplex::http::detail::is_optional_whitespace(field.value.front()));
                FUZZ_CHECK(!duplex::http::detail::is_optional_whitespace(field.value.back()));
            }
        }
        FUZZ_CHECK(same_message(whole.get(), m));
        break;
    case parse_status::error: {
        const int s = chunked.error_status();
        FUZZ_CHECK(s == 400 || s == 414 || s == 431 || s == 505);
        FUZZ_CHECK(!chunked.error_message().empty());
        break;
    }
    }

    // A reset parser reuses its storage and parses the same input the same way.
    const auto status = chunked.status();
    chunked.reset();
    FUZZ_CHECK(chunked.status() == parse_status::need_more && chunked.head_bytes() == 0);
    FUZZ_CHECK(chunked.feed(text) == consumed);
    FUZZ_CHECK(chunked.status() == status);
    if (status == parse_status::done) FUZZ_CHECK(same_message(whole.get(), chunked.get()));
}

}  // namespace fuzz
