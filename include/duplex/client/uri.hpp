// The parts of a ws:// or wss:// URI that a client connection needs (RFC 6455 §3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace duplex::client {

struct websocket_uri {
    bool secure = false;       // wss://
    std::string host;          // without brackets for IPv6 literals
    std::uint16_t port = 0;    // the explicit port, or 80 / 443
    std::string target = "/";  // path and query, what goes on the request line
    bool default_port = true;

    // The Host header: the port only when it is not the scheme's default, IPv6 literals in brackets.
    std::string host_header() const {
        std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        if (!default_port) h += ":" + std::to_string(port);
        return h;
    }
};

// Parses ws://host[:port][/path][?query] and wss://…; a fragment is not allowed (§3). Returns nullopt
// for anything else.
inline std::optional<websocket_uri> parse_websocket_uri(std::string_view uri) {
    websocket_uri out;
    auto starts_with_nocase = [&](std::string_view prefix) {
        if (uri.size() < prefix.size()) return false;
        for (std::size_t i = 0; i < prefix.size(); ++i)
            if (std::tolower(static_cast<unsigned char>(uri[i])) != prefix[i]) return false;
        return true;
    };
    if (starts_with_nocase("ws://")) {
        uri.remove_prefix(5);
        out.port = 80;
    } else if (starts_with_nocase("wss://")) {
        uri.remove_prefix(6);
        out.secure = true;
        out.port = 443;
    } else {
        return std::nullopt;
    }
    if (uri.find('#') != std::string_view::npos) return std::nullopt;
    const auto authority_end = uri.find_first_of("/?");
    auto authority = uri.substr(0, authority_end);
    if (authority_end != std::string_view::npos) {
        out.target = std::string(uri.substr(authority_end));
        if (out.target.front() == '?') out.target.insert(out.target.begin(), '/');
    }
    if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no userinfo in WebSocket URIs
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
        out.default_port = port == out.port;
        out.port = static_cast<std::uint16_t>(port);
    }
    return out;
}

}  // namespace duplex::client
