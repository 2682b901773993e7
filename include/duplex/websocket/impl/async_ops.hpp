// receive and send in the completion-token forms (async_receive, async_send with a callback, a future,
// deferred...): the same steps as the awaitable operations, driven by completion handlers, so that the
// common case — a piece delivered from what is buffered or after one read, a message queued at once —
// runs no coroutine and allocates nothing. What is rare (failing the connection, the peer's close frame,
// waiting on backpressure or on the keep-alive's read, a large direct write) runs the awaitable
// operation in a coroutine of its own.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

template <class Next>
inline void stream_core<Next>::start_token_receive(asio::mutable_buffer buffer,
                                                   duplex::detail::receive_completion completion, bool inline_ok) {
    if (!can_start_here()) {
        asio::post(next_.get_executor(), asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                                              [self = this->shared_from_this(), buffer, inline_ok,
                                                               c = std::move(completion)]() mutable {
                                                                  self->start_token_receive(buffer, std::move(c), inline_ok);
                                                              }));
        return;
    }
    receive_step step;
    try {
        check_can_receive();
        step = parse_step(buffer);
    } catch (...) {
        const auto ec = duplex::detail::error_code_of(std::current_exception());
        if (inline_ok) completion.complete(ec, receive_result{});
        else completion.post(ec, receive_result{});
        return;
    }
    receiving_ = true;
    token_receive_.buffer = buffer;
    token_receive_.completion = std::move(completion);
    continue_token_receive(std::move(step), !inline_ok);
}

// As next_piece's loop: deliver, read, or hand the rare cases to the coroutine.
template <class Next>
inline void stream_core<Next>::continue_token_receive(receive_step step, bool initiating) {
    if (step.what == step_action::deliver) {
        finish_token_receive({}, receive_result{step.count, message_kind_, step.end_of_message, std::nullopt, {}},
                             initiating);
        return;
    }
    const bool must_wait = out_.size() >= options_.send_queue_high_water || idle_reading_;
    if (step.what == step_action::fail || step.what == step_action::close_frame || must_wait || failure_) {
        asio::co_spawn(next_.get_executor(), finish_receive_in_coroutine(std::move(step)),
                       asio::bind_cancellation_slot(
                           token_receive_.completion.cancellation_slot(),
                           [self = this->shared_from_this()](std::exception_ptr failure, receive_result result) {
                               self->finish_token_receive(
                                   failure ? duplex::detail::error_code_of(failure) : std::error_code{},
                                   std::move(result), false);
                           }));
        return;
    }
    const bool into_caller = step.what == step_action::read_into_caller;
    const bool peek = !into_caller && wait_without_buffer();
    if (!into_caller && !peek) make_room_to_read();
    auto space = into_caller ? asio::buffer(token_receive_.buffer.data(), step.count) : read_space();
    if (peek) space = asio::buffer(&peeked_, 1);
    // Cancellation: any type while nothing of the message was delivered (the socket stays as it was);
    // after part of it, terminal only (it aborts the connection, see receive_canceled).
    auto slot = token_receive_.completion.cancellation_slot();
    if (partly_delivered_ && slot.is_connected())
        slot = asio::cancellation_state(slot, asio::enable_terminal_cancellation()).slot();
    auto on_read = asio::bind_cancellation_slot(
        slot,
        asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                             [self = this->shared_from_this(), into_caller, peek,
                              started = read_wait_clock()](std::error_code ec, std::size_t n) {
                                 self->on_token_receive_read(ec, n, into_caller, peek, started);
                             }));
    if constexpr (duplex::detail::peekable_socket<Next>)
        next_.async_receive(space, peek ? asio::socket_base::message_peek : 0, std::move(on_read));
    else
        next_.async_read_some(space, std::move(on_read));
}

template <class Next>
inline void stream_core<Next>::on_token_receive_read(std::error_code ec, std::size_t n, bool into_caller, bool peek,
                                                     std::chrono::steady_clock::duration started) {
    if (const auto error = after_read(ec, n)) {
        if (ec == asio::error::operation_aborted && !failure_ && !deadline_fired_) {
            // The caller canceled: as receive_canceled.
            if (partly_delivered_) abort_now(make_error_code(websocket_errc::aborted));
            finish_token_receive(asio::error::operation_aborted, {}, false);
            return;
        }
        if (!failure_) failure_ = make_error_code(map_transport_error(error));
        state_ = websocket_state::aborted;
        close_now();
        notify();
        finish_token_receive(failure_, {}, false);
        return;
    }
    receive_step step;
    try {
        if (peek) {
            receive_quiet_ = false;  // data came: read it (the peeked byte is still in the socket)
            step = parse_step(token_receive_.buffer);
        } else {
            note_read_wait(started);
            if (into_caller) {
                step = took_payload_directly(static_cast<std::byte*>(token_receive_.buffer.data()), n);
            } else {
                took_read(n);
                step = parse_step(token_receive_.buffer);
            }
        }
    } catch (...) {
        finish_token_receive(duplex::detail::error_code_of(std::current_exception()), {}, false);
        return;
    }
    continue_token_receive(std::move(step), false);
}

