// Proxies a client connects through, sans-I/O: proxy URIs (http://, socks5://, socks5h://, with
// credentials), and the choice of a proxy from the environment (https_proxy, http_proxy, all_proxy,
// no_proxy), as .NET's default proxy and curl make it. The handshakes are in http_connect.hpp and
// socks5.hpp, the I/O in tunnel.hpp.
#pragma once

#include <duplex/client/uri.hpp>
#include <duplex/http/request.hpp>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duplex::client {

enum class proxy_kind {
    http_connect,  // http://: an HTTP CONNECT tunnel (RFC 9110 §9.3.6), Basic authentication
    socks5,        // socks5://: SOCKS5 (RFC 1928) to an address resolved here, RFC 1929 username/password
    socks5h,       // socks5h://: SOCKS5 with the host name resolved by the proxy
};

enum class proxy_handshake_status { need_more, done, failed };

// A proxy's handshake without I/O (http_connect_handshake, socks5_handshake): what to send, what the
// proxy's answers mean. One interface, so that the I/O that drives them (tunnel.hpp) is compiled once.
class proxy_handshake {
public:
    virtual ~proxy_handshake() = default;
    // What to send to the proxy now; empty while an answer is awaited.
    virtual std::string take_output() = 0;
    // Consumes the proxy's answers and returns the bytes used: never past the end of the handshake, so
    // that what follows is left to the caller.
    virtual std::size_t feed(std::string_view bytes) = 0;

    proxy_handshake_status status() const noexcept { return status_; }
    // Why it failed (a proxy_errc), once status() is failed.
    std::error_code error() const noexcept { return error_; }
    // The failure in words, between the proxy's name and the error's message: "refused CONNECT to
    // example.com:443 (407 Proxy Authentication Required)".
    const std::string& detail() const noexcept { return detail_; }
    // host:port of the server behind the proxy, as messages show it.
    const std::string& target() const noexcept { return target_; }

protected:
    explicit proxy_handshake(std::string target) : target_(std::move(target)) {}

    void succeed() noexcept { status_ = proxy_handshake_status::done; }
    void fail(std::error_code why, std::string detail) {
        status_ = proxy_handshake_status::failed;
        error_ = why;
        detail_ = std::move(detail);
    }

private:
    std::string target_;
    proxy_handshake_status status_ = proxy_handshake_status::need_more;
    std::error_code error_;
    std::string detail_;
};

struct proxy_uri {
    proxy_kind kind = proxy_kind::http_connect;
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
    // Percent-decoded from the URI's userinfo; credentials are sent when username is not empty.
    std::string username;
    std::string password;

    bool has_credentials() const noexcept { return !username.empty(); }
    // host:port as messages show it ([v6]:port), never with the credentials.
    std::string authority() const { return detail::bracketed_host(host) + ":" + std::to_string(port); }
};

namespace detail {

// RFC 3986 §2.1; nullopt for a '%' not followed by two hex digits.
inline std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out.push_back(text[i]);
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        const int high = http::detail::hex_value(text[i + 1]), low = http::detail::hex_value(text[i + 2]);
        if (high < 0 || low < 0) return std::nullopt;
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
    }
    return out;
}

}  // namespace detail

