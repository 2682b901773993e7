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
    // permessage-deflate. DANGEROUS over TLS: compressing secrets together with attacker-controlled
    // data lets an attacker who sees the ciphertext sizes recover the secrets (CRIME/BREACH). Send such
    // messages with message_flags::disable_compression. Until the deflate layer lands, offers are
    // declined whatever this says.
    bool dangerous_enable_compression = false;
    int server_max_window_bits = 15;
    bool disable_server_context_takeover = false;
};

}  // namespace duplex
