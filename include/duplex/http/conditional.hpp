// Conditional requests for files (RFC 9110 §8.8, §13): the validators a file is served with (a strong
// ETag from its size and modification time, Last-Modified), and what a request's If-None-Match,
// If-Modified-Since and If-Range make of them.
#pragma once

#include <duplex/http/date.hpp>
#include <duplex/http/request.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace duplex::http {

struct file_validators {
    std::string etag;           // strong: "<mtime s>.<mtime ns>-<size>", hexadecimal
    std::string last_modified;  // IMF-fixdate
    std::int64_t modified = 0;  // seconds since the epoch
};

inline file_validators make_file_validators(std::uint64_t size, std::int64_t modified_seconds,
                                            std::uint32_t modified_nanoseconds) {
    char etag[64];
    std::snprintf(etag, sizeof etag, "\"%llx.%x-%llx\"", static_cast<unsigned long long>(modified_seconds),
                  static_cast<unsigned>(modified_nanoseconds), static_cast<unsigned long long>(size));
    return {etag, format_http_date(modified_seconds), modified_seconds};
}

namespace detail {

inline std::string_view opaque_tag(std::string_view entity_tag) noexcept {
    return entity_tag.starts_with("W/") ? entity_tag.substr(2) : entity_tag;
}

}  // namespace detail

// Whether an If-None-Match field value names `etag` (weak comparison, RFC 9110 §8.8.3.2) or is "*".
inline bool if_none_match_matches(std::string_view field, std::string_view etag) {
    return detail::for_each_list_element(field, [etag](std::string_view tag) {
        return tag == "*" || detail::opaque_tag(tag) == detail::opaque_tag(etag);
    });
}

// Whether a GET or HEAD of a file with these validators is answered 304 Not Modified (RFC 9110 §13.2.2):
// If-None-Match decides when present; otherwise If-Modified-Since, when it is a valid date that the
// file is not newer than.
inline bool is_not_modified(const request& r, const file_validators& file) {
    if (r.method != "GET" && r.method != "HEAD") return false;
    if (const auto none_match = r.headers.get("If-None-Match")) return if_none_match_matches(*none_match, file.etag);
    const auto since = r.headers.get("If-Modified-Since");
    if (!since || r.headers.count("If-Modified-Since") != 1) return false;
    const auto date = parse_http_date(*since);
    return date && file.modified <= *date;
}

// Whether the request's Range applies (RFC 9110 §13.1.5): always without If-Range; with it, only when it
// names the file's ETag (strong comparison) or its exact Last-Modified date.
inline bool range_applies(const request& r, const file_validators& file) {
    const auto if_range = r.headers.get("If-Range");
    if (!if_range) return true;
    if (if_range->starts_with("\"") || if_range->starts_with("W/")) return *if_range == file.etag;
    const auto date = parse_http_date(*if_range);
    return date && *date == file.modified;
}

}  // namespace duplex::http
