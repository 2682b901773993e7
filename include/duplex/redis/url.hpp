// duplex::redis::parse_url — where a Redis server is and how to log in, from the URL form every Redis
// client reads (IANA's redis and rediss schemes):
//
//   redis://[[user]:password@]host[:port][/db]      plain TCP
//   rediss://[[user]:password@]host[:port][/db]     TLS (duplex::tls)
//
// Without a user, AUTH sends the password alone (requirepass, or the ACL "default" user); with one,
// AUTH user password (Redis 6 ACLs). User and password may be percent-encoded. The port defaults to
// 6379, the database to 0 (no SELECT is sent). IPv6 addresses go in brackets: redis://[::1]:6379.
#pragma once

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace duplex::redis {

struct endpoint {
    bool tls = false;
    std::string host;
    std::uint16_t port = 6379;
    std::string user;      // empty: AUTH with the password alone
    std::string password;  // empty: no AUTH
    int database = 0;

    // host:port, for messages (never the password).
    std::string address() const {
        const bool v6 = host.find(':') != std::string::npos;
        return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
    // The URL without its password, for messages.
    std::string redacted() const {
        std::string url = tls ? "rediss://" : "redis://";
        if (!user.empty() || !password.empty()) url += user + (password.empty() ? "@" : ":***@");
        url += address();
        if (database != 0) url += "/" + std::to_string(database);
        return url;
    }
};

namespace detail {

inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

inline std::string percent_decoded(std::string_view text, std::string_view url) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        const int high = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (high < 0 || low < 0) throw std::invalid_argument("bad percent-encoding in the Redis URL " + std::string(url));
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return out;
}

template <class Int>
bool parse_number(std::string_view text, Int& value) {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace detail

// Throws std::invalid_argument, naming what is wrong (the message never repeats the password).
inline endpoint parse_url(std::string_view url) {
    const auto fail = [&](const std::string& why) -> endpoint {
        const auto at = url.rfind('@');
        const auto scheme_end = url.find("://");
        std::string shown(url);
        if (at != std::string_view::npos && scheme_end != std::string_view::npos && at > scheme_end)
            shown = std::string(url.substr(0, scheme_end + 3)) + "…@" + std::string(url.substr(at + 1));
        throw std::invalid_argument("Redis URL " + shown + ": " + why);
    };
    endpoint e;
    std::string_view rest;
    if (url.starts_with("redis://")) {
        rest = url.substr(8);
    } else if (url.starts_with("rediss://")) {
        e.tls = true;
        rest = url.substr(9);
    } else {
        return fail("expected redis://[user:password@]host:port[/db] or rediss://…");
    }
    if (rest.find_first_of("?#") != std::string_view::npos) return fail("query and fragment are not supported");
    std::string_view path;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        path = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const auto userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        const auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            e.user = detail::percent_decoded(userinfo, url);  // redis://user@host: an ACL user without a password
        } else {
            e.user = detail::percent_decoded(userinfo.substr(0, colon), url);
            e.password = detail::percent_decoded(userinfo.substr(colon + 1), url);
        }
        if (!e.user.empty() && e.password.empty()) return fail("an ACL user needs a password");
    }
    std::string_view port;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) return fail("unterminated [IPv6 address]");
        e.host = std::string(rest.substr(1, close - 1));
        const auto after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':') return fail("expected :port after the IPv6 address");
            port = after.substr(1);
        }
    } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        e.host = std::string(rest.substr(0, colon));
        port = rest.substr(colon + 1);
    } else {
        e.host = std::string(rest);
    }
    if (e.host.empty()) return fail("no host");
    if (!port.empty() || rest.ends_with(':')) {
        unsigned value = 0;
        if (!detail::parse_number(port, value) || value == 0 || value > 65535) return fail("bad port");
        e.port = static_cast<std::uint16_t>(value);
    }
    if (!path.empty() && (!detail::parse_number(path, e.database) || e.database < 0))
        return fail("the path must be a database number");
    return e;
}

}  // namespace duplex::redis
