// The seed's Echo method, line for line: every message piece goes back with the same type and
// end-of-message flag, and the peer's close is answered with its own status.
#pragma once

#include <duplex/duplex.hpp>

#include <array>
#include <span>

namespace duplex::examples {

// With the caller's buffer: each receive delivers at most buffer.size() bytes, so a larger buffer takes a
// large message in fewer, larger pieces (a payload bigger than the stream's own read buffer is then read
// straight into it, and a piece of at least direct_write_threshold, 64 KiB, leaves from it in one gather
// write with its frame header; smaller pieces are copied and share writes).
inline awaitable<void> echo(websocket& ws, std::span<std::byte> buffer) {
    auto result = co_await ws.receive(asio::buffer(buffer.data(), buffer.size()));
    while (!result.close_status) {
        co_await ws.send(asio::buffer(buffer.data(), result.count), result.message_type, result.end_of_message);
        result = co_await ws.receive(asio::buffer(buffer.data(), buffer.size()));
    }
    co_await ws.close(*result.close_status, result.close_status_description);
}

// The seed's 4 KiB buffer.
inline awaitable<void> echo(websocket& ws) {
    std::array<std::byte, 4 * 1024> buffer;
    co_await echo(ws, buffer);
}

}  // namespace duplex::examples
