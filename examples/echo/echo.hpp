// The seed's Echo method, line for line: every message piece goes back with the same type and
// end-of-message flag, and the peer's close is answered with its own status. Also the same echo in
// Asio's callback style (completion tokens), for those who write handlers instead of coroutines.
#pragma once

#include <duplex/duplex.hpp>

#include <array>
#include <memory>
#include <span>
#include <string>

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

// The echo as a chain of completion handlers: each receive's handler sends the piece back, each send's
// handler receives the next. run() keeps the request alive until the chain ends, and rethrows the
// error that ended it as the awaitable echo would.
class callback_echo : public std::enable_shared_from_this<callback_echo> {
public:
    callback_echo(websocket ws, std::size_t buffer_size)
        : ws_(std::move(ws)), buffer_(std::make_unique_for_overwrite<std::byte[]>(buffer_size)), size_(buffer_size) {}

    awaitable<void> run() {
        receive();
        co_await done_.task();
    }

private:
    void receive() {
        ws_.async_receive(asio::buffer(buffer_.get(), size_),
                          [self = shared_from_this()](std::error_code ec, receive_result r) { self->received(ec, r); });
    }

    void received(std::error_code ec, receive_result& r) {
        if (ec) return finish(ec);
        if (r.close_status) {
            close_description_ = std::move(r.close_status_description);  // must outlive the close
            ws_.async_close(*r.close_status, close_description_,
                            [self = shared_from_this()](std::error_code close_ec) { self->finish(close_ec); });
            return;
        }
        ws_.async_send(asio::buffer(buffer_.get(), r.count), r.message_type, r.end_of_message, message_flags::none,
                       [self = shared_from_this()](std::error_code send_ec) {
                           if (send_ec) self->finish(send_ec);
                           else self->receive();
                       });
    }

    void finish(std::error_code ec) {
        if (ec) done_.try_set_exception(std::make_exception_ptr(websocket_error(ec)));
        else done_.try_set_result();
    }

    websocket ws_;
    std::unique_ptr<std::byte[]> buffer_;
    std::size_t size_;
    std::string close_description_;
    task_completion_source<> done_;
};

inline awaitable<void> echo_with_callbacks(websocket ws, std::size_t buffer_size = 4 * 1024) {
    const auto session = std::make_shared<callback_echo>(std::move(ws), buffer_size);
    co_await session->run();
}

// The echo on the message-driven API (app.map_websocket): every message goes back whole with its
// type; the session answers the peer's close in kind by itself.
inline websocket_handlers<> echo_handlers(bool compression) {
    websocket_handlers<> handlers;
    handlers.accept.dangerous_enable_compression = compression;
    handlers.on_message = [](websocket_session<>& socket, std::string_view data, message_type type) {
        socket.send(asio::buffer(data), type);
    };
    return handlers;
}

}  // namespace duplex::examples
