// ASP.NET's WebSocketAcceptContext: per-request choices made when accepting a WebSocket.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace duplex {

struct accept_context {
    // Must be one of ctx.websockets.requested_protocols(), else accept_websocket throws before answering.
    std::string sub_protocol{};
    // Override the app's websocket_options for this socket.
    std::optional<std::chrono::steady_clock::duration> keep_alive_interval{};
    std::optional<std::chrono::steady_clock::duration> keep_alive_timeout{};
    // permessage-deflate (RFC 7692): accept the client's first acceptable offer. DANGEROUS: compressing
    // secrets together with attacker-controlled data lets an attacker who sees the (even encrypted)
    // message sizes recover the secrets (CRIME/BREACH). Send such messages with
    // message_flags::disable_compression, or leave compression off.
    bool dangerous_enable_compression = false;
    // Our compressor's window, 8–15 (the client may ask for less); a smaller window costs less memory
    // per connection and compresses less. Outside 8–15 accept_websocket throws before answering.
    int server_max_window_bits = 15;
    // Compress every message on its own: our compressor's state is freed between messages (no memory
    // held by an idle connection) at some cost in ratio.
    bool disable_server_context_takeover = false;
};

}  // namespace duplex
