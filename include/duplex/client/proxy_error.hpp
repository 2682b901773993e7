// Why a connection through a proxy could not be set up, as std::error_code values: the proxy's refusal
// (an HTTP status other than 2xx, a SOCKS5 reply code) or an answer that is not the protocol at all.
// Failures to reach the proxy keep the operating system's codes. connect() throws them as
// duplex::websocket_error with a what() that names the proxy and the target.
#pragma once

#include <string>
#include <system_error>

namespace duplex::client {

enum class proxy_errc {
    // HTTP CONNECT
    authentication_required = 1,  // 407: the proxy wants (other) credentials
    connect_refused,              // any other status than 2xx
    // SOCKS5: the method selection and RFC 1929 authentication
    no_acceptable_method,     // the proxy accepts none of the authentication methods offered
    authentication_failed,    // the proxy refused the username and password
    // SOCKS5 reply codes 1–8 (RFC 1928 §6), in their order
    general_failure,          // 1
    connection_not_allowed,   // 2: by the proxy's rules
    network_unreachable,      // 3
    host_unreachable,         // 4
    connection_refused,       // 5: by the destination host
    ttl_expired,              // 6
    command_not_supported,    // 7
    address_type_not_supported,  // 8
    unknown_reply,            // another reply code
    // Either kind
    malformed_reply,          // the answer is not the protocol spoken (or sends data before the tunnel)
    closed,                   // the proxy closed the connection before the tunnel was set up
    timeout,                  // the proxy did not set the tunnel up within the handshake timeout
};

namespace detail {
class proxy_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.proxy"; }
    std::string message(int value) const override {
        switch (static_cast<proxy_errc>(value)) {
        case proxy_errc::authentication_required: return "the proxy requires authentication";
        case proxy_errc::connect_refused: return "the proxy refused the CONNECT request";
        case proxy_errc::no_acceptable_method: return "no acceptable authentication method";
        case proxy_errc::authentication_failed: return "username and password refused";
        case proxy_errc::general_failure: return "general SOCKS server failure";
        case proxy_errc::connection_not_allowed: return "connection not allowed by the proxy's rules";
        case proxy_errc::network_unreachable: return "network unreachable from the proxy";
        case proxy_errc::host_unreachable: return "host unreachable from the proxy";
        case proxy_errc::connection_refused: return "connection refused by the destination host";
        case proxy_errc::ttl_expired: return "TTL expired";
        case proxy_errc::command_not_supported: return "the proxy does not support the CONNECT command";
        case proxy_errc::address_type_not_supported: return "the proxy does not support the address type";
        case proxy_errc::unknown_reply: return "the proxy sent an unknown SOCKS5 reply code";
        case proxy_errc::malformed_reply: return "the proxy's answer is malformed";
        case proxy_errc::closed: return "the proxy closed the connection before the tunnel was set up";
        case proxy_errc::timeout: return "the proxy did not set the tunnel up in time";
        }
        return "unknown proxy error";
    }
};
}  // namespace detail

inline const std::error_category& proxy_category() noexcept {
    static const detail::proxy_category_impl category;
    return category;
}

inline std::error_code make_error_code(proxy_errc e) noexcept { return {static_cast<int>(e), proxy_category()}; }

}  // namespace duplex::client

template <>
struct std::is_error_code_enum<duplex::client::proxy_errc> : std::true_type {};
