// The I/O both HTTP/2 connections (the app host's, app/detail/http2_connection.hpp, and the client's,
// client/http2_connection.hpp) do the same way around their nghttp2 session: writing what it has ready,
// many frames per write, and the polite end of the transport.
#pragma once

#include <duplex/config.hpp>
#include <duplex/detail/recycling_awaitable.hpp>
#include <duplex/detail/transport.hpp>

#include <chrono>
#include <cstddef>
#include <span>
#include <system_error>
#include <vector>

namespace duplex::http2 {

// Writes what `session` has ready (a batch of at least `batch` bytes when there is as much) until the
// session is over (it wants neither to read nor to write), `reading` has turned false with nothing left
// to write, or a write fails; false when the session or a write failed. Waits on `wake` (whoever gives
// the session something to send cancels it). `before_write()` runs before each write, and what it
// returns lives until the write completes (the server's stall deadline). The wait and the write happen
// per message: their memory is recycled (recycling_awaitable.hpp).
template <class Transport, class Session, class BeforeWrite>
awaitable<bool> write_frames(Transport& transport, Session& session, std::vector<std::byte>& out, asio::steady_timer& wake,
                             const bool& reading, std::size_t batch, BeforeWrite before_write) {
    for (;;) {
        if (session.produce(out, batch) != 0) co_return false;
        if (out.empty()) {
            if (!reading || (!session.want_read() && !session.want_write())) co_return true;
            wake.expires_at(asio::steady_timer::time_point::max());
            co_await wake.async_wait(duplex::detail::recycling_nothrow_awaitable());
            continue;
        }
        [[maybe_unused]] const auto guard = before_write();
        auto [ec, n] = co_await asio::async_write(transport, asio::buffer(out), duplex::detail::recycling_nothrow_awaitable());
        out.clear();
        if (ec) co_return false;
    }
}

// The end of the connection, as HTTP/1.1's: our side ends (TCP half-close, over TLS close_notify), then
// what the peer still sends is read (into `scratch`) and dropped until it ends too, within `timeout`
// (then the transport is closed): closing on unread bytes would send RST, which can destroy our last
// frames (the GOAWAY) before the peer reads them.
template <class Transport>
awaitable<void> linger(Transport& transport, std::span<std::byte> scratch, std::chrono::steady_clock::duration timeout) {
    asio::steady_timer deadline(transport.get_executor(), timeout);
    deadline.async_wait([&transport](std::error_code ec) {
        if (!ec) duplex::detail::close_transport(transport);  // after cancel() below, ec says so: nothing is touched
    });
    co_await duplex::detail::async_shutdown_send(transport);
    for (;;) {
        auto [ec, n] = co_await transport.async_read_some(asio::buffer(scratch.data(), scratch.size()),
                                                          duplex::detail::use_nothrow_awaitable);
        if (ec) break;
    }
    deadline.cancel();
}

}  // namespace duplex::http2
