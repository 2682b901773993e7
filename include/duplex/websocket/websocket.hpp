// duplex::websocket — the type-erased WebSocket that application code holds, like ASP.NET's abstract
// WebSocket: the same handle whether the connection runs over TCP or TLS, compressed or not.
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/message.hpp>
#include <duplex/websocket/state.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

namespace detail {
// What every concrete stream offers through the handle. One virtual call per operation, never per byte.
class websocket_interface {
public:
    virtual ~websocket_interface() = default;
    virtual awaitable<receive_result> receive(asio::mutable_buffer buffer) = 0;
    virtual awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) = 0;
    virtual awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) = 0;
    virtual awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message,
                                 message_flags flags) = 0;
    virtual awaitable<void> close(close_status status, std::string_view description) = 0;
    virtual awaitable<void> close_output(close_status status, std::string_view description) = 0;
    virtual void abort() noexcept = 0;
    virtual websocket_state state() const noexcept = 0;
    virtual const std::string& sub_protocol() const noexcept = 0;
    virtual asio::any_io_executor get_executor() const = 0;
};
}  // namespace detail

class websocket {
public:
    websocket() = default;
    explicit websocket(std::shared_ptr<detail::websocket_interface> impl) noexcept : impl_(std::move(impl)) {}

    // Receives the next piece of a message into `buffer` (at most its size), or the peer's close.
    // One receive at a time. With an empty buffer (as .NET's zero-byte ReceiveAsync) it waits until a
    // message's data has arrived and returns count 0 with the message's type, consuming nothing (an empty
    // message is received whole, end_of_message set): the caller can take a buffer only then, so that a
    // quiet connection holds none. It costs a receive call per message (about 750 instructions, callgrind).
    awaitable<receive_result> receive(asio::mutable_buffer buffer) { return impl_->receive(buffer); }

    // Receives one whole message, replacing the contents of `out`. A message larger than `max_size`
    // fails the connection with close code 1009 (message too big).
    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) {
        return impl_->receive_message(out, max_size);
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) {
        return impl_->receive_message(out, max_size);
    }

    // Sends `data` as (part of) a message; end_of_message = false leaves the message open so the next
    // send continues it. Safe to call from several coroutines: whole messages are queued in order.
    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return impl_->send(data, type, end_of_message, flags);
    }
    awaitable<void> send(std::string_view text, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return impl_->send(asio::buffer(text), message_type::text, end_of_message, flags);
    }

    // The full close handshake: sends our close frame and waits (bounded by the close timeout) for the
    // peer's, then closes the transport.
    awaitable<void> close(close_status status, std::string_view description = {}) {
        return impl_->close(status, description);
    }
    // Sends our close frame and returns; receive() still delivers what the peer sends until its close.
    awaitable<void> close_output(close_status status, std::string_view description = {}) {
        return impl_->close_output(status, description);
    }
    // Drops the connection at once; pending operations fail with websocket_errc::aborted.
    void abort() noexcept { impl_->abort(); }

    websocket_state state() const noexcept { return impl_->state(); }
    const std::string& sub_protocol() const noexcept { return impl_->sub_protocol(); }
    asio::any_io_executor get_executor() const { return impl_->get_executor(); }

    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

private:
    std::shared_ptr<detail::websocket_interface> impl_;
};

}  // namespace duplex
