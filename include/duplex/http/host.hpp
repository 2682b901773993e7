// The Host header field of a request (RFC 9112 §3.2): a server answers 400 to an HTTP/1.1 request
// without one, and to any request with more than one or with one that is not a valid
// uri-host [":" port] (RFC 3986 §3.2.2).
#pragma once

#include <duplex/http/request.hpp>

#include <string_view>

namespace duplex::http {

namespace detail {

inline constexpr bool is_hex_digit(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// unreserved / sub-delims (RFC 3986 §2.2, §2.3): what a reg-name holds besides %XX escapes.
inline constexpr bool is_reg_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos;
}

inline constexpr bool is_port(std::string_view s) noexcept {
    for (const char c : s)
        if (c < '0' || c > '9') return false;
    return true;
}

}  // namespace detail

// Whether `value` is a valid Host field value: empty (a target without authority), an IP-literal in
// brackets, or an IPv4 address or registered name, each with an optional port.
inline constexpr bool is_valid_host(std::string_view value) noexcept {
    std::string_view host = value, port;
    if (value.starts_with('[')) {
        const auto close = value.find(']');
        if (close == std::string_view::npos || close == 1) return false;
        for (const char c : value.substr(1, close - 1))  // IPv6address, or IPvFuture ("v" 1*HEXDIG "." …)
            if (!detail::is_reg_name_char(c) && c != ':') return false;
        const auto rest = value.substr(close + 1);
        if (!rest.empty() && (rest.front() != ':' || !detail::is_port(rest.substr(1)))) return false;
        return true;
    }
    if (const auto colon = value.find(':'); colon != std::string_view::npos) {
        host = value.substr(0, colon);
        port = value.substr(colon + 1);
        if (!detail::is_port(port)) return false;
    }
    for (std::size_t i = 0; i < host.size(); ++i) {
        if (host[i] == '%') {
            if (i + 2 >= host.size() || !detail::is_hex_digit(host[i + 1]) || !detail::is_hex_digit(host[i + 2]))
                return false;
            i += 2;
        } else if (!detail::is_reg_name_char(host[i])) {
            return false;
        }
    }
    return true;
}

// Why a request's Host fields earn it a 400, or an empty view when they are fine.
inline std::string_view host_problem(const request& r) {
    const auto count = r.headers.count("Host");
    if (count > 1) return "more than one Host header";
    if (count == 0) return r.version_major == 1 && r.version_minor >= 1 ? "missing Host header" : "";
    return is_valid_host(*r.headers.get("Host")) ? "" : "invalid Host header";
}

}  // namespace duplex::http
