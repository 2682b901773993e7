// duplex::websocket — the type-erased WebSocket that application code holds, like ASP.NET's abstract
// WebSocket: the same handle whether the connection runs over TCP or TLS, compressed or not.
//
// Every operation may be called from any thread and any executor: one started where the socket's
// executor is not running is carried there and completes back on the caller's executor (see
// detail/operation.hpp). Each comes in two forms: an awaitable (`co_await ws.receive(buffer)`, which
// throws websocket_error) and Asio's completion-token form (`ws.async_receive(buffer, token)`, which
// completes with a std::error_code).
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/backpressure.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/detail/operation.hpp>
#include <duplex/websocket/message.hpp>
#include <duplex/websocket/state.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

namespace ws {
class prepared_message;
}

namespace detail {
// Told when a socket's send queue has drained (pub/sub's and the message-driven API's on_drain).
class drain_listener {
public:
    virtual void on_drained() noexcept = 0;

protected:
    ~drain_listener() = default;
};

// What every concrete stream offers through the handle. One virtual call per operation, never per byte.
// The operations must start on the socket's executor; the handle sees to that.
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
    // The token forms of receive and send: completion handlers instead of a coroutine.
    virtual void start_receive(asio::mutable_buffer buffer, receive_completion completion) = 0;
    // start_receive for a caller that takes its completion inline, from within this call, when the piece
    // is ready without waiting (the message-driven API, which bounds how many in a row run so).
    virtual void start_receive_now(asio::mutable_buffer buffer, receive_completion completion) = 0;
    virtual void start_send(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags,
                            send_completion completion) = 0;
    // Sends that never wait (pub/sub, the message-driven API): see ws::detail::stream_core.
    virtual send_status send_prepared(const ws::prepared_message& message, const backpressure_options& limit) = 0;
    virtual send_status send_now(asio::const_buffer data, message_type type, message_flags flags,
                                 const backpressure_options& limit) = 0;
    virtual std::size_t buffered_amount() const noexcept = 0;
    virtual int prepared_window_bits() const noexcept = 0;
    virtual void notify_when_drained(drain_listener* listener) noexcept = 0;
    virtual void abort() noexcept = 0;                    // from any thread
    virtual websocket_state state() const noexcept = 0;   // from any thread
    virtual bool can_start_here() const noexcept = 0;     // from any thread
    virtual const std::string& sub_protocol() const noexcept = 0;
    virtual asio::any_io_executor get_executor() const = 0;
};
}  // namespace detail

namespace detail {
struct websocket_access;
}

class websocket {
public:
    websocket() = default;
    explicit websocket(std::shared_ptr<detail::websocket_interface> impl) noexcept : impl_(std::move(impl)) {}

    // Receives the next piece of a message into `buffer` (at most its size), or the peer's close.
    // One receive at a time. With an empty buffer (as .NET's zero-byte ReceiveAsync) it waits until a
    // message's data has arrived and returns count 0 with the message's type, consuming nothing (an empty
    // message is received whole, end_of_message set): the caller can take a buffer only then, so that a
    // quiet connection holds none. It costs a receive call per message (about 750 instructions, callgrind).
    // Canceled (per-operation cancellation) before any of a message was delivered, it fails with
    // operation_aborted and the socket stays usable; canceled after an earlier receive delivered part of
    // the message, it also aborts the connection.
    awaitable<receive_result> receive(asio::mutable_buffer buffer) {
        return detail::on_socket_executor(*impl_, impl_->receive(buffer));
    }

    // Receives one whole message, replacing the contents of `out`. A message larger than `max_size`
    // fails the connection with close code 1009 (message too big). Canceled, as receive.
    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) {
        return detail::on_socket_executor(*impl_, impl_->receive_message(out, max_size));
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) {
        return detail::on_socket_executor(*impl_, impl_->receive_message(out, max_size));
    }

    // Sends `data` as (part of) a message; end_of_message = false leaves the message open so the next
    // send continues it. Several coroutines (or threads) may send at once: whole messages are queued in
    // the order their sends start, and one message sent in several sends must come from one sender.
    // Canceled: see ws::detail::stream_core::send (impl/write.hpp) and README's Cancellation.
    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return detail::on_socket_executor(*impl_, impl_->send(data, type, end_of_message, flags));
    }
    awaitable<void> send(std::string_view text, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return send(asio::buffer(text), message_type::text, end_of_message, flags);
    }

    // The full close handshake: sends our close frame and waits (bounded by the close timeout) for the
    // peer's, then closes the transport. Canceled, it aborts the connection.
    awaitable<void> close(close_status status, std::string_view description = {}) {
        return detail::on_socket_executor(*impl_, impl_->close(status, description));
    }
    // Sends our close frame and returns; receive() still delivers what the peer sends until its close.
    awaitable<void> close_output(close_status status, std::string_view description = {}) {
        return detail::on_socket_executor(*impl_, impl_->close_output(status, description));
    }

    // The completion-token forms (Asio's convention: a callback, use_future, deferred, use_awaitable,
    // as_tuple(use_awaitable)). They complete with the error code the awaitable form would throw, on the
    // handler's associated executor (by default the socket's), and honour its cancellation slot.
    template <class Token>
    auto async_receive(asio::mutable_buffer buffer, Token&& token) {
        return detail::async_receive_operation(std::forward<Token>(token), impl_, buffer);
    }
    template <class Token>
    auto async_receive_message(std::string& out, std::size_t max_size, Token&& token) {
        return detail::async_operation<receive_result>(
            std::forward<Token>(token), impl_, [&out, max_size](auto& s) { return s.receive_message(out, max_size); });
    }
    template <class Token>
    auto async_receive_message(std::vector<std::byte>& out, std::size_t max_size, Token&& token) {
        return detail::async_operation<receive_result>(
            std::forward<Token>(token), impl_, [&out, max_size](auto& s) { return s.receive_message(out, max_size); });
    }
    template <class Token>
    auto async_send(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags,
                    Token&& token) {
        return detail::async_send_operation(std::forward<Token>(token), impl_, data, type, end_of_message, flags);
    }
    template <class Token>
    auto async_close(close_status status, std::string_view description, Token&& token) {
        return detail::async_operation(std::forward<Token>(token), impl_,
                                            [=](auto& s) { return s.close(status, description); });
    }
    template <class Token>
    auto async_close_output(close_status status, std::string_view description, Token&& token) {
        return detail::async_operation(std::forward<Token>(token), impl_,
                                            [=](auto& s) { return s.close_output(status, description); });
    }

    // Drops the connection; pending operations fail with websocket_errc::aborted. From another thread
    // the abort is carried to the socket's executor and happens shortly after.
    void abort() noexcept { impl_->abort(); }

    websocket_state state() const noexcept { return impl_->state(); }
    const std::string& sub_protocol() const noexcept { return impl_->sub_protocol(); }
    asio::any_io_executor get_executor() const { return impl_->get_executor(); }

    explicit operator bool() const noexcept { return static_cast<bool>(impl_); }

private:
    friend struct detail::websocket_access;
    std::shared_ptr<detail::websocket_interface> impl_;
};

namespace detail {
// The connection behind a handle, for the layers above the stream (pub/sub).
struct websocket_access {
    static const std::shared_ptr<websocket_interface>& interface_of(const websocket& ws) noexcept { return ws.impl_; }
};
}  // namespace detail

}  // namespace duplex
