// How the WebSocket layer ends the layer below it. Socket-like transports (TCP, Unix sockets, test
// streams) need nothing but a lowest layer with shutdown, close and is_open. A layer whose end is a
// message of its own — TLS's close_notify — says so with a member: duplex::tls::stream has
// async_shutdown_send(), a bare asio::ssl::stream has async_shutdown(token). That is detected here rather
// than overloaded next to the TLS type: the calls in stream.hpp are qualified, and a qualified call only
// sees the overloads declared before it, so an overload in a later header would be silently ignored.
#pragma once

#include <duplex/config.hpp>

#include <chrono>
#include <concepts>
#include <ctime>
#include <system_error>

namespace duplex::detail {

template <class Transport>
concept has_half_close = requires(Transport& t) {
    { t.async_shutdown_send() } -> std::same_as<awaitable<void>>;
};

template <class Transport>
concept has_full_shutdown = requires(Transport& t) { t.async_shutdown(use_nothrow_awaitable); };

// Half-closes the sending direction at once, so the peer sees end-of-stream after our last frame while
// we can still read what it has in flight (a lingering close that avoids RST discarding our close frame).
// Says nothing to a layer of its own: use async_shutdown_send for a transport that may be TLS.
template <class Transport>
void shutdown_send(Transport& t) noexcept {
    std::error_code ignored;
    t.lowest_layer().shutdown(Transport::lowest_layer_type::shutdown_send, ignored);
}

// Ends our sending direction the way the transport speaks it: a TCP half-close, or TLS's close_notify
// (duplex::tls::stream: only that, reading goes on until the peer's close_notify). A bare
// asio::ssl::stream can only do Asio's full shutdown, which also reads until the peer's close_notify and
// fails on application data still in flight. Bound it with a timer that closes the transport. Errors are
// not reported: they only mean the peer left less politely.
template <class Transport>
awaitable<void> async_shutdown_send(Transport& t) {
    if constexpr (has_half_close<Transport>) {
        co_await t.async_shutdown_send();
    } else if constexpr (has_full_shutdown<Transport>) {
        co_await t.async_shutdown(use_nothrow_awaitable);
    } else {
        shutdown_send(t);
    }
    co_return;
}

// Closes the transport at once (for TLS: without close_notify); pending operations complete with
// operation_aborted.
template <class Transport>
void close_transport(Transport& t) noexcept {
    std::error_code ignored;
    t.lowest_layer().close(ignored);
}

template <class Transport>
bool transport_is_open(const Transport& t) noexcept {
    return t.lowest_layer().is_open();
}

// A socket we read directly, which can wait for data without a buffer (a 1-byte MSG_PEEK). Not a layer
// with buffers of its own, such as TLS, whose data may wait inside it while the socket has none.
template <class Transport>
concept peekable_socket = requires(Transport& t, asio::mutable_buffer b) {
    t.async_receive(b, asio::socket_base::message_peek, use_nothrow_awaitable);
};

// A clock for durations of seconds, cheap enough to read around every read (Linux: a few ns, 4 ms steps).
inline std::chrono::steady_clock::duration coarse_now() noexcept {
#if defined(CLOCK_MONOTONIC_COARSE)
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
#else
    return std::chrono::steady_clock::now().time_since_epoch();
#endif
}

}  // namespace duplex::detail
