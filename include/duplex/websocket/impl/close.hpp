// The end of a ws::stream: the close handshake (close, close_output, the peer's close frame), failing
// the connection (RFC 6455 §7.1.7: the matching close frame, then the transport's end), abort and the
// end of the owning request, and the lingering transport close that keeps our last frame from being
// destroyed by a reset.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

// The checks close() and close_output() begin with; false when the socket is closed already.
template <class Next>
inline bool stream_core<Next>::may_close(close_status status, std::string_view description) const {
    throw_if_request_ended();
    check_close_arguments(status, description);
    if (state_ == websocket_state::closed) return false;
    throw_if_failed();
    require_opened();
    return true;
}

// A close canceled by its caller aborts the connection: the handshake cannot be taken back halfway.
template <class Next>
inline awaitable<void> stream_core<Next>::close(close_status status, std::string_view description) {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    if (!may_close(status, description)) co_return;
    arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
    if (!close_sent_) queue_close(status, description);
    try {
        co_await flush_all();
        if (!close_received_) {
            if (receiving_) {
                // The pending receive will read the peer's close frame; wait for it to tell us.
                while (!close_received_ && !failure_) co_await wait_for_event();
                throw_if_failed();
            } else {
                flag_guard guard(receiving_);
                std::array<std::byte, 512> discard;
                while (!close_received_) co_await next_piece(asio::buffer(discard));
            }
        }
    } catch (const std::system_error& e) {
        if (e.code() != asio::error::operation_aborted || failure_) throw;
        abort_now(make_error_code(websocket_errc::aborted));
        throw websocket_error(asio::error::operation_aborted, "close canceled; the connection was aborted");
    }
    disarm_deadline();
    co_await finish_transport();
    state_ = websocket_state::closed;
}

template <class Next>
inline awaitable<void> stream_core<Next>::close_output(close_status status, std::string_view description) {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    if (!may_close(status, description)) co_return;
    if (close_sent_) co_return;
    queue_close(status, description);
    arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
    try {
        co_await flush_all();
    } catch (const std::system_error& e) {
        if (e.code() != asio::error::operation_aborted || failure_) throw;
        abort_now(make_error_code(websocket_errc::aborted));
        throw websocket_error(asio::error::operation_aborted, "close_output canceled; the connection was aborted");
    }
    disarm_deadline();
    if (close_received_) {
        co_await finish_transport();
        state_ = websocket_state::closed;
    }
}

// close_output, and then the peer's close is due within close_timeout: past it the transport is dropped
// and a pending receive fails with close_timeout. The app host's 1001 at shutdown: a member that never
// answers must not hold the shutdown up for the whole shutdown_timeout (a plain close_output leaves the
// peer as long as it likes to finish what it is sending).
template <class Next>
inline awaitable<void> stream_core<Next>::close_output_with_deadline(close_status status, std::string_view description) {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    co_await close_output(status, description);
    if (close_sent_ && !close_received_ && !failure_) arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
}

// The request that owned this WebSocket has completed (ASP.NET's pipeline unwound): every later
// operation fails with request_ended, and the connection ends unless it closed already. When a close
// frame of ours was queued (close_output, the app's 1001 at shutdown, a failure's 1008) it is written
// first and the transport ends as after a close handshake, bounded by close_timeout: a handler whose
// send failed because of that close (mid-message, say) must not take the frame down with it.
template <class Next>
inline awaitable<void> stream_core<Next>::end_request() {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    mark_request_ended();
    notify();
    if (close_sent_ && !write_failed_ && duplex::detail::transport_is_open(next_)) {
        arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
        co_await wait_until_flushed();
        // Linger as a close does, unless a receive (or the keep-alive's own read) is reading the transport.
        if (!receiving_ && !idle_reading_) co_await linger_and_close(true);
    }
    end_request_now();
}

// The same without waiting, when nothing runs the io_context any more (the app host's run() is
// returning): the transport closes at once.
template <class Next>
inline void stream_core<Next>::end_request_now() noexcept {
    mark_request_ended();
    close_now();
    deadline_.cancel();
    notify();
}

template <class Next>
inline void stream_core<Next>::mark_request_ended() noexcept {
    request_ended_ = true;
    if (state_ != websocket_state::closed) {
        if (!failure_) failure_ = make_error_code(websocket_errc::request_ended);
        state_ = websocket_state::aborted;
    }
}

template <class Next>
inline void stream_core<Next>::abort() noexcept {
    if (!can_start_here()) {
        asio::post(next_.get_executor(), [self = this->shared_from_this()] { self->abort(); });
        return;
    }
    abort_now(make_error_code(websocket_errc::aborted));
}

// Drops the connection at once: pending operations end, and they and every later one fail with
// `reason` (unless the connection had failed already).
template <class Next>
inline void stream_core<Next>::abort_now(std::error_code reason) noexcept {
    if (!failure_) failure_ = reason;
    if (state_ != websocket_state::closed) state_ = websocket_state::aborted;
    close_now();
    deadline_.cancel();
    notify();
}

