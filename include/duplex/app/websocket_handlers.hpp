// duplex::websocket_handlers — the message-driven API's handlers for one route (uWebSockets'
// behaviours, SignalR hubs' lifecycle), given to app.map_websocket(path, handlers):
//
//   struct member { std::string name; };
//   duplex::websocket_handlers<member> chat;
//   chat.on_open = [](auto& socket, duplex::http_context& ctx) { socket.data().name = ...; socket.subscribe("room"); };
//   chat.on_message = [](auto& socket, std::string_view data, duplex::message_type type) { ... };
//   chat.on_close = [](auto& socket, duplex::close_status status, std::string_view description) { ... };
//   app.map_websocket("/chat", chat);
//
// Each handler may be a plain function or a coroutine (returning duplex::awaitable<void>). A
// connection reads nothing more until its coroutine handler has finished, so its messages are handled
// one at a time, in order. Between messages a connection holds no coroutine frame and no buffer.
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/config.hpp>
#include <duplex/websocket/backpressure.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/message.hpp>

#include <concepts>
#include <functional>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace duplex {

template <class UserData = std::monostate>
class websocket_session;

// A handler taking `Args...` that is a plain function (returning void) or a coroutine (returning
// awaitable<void>); empty when not set.
template <class... Args>
class websocket_handler {
public:
    websocket_handler() = default;
    template <class F>
        requires(!std::same_as<std::decay_t<F>, websocket_handler> && std::invocable<F&, Args...>)
    websocket_handler(F f) {  // NOLINT: implicit, so that a lambda can be assigned
        using result = std::invoke_result_t<F&, Args...>;
        static_assert(std::is_void_v<result> || std::is_same_v<result, awaitable<void>>,
                      "a WebSocket handler returns void or duplex::awaitable<void>");
        if constexpr (std::is_void_v<result>) plain_ = std::move(f);
        else coroutine_ = std::move(f);
    }

    explicit operator bool() const noexcept { return plain_ || coroutine_; }
    bool is_coroutine() const noexcept { return static_cast<bool>(coroutine_); }

    // A plain handler runs now and returns nothing to wait for; a coroutine handler returns its
    // coroutine, not started.
    std::optional<awaitable<void>> operator()(Args... args) const {
        if (coroutine_) return coroutine_(std::forward<Args>(args)...);
        if (plain_) plain_(std::forward<Args>(args)...);
        return std::nullopt;
    }

private:
    std::function<void(Args...)> plain_;
    std::function<awaitable<void>(Args...)> coroutine_;
};

template <class UserData = std::monostate>
struct websocket_handlers {
    using session = websocket_session<UserData>;

    // The connection is open (the 101 has gone out). The request's context is valid only until the
    // handler returns (or its coroutine finishes): take what you need of it (query parameters, headers).
    websocket_handler<session&, http_context&> on_open;
    // A whole message: text or binary bytes, valid until the handler returns (or its coroutine
    // finishes). Messages larger than the receive buffer are gathered whole, up to the stream's
    // max_message_size (app_options::websocket_limits; 1009 past it).
    websocket_handler<session&, std::string_view, message_type> on_message;
    // Instead of on_message when set: each piece of a message as it arrives (at most a receive buffer's
    // worth), end_of_message on the last, for messages too large to hold whole.
    websocket_handler<session&, std::string_view, message_type, bool> on_message_piece;
    // The connection has ended: after the close handshake (the peer's close status and description;
    // close_status::empty when its close frame had none), or when it failed or the peer vanished
    // (1006, abnormal closure, with the reason as description). Its subscriptions are gone already.
    websocket_handler<session&, close_status, std::string_view> on_close;
    // The send queue has emptied after the socket reached its backpressure limit (a send or a publish
    // was dropped): a good time to send again.
    websocket_handler<session&> on_drain;

    // How connections of this route are accepted: sub-protocol (one the client offered), compression,
    // keep-alive overrides (websocket_options of use_websockets otherwise).
    accept_context accept{};
    // The limit on bytes queued for a socket, for its sends and for what is published to it.
    backpressure_options backpressure{};
    // The buffer a message is received into (taken from a per-thread pool when a message arrives, and
    // given back once it is handled); 0: use_websockets' receive_buffer_size.
    std::size_t receive_buffer_size = 0;
};

}  // namespace duplex
