// The vocabulary of messages: their type, per-message send flags, and what one receive returns.
#pragma once

#include <duplex/websocket/close_status.hpp>

#include <cstddef>
#include <optional>
#include <string>

namespace duplex {

// ASP.NET's WebSocketMessageType.
enum class message_type { text, binary, close };

// ASP.NET's WebSocketMessageFlags (end of message is a separate argument of send).
enum class message_flags : unsigned {
    none = 0,
    // Send this message uncompressed even when permessage-deflate is negotiated (e.g. secrets mixed
    // with attacker-controlled data, see the compression notes).
    disable_compression = 1,
};

constexpr message_flags operator|(message_flags a, message_flags b) noexcept {
    return static_cast<message_flags>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr bool has_flag(message_flags set, message_flags flag) noexcept {
    return (static_cast<unsigned>(set) & static_cast<unsigned>(flag)) != 0;
}

// ASP.NET's WebSocketReceiveResult. A data receive fills `count` bytes of the caller's buffer; when the
// peer's close frame arrives, message_type is close and close_status is set.
struct receive_result {
    std::size_t count = 0;
    duplex::message_type message_type = duplex::message_type::binary;
    bool end_of_message = false;
    std::optional<duplex::close_status> close_status;
    std::string close_status_description;
};

}  // namespace duplex
