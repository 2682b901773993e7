// duplex::redis::errc — what goes wrong between duplex and a Redis server, as std::error_code values in
// their own category (transport errors stay Asio's, TLS errors stay duplex::tls's).
#pragma once

#include <string>
#include <system_error>

namespace duplex::redis {

enum class errc {
    protocol_error = 1,     // the server sent bytes that are not RESP2, or a reply too large for our limits
    authentication_failed,  // AUTH refused (wrong password, unknown ACL user), or the server wants one
    select_failed,          // SELECT refused (no such database)
    server_error,           // another error reply where success was needed
    connect_timeout,        // no TCP connection (and TLS handshake, and AUTH) within connect_timeout
    health_check_failed,    // nothing read for twice health_check_interval while a reply was due
    connection_closed,      // the server closed the connection
};

class error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.redis"; }
    std::string message(int value) const override {
        switch (static_cast<errc>(value)) {
        case errc::protocol_error: return "the Redis server's reply is not valid RESP2 or exceeds our limits";
        case errc::authentication_failed: return "Redis authentication failed";
        case errc::select_failed: return "Redis refused to select the database";
        case errc::server_error: return "Redis replied with an error";
        case errc::connect_timeout: return "no connection to Redis within the connect timeout";
        case errc::health_check_failed: return "Redis did not answer within twice the health check interval";
        case errc::connection_closed: return "Redis closed the connection";
        }
        return "unknown Redis error";
    }
};

inline const std::error_category& category() noexcept {
    static const error_category instance;
    return instance;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace duplex::redis

template <>
struct std::is_error_code_enum<duplex::redis::errc> : std::true_type {};