// The rare ends of a receive, as the awaitable receive has them.
template <class Next>
inline awaitable<receive_result> stream_core<Next>::finish_receive_in_coroutine(receive_step step) {
    if (step.what == step_action::fail) co_await fail(step.errc, std::move(step.detail));
    if (step.what == step_action::close_frame) co_return co_await on_close_frame(step.payload, step.count);
    co_return co_await next_piece(token_receive_.buffer, false);
}

template <class Next>
inline void stream_core<Next>::finish_token_receive(std::error_code ec, receive_result result, bool initiating) {
    receiving_ = false;
    auto completion = std::move(token_receive_.completion);
    if (awaiting_keep_alive_answer_) read_while_idle();
    if (initiating) completion.post(ec, std::move(result));
    else completion.complete(ec, std::move(result));
}

// A send queues its message at once and completes; a large direct write, or a queue past its
// high-water mark, goes on in a coroutine.
template <class Next>
inline void stream_core<Next>::start_send(asio::const_buffer data, message_type type, bool end_of_message,
                                          message_flags flags, duplex::detail::send_completion completion) {
    if (!can_start_here()) {
        asio::post(next_.get_executor(),
                   asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                        [self = this->shared_from_this(), data, type, end_of_message, flags,
                                         c = std::move(completion)]() mutable {
                                            self->start_send(data, type, end_of_message, flags, std::move(c));
                                        }));
        return;
    }
    awaitable<void> rest;
    try {
        bool compressed = false;
        const auto header = message_header(data, type, end_of_message, flags, compressed);
        if (takes_direct_write(data, compressed)) {
            rest = send(data, type, end_of_message, flags);
        } else {
            queue_message(header, data, type, compressed);
            if (out_.size() < options_.send_queue_high_water) {
                // Never inline (Asio's rule for a completion from within its initiation): with the flush
                // the message scheduled, which is posted already, or else posted on its own.
                if (flush_posted_ && !completes_after_flush_) completes_after_flush_ = std::move(completion);
                else completion.post(std::error_code{});
                return;
            }
            if (!send_room_waiter_) {
                wait_for_send_room(std::move(completion));
                return;
            }
            rest = wait_for_send_room();  // a second send held at once: rare enough for a coroutine
        }
    } catch (...) {
        completion.post(duplex::detail::error_code_of(std::current_exception()));
        return;
    }
    const auto slot = completion.cancellation_slot();
    asio::co_spawn(next_.get_executor(), std::move(rest),
                   asio::bind_cancellation_slot(slot, [c = std::move(completion)](std::exception_ptr failure) mutable {
                       c.complete(failure ? duplex::detail::error_code_of(failure) : std::error_code{});
                   }));
}

// Backpressure for a token form's send, without a coroutine: the completion waits in the core until a
// write brings the queue under its high-water mark (notify), the connection fails, or the caller
// cancels (the message stays queued and still goes out). It counts as waiting on the peer, for the
// send timeout.
template <class Next>
inline void stream_core<Next>::wait_for_send_room(duplex::detail::send_completion completion) {
    ++peer_waits_;
    watch_peer();
    auto slot = completion.cancellation_slot();
    send_room_waiter_ = std::move(completion);
    if (slot.is_connected()) {
        // Terminal or partial: the message stays queued (a side effect), so a total request is not taken.
        slot.assign([weak = this->weak_from_this()](asio::cancellation_type type) {
            if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial)) ==
                asio::cancellation_type::none)
                return;
            const auto self = weak.lock();
            if (!self || !self->send_room_waiter_) return;
            --self->peer_waits_;
            auto waiter = std::move(self->send_room_waiter_);
            waiter.complete(asio::error::operation_aborted);
        });
    }
}

template <class Next>
inline void stream_core<Next>::wake_send_room_waiter() noexcept {
    if (out_.size() >= options_.send_queue_high_water && !failure_) return;
    --peer_waits_;
    auto waiter = std::move(send_room_waiter_);
    waiter.complete(failure_);
}

}  // namespace duplex::ws::detail
