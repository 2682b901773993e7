// Close codes (RFC 6455 §7.4) with ASP.NET Core's WebSocketCloseStatus names, and the rules a close
// frame's payload must follow (§5.5.1, §7.1.6).
#pragma once

#include <duplex/websocket/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace duplex {

// Any code a peer may send is representable: the enum names the registered ones, other values in
// 3000–4999 (library and application codes) are carried as the plain number.
enum class close_status : std::uint16_t {
    normal_closure = 1000,
    endpoint_unavailable = 1001,    // "going away": server shutdown, page navigated away
    protocol_error = 1002,
    invalid_message_type = 1003,
    empty = 1005,                   // no status code was present; never sent on the wire
    invalid_payload_data = 1007,    // e.g. invalid UTF-8 in a text message
    policy_violation = 1008,
    message_too_big = 1009,
    mandatory_extension = 1010,
    internal_server_error = 1011,
};

namespace ws {

// Whether a code may appear in a close frame on the wire. 1004–1006 and 1015 are reserved; 1012–1014
// are registered with IANA but not by RFC 6455, and Autobahn (like most peers) treats them as invalid.
constexpr bool is_valid_wire_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

struct close_payload {
    close_status status = close_status::empty;
    std::string_view reason;  // points into the parsed payload
};

// Parses a received close frame's payload: empty (no code), or a valid 2-byte code followed by a UTF-8
// reason. Returns nullopt for a 1-byte payload, an invalid code (both answered with 1002 by the caller)
// or an invalid reason (1007); `failure` tells which.
inline std::optional<close_payload> parse_close_payload(const std::byte* data, std::size_t size,
                                                        close_status& failure) noexcept {
    if (size == 0) return close_payload{};
    if (size == 1) {
        failure = close_status::protocol_error;
        return std::nullopt;
    }
    auto code = static_cast<std::uint16_t>((std::to_integer<unsigned>(data[0]) << 8) |
                                           std::to_integer<unsigned>(data[1]));
    if (!is_valid_wire_code(code)) {
        failure = close_status::protocol_error;
        return std::nullopt;
    }
    if (!is_valid_utf8(data + 2, size - 2)) {
        failure = close_status::invalid_payload_data;
        return std::nullopt;
    }
    return close_payload{static_cast<close_status>(code),
                         std::string_view(reinterpret_cast<const char*>(data + 2), size - 2)};
}

// The largest reason that fits a control frame: 125 bytes of payload minus the 2-byte code.
inline constexpr std::size_t max_close_reason_size = 123;

}  // namespace ws
}  // namespace duplex
