// duplex::ws::stream<Next> — RFC 6455 over any Asio stream (TCP, TLS, a Unix socket, a test stream).
//
// A thin handle over detail::stream_core, which holds the connection's state; the operations are
// defined by concern in websocket/impl/ (handshake, read, write, close, timers). Its state is touched
// only on its executor (a strand when the io_context has several threads): the messages and the close
// may be started from anywhere and are carried there; the opening handshake (read_request, accept,
// reject, handshake), start_keep_alive and end_request must be called on it.
//
// permessage-deflate (RFC 7692) is decided per connection at the handshake, not per type: accept() and
// handshake() take the compression options, and the codec is built only when both ends agree. A
// connection without it pays one null pointer and a branch per message; the type-erased
// duplex::websocket is the same handle either way.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>
#include <duplex/websocket/impl/async_ops.hpp>
#include <duplex/websocket/impl/close.hpp>
#include <duplex/websocket/impl/handshake.hpp>
#include <duplex/websocket/impl/read.hpp>
#include <duplex/websocket/impl/timers.hpp>
#include <duplex/websocket/impl/write.hpp>

namespace duplex::ws {

// The composable WebSocket stream. A cheap handle: copies share one connection.
template <class Next>
class stream {
public:
    using next_layer_type = Next;

    stream(Next next, role r, stream_options options = {})
        : core_(std::make_shared<detail::stream_core<Next>>(std::move(next), r, options)) {}

    Next& next_layer() noexcept { return core_->next_layer(); }

    // Hands over bytes read from the transport before the stream took it (they are parsed first).
    void prime(std::span<const std::byte> bytes) { core_->prime(bytes); }

    // Server: reads the HTTP upgrade request (answering a malformed one with its 4xx and throwing).
    awaitable<http::request> read_request() { return core_->read_request(); }
    // Server: answers the request with 101, or with 400/426 and throws websocket_error. With
    // `compression` (DANGEROUS, see deflate/permessage.hpp: CRIME/BREACH), a permessage-deflate offer of
    // the client is accepted on those terms; without it, or without an acceptable offer, none is.
    awaitable<void> accept(const http::request& request, std::string_view sub_protocol = {},
                           const http::headers& extra_headers = {},
                           std::optional<duplex::deflate::options> compression = std::nullopt) {
        return core_->accept(request, sub_protocol, extra_headers, compression);
    }
    // Server, over HTTP/2 (RFC 8441): the same negotiation as accept() for a request that came as an
    // extended CONNECT, whose 200 the HTTP/2 connection sends with the returned Sec-WebSocket-Extensions
    // value (empty: none agreed) and the sub-protocol. Opens the stream; nothing is written.
    std::string accept_tunneled(const http::request& request, std::string_view sub_protocol = {},
                                std::optional<duplex::deflate::options> compression = std::nullopt) {
        return core_->accept_tunneled(request, sub_protocol, compression);
    }
    // Server: read_request() then accept().
    awaitable<void> accept(std::optional<duplex::deflate::options> compression = std::nullopt) {
        auto request = co_await core_->read_request();
        const http::headers no_headers;  // named: g++ 12 destroys a temporary inside co_await twice
        co_await core_->accept(request, {}, no_headers, compression);
    }
    // Server: answers a request that will not be upgraded (e.g. 404) and closes the connection.
    awaitable<void> reject(int status_code, std::string_view message) { return core_->reject(status_code, message); }

    // Client, over HTTP/2 (RFC 8441): checks the server's answer to the extended CONNECT the HTTP/2
    // connection sent (offering `sub_protocols` and, with `compression`, permessage-deflate) and opens
    // the stream; throws websocket_error(handshake_failed) when it refuses or breaks the rules.
    void open_tunneled(const http::response& response, std::span<const std::string> sub_protocols = {},
                       std::optional<duplex::deflate::options> compression = std::nullopt) {
        core_->open_tunneled(response, sub_protocols, compression);
    }
    // Client: sends the upgrade request for `target` to `host` and checks the server's answer. With
    // `compression` (DANGEROUS, see deflate/permessage.hpp), permessage-deflate is offered on those
    // terms; the server may decline it, and a response that breaks RFC 7692 fails the handshake.
    awaitable<void> handshake(std::string_view host, std::string_view target,
                              std::span<const std::string> sub_protocols = {}, const http::headers& extra_headers = {},
                              std::optional<duplex::deflate::options> compression = std::nullopt) {
        return core_->handshake(host, target, sub_protocols, extra_headers, compression);
    }

