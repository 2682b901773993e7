// The parts of a ws:// or wss:// URI that a client connection needs (RFC 6455 §3), and the
// host[:port] authority that proxy URIs share with it.
#pragma once

#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duplex::client {

namespace detail {
// A host as it stands in an authority: IPv6 literals in brackets.
inline std::string bracketed_host(std::string_view host) {
    return host.find(':') != std::string_view::npos ? "[" + std::string(host) + "]" : std::string(host);
}
}  // namespace detail

struct websocket_uri {
    bool secure = false;       // wss://
    std::string host;          // without brackets for IPv6 literals
    std::uint16_t port = 0;    // the explicit port, or 80 / 443
    std::string target = "/";  // path and query, what goes on the request line
    bool default_port = true;

    // The Host header: the port only when it is not the scheme's default, IPv6 literals in brackets.
    std::string host_header() const {
        std::string h = detail::bracketed_host(host);
        if (!default_port) h += ":" + std::to_string(port);
        return h;
    }
};

namespace detail {

inline bool starts_with_nocase(std::string_view text, std::string_view lower_case_prefix) {
    if (text.size() < lower_case_prefix.size()) return false;
    for (std::size_t i = 0; i < lower_case_prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(text[i])) != lower_case_prefix[i]) return false;
    return true;
}

struct host_and_port {
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
    bool explicit_port = false;
};

// host, host:port, [v6] or [v6]:port; the port from 1 to 65535. nullopt for anything else.
inline std::optional<host_and_port> parse_authority(std::string_view authority, std::uint16_t default_port) {
    host_and_port out;
    out.port = default_port;
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        out.host = std::string(authority.substr(1, close - 1));
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port_text = rest.substr(1);
        }
    } else {
        const auto colon = authority.rfind(':');
        out.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (out.host.empty()) return std::nullopt;
    if (!port_text.empty()) {
        unsigned port = 0;
        for (char c : port_text) {
            if (c < '0' || c > '9') return std::nullopt;
            port = port * 10 + static_cast<unsigned>(c - '0');
            if (port > 65535) return std::nullopt;
        }
        if (port == 0) return std::nullopt;
        out.port = static_cast<std::uint16_t>(port);
        out.explicit_port = true;
    }
    return out;
}

}  // namespace detail

// Parses ws://host[:port][/path][?query] and wss://…; a fragment is not allowed (§3). Returns nullopt
// for anything else.
inline std::optional<websocket_uri> parse_websocket_uri(std::string_view uri) {
    websocket_uri out;
    if (detail::starts_with_nocase(uri, "ws://")) {
        uri.remove_prefix(5);
        out.port = 80;
    } else if (detail::starts_with_nocase(uri, "wss://")) {
        uri.remove_prefix(6);
        out.secure = true;
        out.port = 443;
    } else {
        return std::nullopt;
    }
    if (uri.find('#') != std::string_view::npos) return std::nullopt;
    const auto authority_end = uri.find_first_of("/?");
    const auto authority = uri.substr(0, authority_end);
    if (authority_end != std::string_view::npos) {
        out.target = std::string(uri.substr(authority_end));
        if (out.target.front() == '?') out.target.insert(out.target.begin(), '/');
    }
    if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no userinfo in WebSocket URIs
    auto host_port = detail::parse_authority(authority, out.port);
    if (!host_port) return std::nullopt;
    out.host = std::move(host_port->host);
    out.default_port = !host_port->explicit_port || host_port->port == out.port;
    out.port = host_port->port;
    return out;
}

}  // namespace duplex::client
