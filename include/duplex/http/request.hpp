// duplex — HTTP/1.1 message heads as plain values: header fields, requests, responses.
#pragma once

#include <duplex/http/detail/ascii.hpp>
#include <duplex/http/query.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::http {

namespace detail {

inline constexpr bool is_optional_whitespace(char c) noexcept { return c == ' ' || c == '\t'; }

inline constexpr std::string_view trim_optional_whitespace(std::string_view s) noexcept {
    while (!s.empty() && is_optional_whitespace(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_optional_whitespace(s.back())) s.remove_suffix(1);
    return s;
}

// Calls f(element) for every trimmed, non-empty element of a comma-separated field value
// (RFC 9110 §5.6.1: empty elements are ignored). Commas inside a quoted-string do not split, so
// parameter values such as `ext; p="a,b"` stay whole. Stops early when f returns true.
template <class F>
constexpr bool for_each_list_element(std::string_view value, F&& f) {
    bool in_quotes = false;
    bool escaped = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= value.size(); ++i) {
        if (i < value.size()) {
            const char c = value[i];
            if (escaped) { escaped = false; continue; }
            if (in_quotes) {
                if (c == '\\') escaped = true;
                else if (c == '"') in_quotes = false;
                continue;
            }
            if (c == '"') { in_quotes = true; continue; }
            if (c != ',') continue;
        }
        const auto element = trim_optional_whitespace(value.substr(start, i - start));
        if (!element.empty() && f(element)) return true;
        start = i + 1;
    }
    return false;
}

template <class Message>
class head_parser;

}  // namespace detail

struct header {
    std::string name;
    std::string value;
};

// The header fields of one message, in the order received. Lookups compare names case-insensitively;
// a linear scan beats any index for the few dozen fields a head carries.
class headers {
public:
    using const_iterator = std::vector<header>::const_iterator;

    void add(std::string name, std::string value) { fields_.push_back({std::move(name), std::move(value)}); }

    // Replaces every occurrence of `name` with a single field, or adds it.
    void set(std::string_view name, std::string value) {
        erase(name);
        fields_.push_back({std::string(name), std::move(value)});
    }

    // Removes every occurrence of `name`; returns how many were removed.
    std::size_t erase(std::string_view name) {
        return std::erase_if(fields_, [name](const header& h) { return detail::iequals(h.name, name); });
    }

    void clear() noexcept { fields_.clear(); }

    // First value of a header, name compared case-insensitively.
    std::optional<std::string_view> get(std::string_view name) const noexcept {
        for (const auto& h : fields_)
            if (detail::iequals(h.name, name)) return std::string_view(h.value);
        return std::nullopt;
    }

    bool contains(std::string_view name) const noexcept { return get(name).has_value(); }

    // How many field lines carry `name` (fields such as Host or Sec-WebSocket-Key must appear once).
    std::size_t count(std::string_view name) const noexcept {
        std::size_t n = 0;
        for (const auto& h : fields_)
            if (detail::iequals(h.name, name)) ++n;
        return n;
    }

    // True when a comma-separated header (all occurrences of it, e.g. Connection, Upgrade) lists `token`,
    // compared case-insensitively, with optional whitespace around elements.
    bool has_token(std::string_view name, std::string_view token) const {
        for (const auto& h : fields_) {
            if (!detail::iequals(h.name, name)) continue;
            if (detail::for_each_list_element(h.value, [token](std::string_view e) { return detail::iequals(e, token); }))
                return true;
        }
        return false;
    }

    // Every comma-separated element of every occurrence of the header, trimmed, empty elements skipped
    // (e.g. Sec-WebSocket-Protocol). The views point into this object.
    std::vector<std::string_view> tokens(std::string_view name) const {
        std::vector<std::string_view> out;
        for (const auto& h : fields_) {
            if (!detail::iequals(h.name, name)) continue;
            detail::for_each_list_element(h.value, [&out](std::string_view e) {
                out.push_back(e);
                return false;
            });
        }
        return out;
    }

    const_iterator begin() const noexcept { return fields_.begin(); }
    const_iterator end() const noexcept { return fields_.end(); }
    std::size_t size() const noexcept { return fields_.size(); }
    bool empty() const noexcept { return fields_.empty(); }

private:
    template <class Message>
    friend class detail::head_parser;

    std::vector<header> fields_;
};

struct request {
    std::string method;
    std::string target;  // as sent: origin-form "/a/b?x=1", or absolute-form, authority-form, "*"
    std::string path;    // target before the first '?', not percent-decoded (see path_of_target)
    http::query_collection query;  // target after the first '?': raw() as sent, query("name") decoded
    int version_major = 1;
    int version_minor = 1;
    http::headers headers;
    // HTTP/2's :protocol pseudo-header: the protocol an extended CONNECT asks for (RFC 8441 §4,
    // "websocket"); empty otherwise.
    std::string protocol;
};

// The path a request target names, given the target before its query: origin-form as it is; absolute-form
// ("http://example.com:8080/a/b", which a server must accept, RFC 9112 §3.2.2) by its path, "/" when it
// has none; authority-form ("example.com:443") and "*" as they are.
inline constexpr std::string_view path_of_target(std::string_view before_query) noexcept {
    if (before_query.starts_with('/')) return before_query;
    const auto scheme_end = before_query.find("://");
    if (scheme_end == std::string_view::npos || scheme_end == 0) return before_query;
    const auto is_scheme_char = [](char c) {  // ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-' ||
               c == '.';
    };
    for (const char c : before_query.substr(0, scheme_end))
        if (!is_scheme_char(c)) return before_query;
    if (!((before_query[0] >= 'a' && before_query[0] <= 'z') || (before_query[0] >= 'A' && before_query[0] <= 'Z')))
        return before_query;
    const auto authority_and_path = before_query.substr(scheme_end + 3);
    const auto slash = authority_and_path.find('/');
    return slash == std::string_view::npos ? std::string_view("/") : authority_and_path.substr(slash);
}

struct response {
    int status_code = 0;
    std::string reason;
    int version_major = 1;
    int version_minor = 1;
    http::headers headers;
};

}  // namespace duplex::http
