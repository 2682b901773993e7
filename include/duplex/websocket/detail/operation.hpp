// Where a WebSocket's operations run, and the completion-token forms of them.
//
// A socket's state is touched only on its executor (its strand with several threads). A caller on
// another thread or executor does not have to know that: on_socket_executor() runs the operation inline
// when the calling thread already runs the socket's executor (the common case, at no cost but a check),
// and otherwise in a coroutine of its own on the socket's executor, resuming the caller on its own
// executor as Asio's operations do.
//
// The token forms (async_receive(buffer, token) and so on) follow Asio's convention: callbacks,
// use_future, deferred, use_awaitable, as_tuple(use_awaitable). They complete with a std::error_code
// (the websocket_errc the exception would carry) instead of throwing. use_awaitable gets the awaitable
// operation itself. For every other token, receive and send are driven by completion handlers
// (impl/async_ops.hpp: no coroutine in the common case, nothing allocated per message); the other
// operations run their awaitable form, with as_tuple(use_awaitable) in a frame that turns the exception
// into the error code, and with any other token in a coroutine of its own (asio::co_spawn) on the
// socket's executor.
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/detail/erased_handler.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/message.hpp>

#include <asio/experimental/as_tuple.hpp>

#include <exception>
#include <tuple>
#include <memory>
#include <new>
#include <stdexcept>
#include <system_error>
#include <typeinfo>
#include <utility>

namespace duplex::detail {

// Runs `operation` where the socket's operations must run. `Socket` offers get_executor() and
// can_start_here(): true when the calling thread runs the socket's executor, or when the socket's
// operations can only fail (its request ended, its app is gone), so that they fail at once.
template <class T, class Socket>
awaitable<T> on_socket_executor(const Socket& socket, awaitable<T> operation) {
    if (socket.can_start_here()) return operation;
    return asio::co_spawn(socket.get_executor(), std::move(operation), asio::use_awaitable);
}

// The error code of what an operation threw: the code a std::system_error (websocket_error among them)
// carries, std::errc::invalid_argument for an invalid argument (e.g. a close status that may not be
// sent), std::errc::not_enough_memory for bad_alloc.
inline std::error_code error_code_of(const std::exception_ptr& failure) noexcept {
    try {
        std::rethrow_exception(failure);
    } catch (const std::system_error& e) {
        return e.code();
    } catch (const std::invalid_argument&) {
        return std::make_error_code(std::errc::invalid_argument);
    } catch (const std::bad_alloc&) {
        return std::make_error_code(std::errc::not_enough_memory);
    } catch (...) {
        return std::make_error_code(std::errc::io_error);
    }
}

// co_spawn's completion (exception_ptr[, T]) turned into the caller's (error_code[, T]). It owns a
// reference to the socket, so a handle dropped while the operation runs does not end it; the caller's
// associated executor, allocator and cancellation slot pass through (see the associator below).
//
// A handler with no executor of its own completes on the socket's, as with Asio's I/O objects: Asio's
// own default (the system executor) would run it on a thread of Asio's private pool, beside the
// socket's thread, where a plain callback that touches anything of the connection races.
//
// The caller's handler is posted, not called from inside co_spawn's frame: a handler that starts the
// next operation (a callback chain) would otherwise hold that frame alive beside the next one's, and
// Asio recycles only two frames per thread.
template <class Handler, class Socket, class... Result>
struct error_code_completion {
    Handler handler;
    std::shared_ptr<Socket> socket;