// The peer's close frame ends the receive; `gathered` is what receive_message had collected of an
// unfinished message, handed over with the close (the result's count).
template <class Next>
inline awaitable<receive_result> stream_core<Next>::on_close_frame(const std::byte* payload, std::size_t size,
                                                                   std::size_t gathered) {
    if (failure_) co_await fail_transport({});  // the peer answers a failure of ours (a slow reader)
    close_status failure = close_status::protocol_error;
    const auto parsed = parse_close_payload(payload, size, failure);
    if (!parsed) {
        co_await fail(failure == close_status::invalid_payload_data ? websocket_errc::invalid_payload_data
                                                                     : websocket_errc::protocol_error,
                      failure == close_status::invalid_payload_data ? "invalid UTF-8 in a close reason"
                                                                     : "invalid close frame payload");
    }
    close_received_ = true;
    receive_result result{gathered, message_type::close, true, parsed->status, std::string(parsed->reason)};
    state_ = close_sent_ ? websocket_state::closed : websocket_state::close_received;
    notify();
    co_return result;
}

// _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): send the matching close frame while the
// transport allows, close the transport, and throw.
template <class Next>
inline awaitable<void> stream_core<Next>::fail(websocket_errc errc, std::string detail) {
    if (!failure_) {
        failure_ = make_error_code(errc);
        state_ = websocket_state::aborted;
        try {
            if (!close_sent_) {
                close_sent_ = true;
                queue_close_frame(close_code_for(errc), close_reason_for(detail));
                arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
                co_await wait_until_flushed();
                disarm_deadline();
            }
            co_await linger_and_close(true);
        } catch (const std::system_error&) {
            close_now();  // the caller canceled the receive: the close frame may not have left
        }
        notify();
    }
    throw websocket_error(failure_, detail);
}

template <class Next>
inline awaitable<void> stream_core<Next>::fail_transport(std::error_code ec) {
    if (!failure_) failure_ = make_error_code(map_transport_error(ec));
    state_ = websocket_state::aborted;
    close_now();
    notify();
    throw websocket_error(failure_);
    co_return;
}

// A peer that reads too slowly fails the connection from the sending side, with 1008: what it has
// not taken is dropped, so our close frame follows the write in flight, and the transport is dropped
// after close_timeout unless a pending receive sees the peer's close or end first. Every send and
// receive pending or to come throws `errc`.
template <class Next>
inline void stream_core<Next>::fail_slow_consumer(websocket_errc errc) {
    if (failure_) return;
    failure_ = make_error_code(errc);
    state_ = websocket_state::aborted;
    if (!close_sent_) {
        close_sent_ = true;
        out_.clear();
        if (shared_) shared_->discard_queued();
        queue_close_frame(close_code_for(errc), errc == websocket_errc::send_timeout
                                                    ? "the peer did not read within the send timeout"
                                                    : "the peer reads too slowly: send queue full");
        arm_deadline(options_.close_timeout, errc);
    }
    notify();
}

template <class Next>
inline void stream_core<Next>::throw_if_send_queue_full() {
    if (out_.size() <= options_.max_send_queue_bytes) return;
    fail_slow_consumer(websocket_errc::send_queue_full);
    throw websocket_error(failure_, "more than " + std::to_string(options_.max_send_queue_bytes) +
                                        " bytes were queued for a peer that reads too slowly");
}

template <class Next>
inline websocket_errc stream_core<Next>::map_transport_error(std::error_code ec) const noexcept {
    if (failure_ && failure_.category() == websocket_category())
        return static_cast<websocket_errc>(failure_.value());
    if (deadline_fired_) return *deadline_fired_;
    (void)ec;
    return websocket_errc::connection_closed_prematurely;
}

// The transport's end after the close handshake (or a failure). A server half-closes first, as RFC
// 6455 §7.1.1 asks, so the client sees end-of-stream right after the close frame; a client waits for
// the server to do so, then ends its side in kind (over TLS, its close_notify answers the server's).
// Either way we read until the peer's end (bounded) instead of closing on unread data, which would
// send RST and could destroy our close frame in flight.
template <class Next>
inline awaitable<void> stream_core<Next>::linger_and_close(bool shutdown_first) {
    if (!duplex::detail::transport_is_open(next_)) co_return;
    arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
    if (shutdown_first) co_await duplex::detail::async_shutdown_send(next_);
    std::error_code ec;
    while (!ec) {
        rx_begin_ = rx_end_ = 0;
        ec = co_await read_more();
    }
    if (!shutdown_first && ec == asio::error::eof) co_await duplex::detail::async_shutdown_send(next_);
    disarm_deadline();
    close_now();
}

template <class Next>
inline void stream_core<Next>::queue_close_frame(close_status status, std::string_view reason) {
    std::array<std::byte, max_control_payload> payload;
    std::size_t size = 0;
    if (status != close_status::empty) {
        const auto code = static_cast<std::uint16_t>(status);
        payload[0] = std::byte(code >> 8);
        payload[1] = std::byte(code & 0xFF);
        if (!reason.empty()) std::memcpy(payload.data() + 2, reason.data(), reason.size());  // data() may be null
        size = 2 + reason.size();
    }
    queue_frame(opcode::close, payload.data(), size);
}

// The state becomes closed only once our answer to the peer's close is written (close() and
// close_output() do that), so a failed write leaves it aborted, not closed.
template <class Next>
inline void stream_core<Next>::queue_close(close_status status, std::string_view description) {
    close_sent_ = true;
    if (!close_received_) state_ = websocket_state::close_sent;
    queue_close_frame(status, description);
}

// Closes the transport at once; pending reads and writes end with operation_aborted.
template <class Next>
inline void stream_core<Next>::close_now() noexcept {
    duplex::detail::close_transport(next_);
    if (keep_alive_timer_) keep_alive_timer_->cancel();
    if (send_timer_) send_timer_->cancel();
}

}  // namespace duplex::ws::detail
