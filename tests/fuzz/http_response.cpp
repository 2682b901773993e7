// response_parser on arbitrary bytes, with limits and chunk sizes taken from the input.
#include <duplex/http/parser.hpp>

#include "http_head.hpp"

using namespace duplex::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto limits_byte = in.byte();
    const auto chunk_byte = in.byte();
    const auto text = fuzz::as_text(in.rest());
    response_parser parser(fuzz::limits_from(limits_byte));
    const auto same = [](const response& a, const response& b) {
        return a.status_code == b.status_code && a.reason == b.reason && a.version_major == b.version_major &&
               a.version_minor == b.version_minor && fuzz::same_headers(a.headers, b.headers);
    };
    fuzz::check_head_parser(parser, text, limits_byte, chunk_byte, same);
    if (parser.status() == parse_status::done) {
        const auto& r = parser.get();
        FUZZ_CHECK(r.status_code >= 100 && r.status_code <= 999);
        for (char c : r.reason) FUZZ_CHECK(detail::in(detail::field_value_chars, c));
    }
    return 0;
}