    void operator()(std::exception_ptr failure, Result... result) {
        auto executor = asio::get_associated_executor(handler, socket->get_executor());
        socket.reset();
        const auto ec = failure ? error_code_of(failure) : std::error_code{};
        asio::post(std::move(executor), [h = std::move(handler), ec, ... r = std::move(result)]() mutable {
            std::move(h)(ec, std::move(r)...);
        });
    }
};

// The tokens that get the awaitable operation itself rather than a co_spawn.
template <class Token>
inline constexpr bool is_use_awaitable = std::is_same_v<std::decay_t<Token>, asio::use_awaitable_t<>>;
template <class Token>
inline constexpr bool is_use_awaitable_tuple =
    std::is_same_v<std::decay_t<Token>, asio::experimental::as_tuple_t<asio::use_awaitable_t<>>>;

// An operation's exception as an error code beside its result, for as_tuple(use_awaitable).
template <class T>
awaitable<std::tuple<std::error_code, T>> with_error_code(awaitable<T> operation) {
    std::exception_ptr failure;
    try {
        co_return std::tuple<std::error_code, T>{std::error_code{}, co_await std::move(operation)};
    } catch (...) {
        failure = std::current_exception();
    }
    co_return std::tuple<std::error_code, T>{error_code_of(failure), T{}};
}
inline awaitable<std::tuple<std::error_code>> with_error_code(awaitable<void> operation) {
    std::exception_ptr failure;
    try {
        co_await std::move(operation);
    } catch (...) {
        failure = std::current_exception();
    }
    co_return std::tuple<std::error_code>{failure ? error_code_of(failure) : std::error_code{}};
}

using receive_completion = erased_handler<void(std::error_code, receive_result)>;
using send_completion = erased_handler<void(std::error_code)>;

// The token forms of receive and send: `Socket` offers receive/send (awaitable) and
// start_receive/start_send (completion handlers).
template <class Token, class Socket>
auto async_receive_operation(Token&& token, std::shared_ptr<Socket> socket, asio::mutable_buffer buffer);
template <class Token, class Socket>
auto async_send_operation(Token&& token, std::shared_ptr<Socket> socket, asio::const_buffer data, message_type type,
                          bool end_of_message, message_flags flags);

// Starts operation(socket) in a coroutine of its own on the socket's executor and completes `handler`.
template <class... Result>
struct initiate_operation {
    template <class Handler, class Socket, class Operation>
    void operator()(Handler&& handler, std::shared_ptr<Socket> socket, Operation operation) const {
        auto executor = socket->get_executor();
        auto awaitable = operation(*socket);
        asio::co_spawn(std::move(executor), std::move(awaitable),
                       error_code_completion<std::decay_t<Handler>, Socket, Result...>{
                           std::forward<Handler>(handler), std::move(socket)});
    }
};

// The token form of an operation completing with (error_code) or (error_code, Result): `operation(socket)`
// makes the awaitable operation (to be started on the socket's executor).
template <class... Result, class Token, class Socket, class Operation>
auto async_operation(Token&& token, std::shared_ptr<Socket> socket, Operation operation) {
    if constexpr (is_use_awaitable<Token>) {
        return on_socket_executor(*socket, operation(*socket));
    } else if constexpr (is_use_awaitable_tuple<Token>) {
        return with_error_code(on_socket_executor(*socket, operation(*socket)));
    } else {
        return asio::async_initiate<Token, void(std::error_code, Result...)>(
            initiate_operation<Result...>{}, token, std::move(socket), std::move(operation));
    }
}

template <class Token, class Socket>
auto async_receive_operation(Token&& token, std::shared_ptr<Socket> socket, asio::mutable_buffer buffer) {
    if constexpr (is_use_awaitable<Token>) {
        return on_socket_executor(*socket, socket->receive(buffer));
    } else {
        return asio::async_initiate<Token, void(std::error_code, receive_result)>(
            [](auto handler, std::shared_ptr<Socket> s, asio::mutable_buffer b) {
                auto executor = s->get_executor();
                s->start_receive(b, receive_completion(std::move(handler), executor));
            },
            token, std::move(socket), buffer);
    }
}

template <class Token, class Socket>
auto async_send_operation(Token&& token, std::shared_ptr<Socket> socket, asio::const_buffer data, message_type type,
                          bool end_of_message, message_flags flags) {
    if constexpr (is_use_awaitable<Token>) {
        return on_socket_executor(*socket, socket->send(data, type, end_of_message, flags));
    } else {
        return asio::async_initiate<Token, void(std::error_code)>(
            [=](auto handler, std::shared_ptr<Socket> s) {
                auto executor = s->get_executor();
                s->start_send(data, type, end_of_message, flags, send_completion(std::move(handler), executor));
            },
            token, std::move(socket));
    }
}

}  // namespace duplex::detail

template <template <typename, typename> class Associator, class Handler, class Socket, class... Result,
          class DefaultCandidate>
struct asio::associator<Associator, duplex::detail::error_code_completion<Handler, Socket, Result...>,
                        DefaultCandidate> {
    using type = typename Associator<Handler, DefaultCandidate>::type;
    static type get(const duplex::detail::error_code_completion<Handler, Socket, Result...>& completion,
                    const DefaultCandidate& candidate = DefaultCandidate()) noexcept {
        return Associator<Handler, DefaultCandidate>::get(completion.handler, candidate);
    }
};