    // The messages and the close, as duplex::websocket has them (see there): from any thread (an
    // operation started where the stream's executor is not running is carried there), awaitable or with a
    // completion token.
    awaitable<receive_result> receive(asio::mutable_buffer buffer) {
        return duplex::detail::on_socket_executor(*core_, core_->receive(buffer));
    }
    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) {
        return duplex::detail::on_socket_executor(*core_, core_->receive_message(out, max_size));
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) {
        return duplex::detail::on_socket_executor(*core_, core_->receive_message(out, max_size));
    }
    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return duplex::detail::on_socket_executor(*core_, core_->send(data, type, end_of_message, flags));
    }
    awaitable<void> close(close_status status, std::string_view description = {}) {
        return duplex::detail::on_socket_executor(*core_, core_->close(status, description));
    }
    awaitable<void> close_output(close_status status, std::string_view description = {}) {
        return duplex::detail::on_socket_executor(*core_, core_->close_output(status, description));
    }

    template <class Token>
    auto async_receive(asio::mutable_buffer buffer, Token&& token) {
        return duplex::detail::async_receive_operation(std::forward<Token>(token), core_, buffer);
    }
    template <class Token>
    auto async_receive_message(std::string& out, std::size_t max_size, Token&& token) {
        return duplex::detail::async_operation<receive_result>(
            std::forward<Token>(token), core_, [&out, max_size](auto& s) { return s.receive_message(out, max_size); });
    }
    template <class Token>
    auto async_receive_message(std::vector<std::byte>& out, std::size_t max_size, Token&& token) {
        return duplex::detail::async_operation<receive_result>(
            std::forward<Token>(token), core_, [&out, max_size](auto& s) { return s.receive_message(out, max_size); });
    }
    template <class Token>
    auto async_send(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags,
                    Token&& token) {
        return duplex::detail::async_send_operation(std::forward<Token>(token), core_, data, type, end_of_message, flags);
    }
    template <class Token>
    auto async_close(close_status status, std::string_view description, Token&& token) {
        return duplex::detail::async_operation(std::forward<Token>(token), core_,
                                                    [=](auto& s) { return s.close(status, description); });
    }
    template <class Token>
    auto async_close_output(close_status status, std::string_view description, Token&& token) {
        return duplex::detail::async_operation(std::forward<Token>(token), core_,
                                                    [=](auto& s) { return s.close_output(status, description); });
    }

    void abort() noexcept { core_->abort(); }
    websocket_state state() const noexcept { return core_->state(); }
    // The memory the stream's receive buffer takes now: receive_buffer_size, or 0 while a quiet
    // connection waits without one (stream_options::release_receive_buffer_after).
    std::size_t receive_buffer_bytes() const noexcept { return core_->receive_buffer_bytes(); }
    const std::string& sub_protocol() const noexcept { return core_->sub_protocol(); }
    asio::any_io_executor get_executor() const { return core_->get_executor(); }

    void start_keep_alive(std::chrono::steady_clock::duration interval, std::chrono::steady_clock::duration timeout) {
        core_->start_keep_alive(interval, timeout);
    }
    // close_output, and the peer's close is then due within close_timeout (the host's 1001 at shutdown).
    awaitable<void> close_output_with_deadline(close_status status, std::string_view description = {}) {
        return core_->close_output_with_deadline(status, description);
    }
    // The request that owned the stream has completed: see stream_core::end_request.
    awaitable<void> end_request() { return core_->end_request(); }
    void end_request_now() noexcept { core_->end_request_now(); }
    // Keeps `dependency` (e.g. the io_context the transport runs on) alive as long as the stream.
    void retain(std::shared_ptr<void> dependency) noexcept { core_->retain(std::move(dependency)); }

    // What permessage-deflate the handshake agreed, from this end's point of view; empty when none.
    std::optional<duplex::deflate::negotiated> compression() const { return core_->compression(); }

    // The type-erased handle application code holds; it shares this connection.
    duplex::websocket as_websocket() const { return duplex::websocket(core_); }

private:
    std::shared_ptr<detail::stream_core<Next>> core_;
};

}  // namespace duplex::ws
