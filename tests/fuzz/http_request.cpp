// request_parser on arbitrary bytes, with limits and chunk sizes taken from the input.
#include <duplex/http/parser.hpp>

#include "http_head.hpp"

using namespace duplex::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::input_reader in(data, size);
    const auto limits_byte = in.byte();
    const auto chunk_byte = in.byte();
    const auto text = fuzz::as_text(in.rest());
    request_parser parser(fuzz::limits_from(limits_byte));
    const auto same = [](const request& a, const request& b) {
        return a.method == b.method && a.target == b.target && a.path == b.path && a.query.raw() == b.query.raw() &&
               a.version_major == b.version_major && a.version_minor == b.version_minor &&
               fuzz::same_headers(a.headers, b.headers);
    };
    fuzz::check_head_parser(parser, text, limits_byte, chunk_byte, same);
    if (parser.status() == parse_status::done) {
        const auto& r = parser.get();
        const auto limits = parser.limits();
        FUZZ_CHECK(detail::is_token(r.method));
        FUZZ_CHECK(!r.target.empty() && r.target.size() <= limits.max_target_bytes);
        for (char c : r.target) FUZZ_CHECK(detail::in(detail::target_chars, c));
        const auto question = r.target.find('?');
        const auto before_query = r.target.substr(0, question);
        FUZZ_CHECK(r.path == path_of_target(before_query));
        // The target itself, or (absolute-form) the path at its end, or "/".
        FUZZ_CHECK(r.path == before_query || r.path == "/" ||
                   (r.path.starts_with('/') && before_query.ends_with(r.path)));
        FUZZ_CHECK(r.query.raw() == (question == std::string::npos ? std::string() : r.target.substr(question + 1)));
    } else if (parser.status() == parse_status::error && parser.error_status() == 414) {
        FUZZ_CHECK(parser.get().target.size() > parser.limits().max_target_bytes);
    }
    return 0;
}
