// What can end a WebSocket connection, as std::error_code values, and the exception that carries them.
#pragma once

#include <string>
#include <system_error>

namespace duplex {

enum class websocket_errc {
    // The peer broke RFC 6455; a close frame with the matching code was sent where possible.
    protocol_error = 1,           // 1002: reserved bits/opcodes, masking direction, fragmentation, control frames
    invalid_payload_data,         // 1007: invalid UTF-8 in a text message or close reason
    message_too_big,              // 1009: a message over the configured maximum
    // The transport ended or failed.
    connection_closed_prematurely, // the peer closed TCP without completing the close handshake
    close_timeout,                 // the peer did not answer our close frame in time
    keep_alive_timeout,            // the peer sent nothing within the keep-alive timeout
    aborted,                       // abort() was called, or a concurrent operation failed the connection
    // Misuse of the API (a clear error instead of undefined behaviour).
    invalid_state,                 // e.g. send after close, receive after the close was received
    request_ended,                 // the request that owned the socket has completed
    concurrent_receive,            // a second receive while one is pending
    // Opening handshake.
    handshake_failed,              // the peer's request or response broke RFC 6455 §4
    // A limit of stream_options was crossed; the connection was failed with the close code shown.
    frame_too_big,                 // 1009: a data frame's announced length passes max_frame_size
    too_many_fragments,            // 1008: a message in more frames than max_fragments_per_message
    send_queue_full,               // 1008: the peer reads so slowly that the send queue passed max_send_queue_bytes
    send_timeout,                  // 1008: the peer took none of our bytes within send_timeout while we waited on it
};

namespace detail {
class websocket_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.websocket"; }
    std::string message(int value) const override {
        switch (static_cast<websocket_errc>(value)) {
        case websocket_errc::protocol_error: return "the peer violated the WebSocket protocol";
        case websocket_errc::invalid_payload_data: return "the peer sent invalid UTF-8 in a text message or close reason";
        case websocket_errc::message_too_big: return "the peer sent a message larger than the maximum message size";
        case websocket_errc::connection_closed_prematurely:
            return "the remote party closed the WebSocket connection without completing the close handshake";
        case websocket_errc::close_timeout: return "the peer did not complete the close handshake in time";
        case websocket_errc::keep_alive_timeout: return "the peer sent nothing within the keep-alive timeout";
        case websocket_errc::aborted: return "the WebSocket was aborted";
        case websocket_errc::invalid_state: return "the operation is not valid in the WebSocket's current state";
        case websocket_errc::request_ended: return "the request that owned the WebSocket has completed";
        case websocket_errc::concurrent_receive: return "a receive is already in progress on this WebSocket";
        case websocket_errc::handshake_failed: return "the WebSocket opening handshake failed";
        case websocket_errc::frame_too_big: return "the peer sent a frame larger than the maximum frame size";
        case websocket_errc::too_many_fragments:
            return "the peer sent a message in more fragments than the maximum fragments per message";
        case websocket_errc::send_queue_full:
            return "the peer reads too slowly: the send queue passed its maximum size";
        case websocket_errc::send_timeout: return "the peer read nothing of what we sent within the send timeout";
        }
        return "unknown WebSocket error";
    }
};
}  // namespace detail

inline const std::error_category& websocket_category() noexcept {
    static const detail::websocket_category_impl category;
    return category;
}

inline std::error_code make_error_code(websocket_errc e) noexcept {
    return {static_cast<int>(e), websocket_category()};
}

// Thrown by WebSocket operations; code() says what happened, what() adds the detail.
class websocket_error : public std::system_error {
public:
    explicit websocket_error(std::error_code code) : std::system_error(code) {}
    websocket_error(std::error_code code, const std::string& detail) : std::system_error(code, detail) {}
    websocket_error(websocket_errc code, const std::string& detail) : std::system_error(make_error_code(code), detail) {}
};

}  // namespace duplex

template <>
struct std::is_error_code_enum<duplex::websocket_errc> : std::true_type {};
