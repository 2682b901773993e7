// The timers of a ws::stream: keep-alive pings (and the keep-alive timeout), the send timeout that
// watches a peer we wait on, and the deadline that bounds the opening and closing handshakes. All are
// plain timer callbacks holding the core weakly: an idle connection keeps no coroutine alive.
#pragma once

#include <duplex/detail/socket_queue.hpp>
#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

template <class Next>
inline void stream_core<Next>::start_keep_alive(std::chrono::steady_clock::duration interval,
                                         std::chrono::steady_clock::duration timeout) {
    if (interval <= std::chrono::steady_clock::duration::zero() || keep_alive_timer_) return;
    keep_alive_timer_ = std::make_unique<asio::steady_timer>(next_.get_executor());
    keep_alive_interval_ = interval;
    keep_alive_timeout_ = timeout;
    if (state_ == websocket_state::open) wait_to_ping();
}

template <class Next>
inline void stream_core<Next>::watch_peer() {
    if (send_watch_armed_ || options_.send_timeout <= std::chrono::steady_clock::duration::zero() || failure_)
        return;
    if (!send_timer_) send_timer_ = std::make_unique<asio::steady_timer>(next_.get_executor());
    send_watch_armed_ = true;
    arm_send_timer();
}

// Progress is anything the peer took: a write of ours that completed, or, while none did, bytes of the
// kernel's send buffer that the peer acknowledged. A write waits until a good part of that buffer
// (megabytes, as TCP grows it) has drained, so a peer reading a steady few KiB/s may see no write of
// ours complete for minutes. The kernel's count is read once per arming, never per message.
template <class Next>
inline void stream_core<Next>::arm_send_timer() {
    watched_progress_ = write_progress_;
    const auto unacknowledged = duplex::detail::bytes_not_yet_acknowledged(next_);
    send_timer_->expires_after(options_.send_timeout);
    send_timer_->async_wait([weak = this->weak_from_this(), unacknowledged](std::error_code ec) {
        const auto self = weak.lock();
        if (!self) return;
        const auto took_queued_bytes = [&] {
            const auto now = duplex::detail::bytes_not_yet_acknowledged(self->next_);
            return unacknowledged && now && *now < *unacknowledged;
        };
        if (ec || self->peer_waits_ == 0 || self->failure_) {
            self->send_watch_armed_ = false;
        } else if (self->write_progress_ != self->watched_progress_ || took_queued_bytes()) {
            self->arm_send_timer();
        } else {
            self->send_watch_armed_ = false;
            self->fail_slow_consumer(websocket_errc::send_timeout);
        }
    });
}

// The keep-alive: a ping every interval, and with a timeout, a check after it that something arrived
// since the ping. Plain timer callbacks rather than a coroutine: an idle connection then holds one
// pending wait (about 100 bytes) instead of a spawned coroutine's frames (about 600). The callbacks
// hold the core weakly, so an idle keep-alive never keeps a dropped socket alive.
template <class Next>
inline void stream_core<Next>::wait_to_ping() {
    keep_alive_timer_->expires_after(keep_alive_interval_);
    keep_alive_timer_->async_wait(asio::bind_allocator(
        duplex::detail::handler_allocator<void>{}, [weak = this->weak_from_this()](std::error_code ec) {
            if (ec) return;  // cancelled: the connection is over
            if (auto self = weak.lock(); self && self->state_ == websocket_state::open) self->ping();
        }));
}

template <class Next>
inline void stream_core<Next>::ping() {
    const auto pinged_at = std::chrono::steady_clock::now();
    queue_frame(opcode::ping, nullptr, 0);
    if (keep_alive_timeout_ <= std::chrono::steady_clock::duration::zero()) {
        wait_to_ping();
        return;
    }
    // The answer is read by the pending receive, or else by the keep-alive itself (read_while_idle).
    awaiting_keep_alive_answer_ = true;
    read_while_idle();
    keep_alive_timer_->expires_after(keep_alive_timeout_);
    keep_alive_timer_->async_wait(asio::bind_allocator(
        duplex::detail::handler_allocator<void>{},
        [weak = this->weak_from_this(), pinged_at](std::error_code ec) {
            if (ec) return;
            const auto self = weak.lock();
            if (!self || self->state_ != websocket_state::open) return;
            self->awaiting_keep_alive_answer_ = false;
            const bool unjudged = !self->receiving_ && self->idle_read_blocked_;
            if (self->last_received_ >= pinged_at || unjudged) {
                self->wait_to_ping();
                return;
            }
            self->abort_now(make_error_code(websocket_errc::keep_alive_timeout));
        }));
}

// Bounds the handshake and the close: when the deadline passes, the transport is closed, which ends
// whatever read or write is pending, and the resulting error is reported as `reason`.
template <class Next>
inline void stream_core<Next>::arm_deadline(std::chrono::steady_clock::duration timeout, websocket_errc reason) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([weak = this->weak_from_this(), reason](std::error_code ec) {
        if (ec) return;
        if (auto self = weak.lock()) {
            self->deadline_fired_ = reason;
            self->close_now();
            self->notify();
        }
    });
}

}  // namespace duplex::ws::detail
