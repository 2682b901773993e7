// The seed's Echo method, line for line: every message piece goes back with the same type and
// end-of-message flag, and the peer's close is answered with its own status.
#pragma once

#include <duplex/duplex.hpp>

#include <array>

namespace duplex::examples {

inline awaitable<void> echo(websocket& ws) {
    std::array<std::byte, 4 * 1024> buffer;
    auto result = co_await ws.receive(asio::buffer(buffer));
    while (!result.close_status) {
        co_await ws.send(asio::buffer(buffer, result.count), result.message_type, result.end_of_message);
        result = co_await ws.receive(asio::buffer(buffer));
    }
    co_await ws.close(*result.close_status, result.close_status_description);
}

}  // namespace duplex::examples