// Parses scheme://[user[:password]@]host[:port][/] with scheme http (port 80 by default), socks5 or
// socks5h (port 1080 by default); no scheme means http://, as in curl and .NET. nullopt for anything
// else, https:// proxies (TLS to the proxy itself) included.
inline std::optional<proxy_uri> parse_proxy_uri(std::string_view uri) {
    proxy_uri out;
    std::uint16_t default_port = 80;
    if (const auto scheme_end = uri.find("://"); scheme_end != std::string_view::npos) {
        const auto scheme = uri.substr(0, scheme_end + 3);
        if (detail::starts_with_nocase(scheme, "http://")) {
            out.kind = proxy_kind::http_connect;
        } else if (detail::starts_with_nocase(scheme, "socks5://")) {
            out.kind = proxy_kind::socks5;
            default_port = 1080;
        } else if (detail::starts_with_nocase(scheme, "socks5h://")) {
            out.kind = proxy_kind::socks5h;
            default_port = 1080;
        } else {
            return std::nullopt;
        }
        uri.remove_prefix(scheme_end + 3);
    }
    if (uri.ends_with('/')) uri.remove_suffix(1);
    if (uri.find_first_of("/?#") != std::string_view::npos) return std::nullopt;
    if (const auto at = uri.rfind('@'); at != std::string_view::npos) {
        const auto userinfo = uri.substr(0, at);
        const auto colon = userinfo.find(':');
        auto username = detail::percent_decode(userinfo.substr(0, colon));
        auto password = detail::percent_decode(colon == std::string_view::npos ? "" : userinfo.substr(colon + 1));
        if (!username || !password || username->empty()) return std::nullopt;
        out.username = std::move(*username);
        out.password = std::move(*password);
        uri.remove_prefix(at + 1);
    }
    auto host_port = detail::parse_authority(uri, default_port);
    if (!host_port) return std::nullopt;
    out.host = std::move(host_port->host);
    out.port = host_port->port;
    return out;
}

// True when no_proxy (comma-separated: "*", host names, which also cover their subdomains, with or
// without a leading dot, and IP addresses; compared case-insensitively, ports and brackets ignored)
// says that `host` is reached directly.
inline bool bypasses_proxy(std::string_view no_proxy, std::string_view host) {
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    return http::detail::for_each_list_element(no_proxy, [host](std::string_view entry) {
        if (entry == "*") return true;
        if (entry.starts_with('[')) {
            entry = entry.substr(1, entry.find(']') - 1);
        } else if (entry.find(':') == entry.rfind(':')) {
            entry = entry.substr(0, entry.find(':'));  // host:port (an IPv6 entry has several colons)
        }
        if (entry.starts_with('.')) entry.remove_prefix(1);
        if (entry.empty()) return false;
        if (http::detail::iequals(host, entry)) return true;
        return host.size() > entry.size() && host[host.size() - entry.size() - 1] == '.' &&
               http::detail::iequals(host.substr(host.size() - entry.size()), entry);
    });
}

using environment_lookup = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (std::getenv).
inline std::optional<std::string> process_environment(std::string_view name) {
    const char* value = std::getenv(std::string(name).c_str());
    if (!value || !*value) return std::nullopt;
    return std::string(value);
}

// The proxy URI the environment names for `target`, or empty for a direct connection: https_proxy for
// wss:// and http_proxy for ws:// (a WebSocket is HTTP until it upgrades), else all_proxy; none when
// no_proxy covers the host. Lower-case names first, then upper-case ones, except HTTP_PROXY while
// GATEWAY_INTERFACE is set (a CGI program, where a request's "Proxy:" header would become HTTP_PROXY;
// .NET and curl ignore it there too).
inline std::string proxy_from_environment(const websocket_uri& target,
                                          const environment_lookup& lookup = process_environment) {
    const auto variable = [&](std::string_view lower, std::string_view upper) -> std::optional<std::string> {
        if (auto value = lookup(lower)) return value;
        if (upper == "HTTP_PROXY" && lookup("GATEWAY_INTERFACE")) return std::nullopt;
        return lookup(upper);
    };
    if (const auto no_proxy = variable("no_proxy", "NO_PROXY"); no_proxy && bypasses_proxy(*no_proxy, target.host))
        return {};
    auto chosen = target.secure ? variable("https_proxy", "HTTPS_PROXY") : variable("http_proxy", "HTTP_PROXY");
    if (!chosen) chosen = variable("all_proxy", "ALL_PROXY");
    return chosen.value_or(std::string());
}

}  // namespace duplex::client
