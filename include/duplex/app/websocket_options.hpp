// ASP.NET's WebSocketOptions: what app.use_websockets() configures for every accepted WebSocket.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace duplex {

struct websocket_options {
    // How often a ping goes to the client, to keep proxies from dropping an idle connection.
    // Zero turns pings off.
    std::chrono::steady_clock::duration keep_alive_interval = std::chrono::minutes(2);
    // With a non-zero timeout, a client that sends nothing (no pong, no frame) within it after a ping
    // is aborted and the handler's pending receive fails with websocket_errc::keep_alive_timeout.
    std::chrono::steady_clock::duration keep_alive_timeout = std::chrono::steady_clock::duration::zero();
    // Origins allowed to open a WebSocket (e.g. "https://client.com"); empty or "*" allows any. A
    // request with another Origin gets 403; a request without Origin (not from a browser) is allowed.
    std::vector<std::string> allowed_origins{};
    // Bytes of the connection's read buffer.
    std::size_t receive_buffer_size = 4 * 1024;
};

}  // namespace duplex
