// send for ws::stream: frames are encoded (masked for clients, compressed when negotiated) into the
// send queue; the auto-cork flush writes everything queued until the connection next waits in one
// write; past send_queue_high_water a send waits for the peer (backpressure); large server payloads
// leave straight from the caller's buffer. The queue also takes frames encoded once for many
// connections (send_prepared, for pub/sub) and whole messages that must not wait (send_now, for the
// message-driven API); the same gather write sends them in order.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

// Cancellation (per-operation): a send waiting for a large write of another to finish has sent nothing
// and leaves the socket as it was; one canceled while its payload is being written aborts the
// connection (part of a frame may have left); one canceled while backpressure holds it has its message
// queued already, which still goes out.
template <class Next>
inline awaitable<void> stream_core<Next>::send(asio::const_buffer data, message_type type, bool end_of_message,
                                               message_flags flags) {
    bool compressed = false;
    auto header = message_header(data, type, end_of_message, flags, compressed);
    if (!takes_direct_write(data, compressed)) {
        queue_message(header, data, type, compressed);
        // Backpressure, waited for here rather than in wait_for_send_room: a nested coroutine would be a
        // third frame (with the timer's) for asio's two-block frame cache. The reference to the core is
        // taken before a wait only (most sends never wait; until then the caller's handle, held across
        // its co_await, keeps the core alive).
        if (queued_bytes() >= options_.send_queue_high_water) {
            const auto keep_alive = this->shared_from_this();
            const peer_wait waiting(*this);
            while (queued_bytes() >= options_.send_queue_high_water && !failure_) {
                co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
                const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
                if (cancellation.cancelled() != asio::cancellation_type::none) throw_send_canceled_while_queued();
            }
        }
        throw_if_failed();
        co_return;
    }
    // A large server payload leaves from the caller's buffer in one gather write with its header and
    // anything queued before it. Written out here rather than in a coroutine of its own: a nested frame
    // would be one more for asio's two-block frame cache to miss (see next_piece).
    const auto keep_alive = this->shared_from_this();
    const peer_wait waiting(*this);  // the send timeout covers the wait and the write
    while (writing_ && !failure_) {
        co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
        const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
        if (cancellation.cancelled() != asio::cancellation_type::none)
            throw websocket_error(asio::error::operation_aborted, "send canceled before its message was sent");
    }
    throw_if_failed();
    commit_message(type, end_of_message, false);
    writing_ = true;
    std::array<std::byte, max_header_size> header_bytes;
    const auto header_size = encode_header(header, header_bytes.data());
    swap_output_buffers();
    const std::array<asio::const_buffer, 3> queued_and_frame{asio::buffer(in_flight_),
                                                             asio::buffer(header_bytes.data(), header_size), data};
    std::span<const asio::const_buffer> buffers = queued_and_frame;
    if (shared_ && !shared_->in_flight.empty()) buffers = in_flight_buffers(buffers.subspan(1));
    release_deferred_messages();
    auto [ec, n] = co_await asio::async_write(next_, buffers, counting_transfer_all{write_progress_},
                                              duplex::detail::use_nothrow_awaitable);
    writing_ = false;
    finish_write();
    if (ec == asio::error::operation_aborted && !failure_ && !deadline_fired_) {
        abort_now(make_error_code(websocket_errc::aborted));
        throw websocket_error(asio::error::operation_aborted,
                              "send canceled while its message was being written; the connection was aborted");
    }
    if (ec) on_write_error(ec);
    else start_write();
    notify();
    drained();
    throw_if_failed();
}

// The frame header of the next piece of a message, after the checks a send makes (which throw); sets
// `compressed` when the message goes through the compressor. Changes nothing yet (commit_message does).
template <class Next>
inline frame_header stream_core<Next>::message_header(asio::const_buffer data, message_type type, bool end_of_message,
                                                       message_flags flags, bool& compressed) {
    check_can_send();
    if (type == message_type::close)
        throw std::invalid_argument("send a close with close() or close_output(), not send()");
    throw_if_send_queue_full();
    opcode op = type == message_type::text ? opcode::text : opcode::binary;
    compressed = send_compressed_;
    if (send_in_message_) {
        if (type != send_message_type_)
            throw std::invalid_argument("the message type changed in the middle of a fragmented message");
        op = opcode::continuation;
    } else {
        compressed = compression_ && !has_flag(flags, message_flags::disable_compression);
    }
    frame_header header;
    header.fin = end_of_message;
    header.op = op;
    header.payload_length = data.size();
    if (role_ == role::client) {
        header.masked = true;
        header.key = duplex::detail::next_mask_key();
    }
    if (compressed) header.rsv1 = op != opcode::continuation;  // RFC 7692 §6: the first frame of the message only
    return header;
}

// Large uncompressed server payloads are written from the caller's buffer (see send).
template <class Next>
inline bool stream_core<Next>::takes_direct_write(asio::const_buffer data, bool compressed) const noexcept {
    return !compressed && role_ == role::server && data.size() >= options_.direct_write_threshold;
}

template <class Next>
inline void stream_core<Next>::commit_message(message_type type, bool end_of_message, bool compressed) noexcept {
    send_in_message_ = !end_of_message;
    send_message_type_ = type;
    send_compressed_ = compressed;
}

// Encodes the piece into the send queue and schedules the flush.
template <class Next>
inline void stream_core<Next>::queue_message(const frame_header& header, asio::const_buffer data, message_type type,
                                             bool compressed) {
    commit_message(type, header.fin, compressed);
    if (compressed) append_compressed_frame(header, data, header.fin);
    else append_frame(header, data);
    release_deferred_messages();
    schedule_flush();
}

// Backpressure for the token forms (start_send): waits while the send queue is past its high-water
// mark. Canceled, the message already queued still goes out.
template <class Next>
inline awaitable<void> stream_core<Next>::wait_for_send_room() {
    const auto keep_alive = this->shared_from_this();
    const peer_wait waiting(*this);
    while (queued_bytes() >= options_.send_queue_high_water && !failure_) {
        co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
        const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
        if (cancellation.cancelled() != asio::cancellation_type::none) throw_send_canceled_while_queued();
    }
    throw_if_failed();
}

template <class Next>
[[noreturn]] inline void stream_core<Next>::throw_send_canceled_while_queued() {
    throw websocket_error(asio::error::operation_aborted,
                          "send canceled while the peer was slow to read; its message stays queued");
}

template <class Next>
inline void stream_core<Next>::append_frame(const frame_header& header, asio::const_buffer data) {
    const auto old_size = out_.size();
    out_.resize(old_size + max_header_size + data.size());
    const auto header_size = encode_header(header, out_.data() + old_size);
    auto* payload = out_.data() + old_size + header_size;
    const auto* source = static_cast<const std::byte*>(data.data());
    if (header.masked)
        copy_masked(payload, source, data.size(), header.key);
    else if (data.size() != 0)
        std::memcpy(payload, source, data.size());
    out_.resize(old_size + header_size + data.size());
}

// Compresses `data` straight into the output buffer behind room for the largest header, then moves
// the payload up against the header once its length is known (a few bytes, never a second copy).
// The compressor writes into the capacity the buffer already has; the buffer grows only when the
// compressed bytes themselves do not fit, never for the worst case zlib could produce.
template <class Next>
inline void stream_core<Next>::append_compressed_frame(frame_header header, asio::const_buffer data, bool end_of_message) {
    constexpr auto min_room = duplex::deflate::permessage::min_output_size;
    if (header.rsv1 && shared_ && shared_->reset_compressor) {  // a message's first frame
        compression_->reset_send_context();
        shared_->reset_compressor = false;
    }
    const auto old_size = out_.size();
    std::span input(static_cast<const std::byte*>(data.data()), data.size());
    auto used = old_size + max_header_size;
    try {
        for (;;) {
            const auto room = std::max<std::size_t>(min_room, input.size() + input.size() / 8 + 64);
            if (out_.capacity() < used + min_room) out_.reserve(std::max(2 * out_.capacity(), used + room));
            out_.resize(std::min(out_.capacity(), used + room));
            const auto r = compression_->compress_some(input, end_of_message, std::span(out_).subspan(used));
            used += r.produced;
            input = input.subspan(r.consumed);
            if (r.done) break;
        }
    } catch (...) {
        out_.resize(old_size);
        throw;
    }
    const auto size = used - old_size - max_header_size;
    header.payload_length = size;
    std::array<std::byte, max_header_size> header_bytes;
    const auto header_size = encode_header(header, header_bytes.data());
    auto* frame = out_.data() + old_size;
    if (header_size != max_header_size) std::memmove(frame + header_size, frame + max_header_size, size);
    std::memcpy(frame, header_bytes.data(), header_size);
    if (header.masked) apply_mask(frame + header_size, size, header.key);
    out_.resize(old_size + header_size + size);
}

template <class Next>
inline void stream_core<Next>::queue_frame(opcode op, const std::byte* payload, std::size_t size) {
    frame_header header;
    header.op = op;
    header.payload_length = size;
    if (role_ == role::client) {
        header.masked = true;
        header.key = duplex::detail::next_mask_key();
    }
    append_frame(header, asio::buffer(payload, size));
    schedule_flush();
}

// Auto-cork: the flush runs after the current handler yields, so every frame queued until the
// connection next has to wait leaves in one write.
template <class Next>
inline void stream_core<Next>::schedule_flush() {
    if (flush_posted_ || writing_ || nothing_queued()) return;
    flush_posted_ = true;
    auto flush = [self = this->shared_from_this()] {
        self->flush_posted_ = false;
        self->start_write();
        if (self->completes_after_flush_) std::exchange(self->completes_after_flush_, {}).complete(std::error_code{});
    };
    if (auto* io = home_.io_context()) duplex::detail::post_recycled(io->get_executor(), std::move(flush));
    else duplex::detail::post_recycled(next_.get_executor(), std::move(flush));
}

// The output buffer and the one being written trade places on every write, so each keeps the
// capacity the other reached: a burst that grew one no longer finds the other short later on.
template <class Next>
inline void stream_core<Next>::swap_output_buffers() {
    std::swap(out_, in_flight_);
    if (out_.capacity() < in_flight_.capacity()) out_.reserve(in_flight_.capacity());
    if (shared_) shared_->start_write();
}

template <class Next>
inline void stream_core<Next>::start_write() {
    if (writing_ || nothing_queued() || write_failed_) return;
    writing_ = true;
    swap_output_buffers();
    auto on_done = asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                        [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                                            self->on_written(ec);
                                        });
    if (!shared_ || shared_->in_flight.empty())
        asio::async_write(next_, asio::buffer(in_flight_), counting_transfer_all{write_progress_}, std::move(on_done));
    else
        asio::async_write(next_, in_flight_buffers({}), counting_transfer_all{write_progress_}, std::move(on_done));
}

template <class Next>
inline void stream_core<Next>::on_written(std::error_code ec) {
    writing_ = false;
    finish_write();
    if (ec) on_write_error(ec);
    else start_write();
    notify();
    drained();
}

template <class Next>
inline void stream_core<Next>::on_write_error(std::error_code ec) {
    write_failed_ = true;
    if (!failure_) failure_ = make_error_code(map_transport_error(ec));
    if (state_ != websocket_state::closed) state_ = websocket_state::aborted;
    out_.clear();
    if (shared_) shared_->discard_queued();
    close_now();
}

template <class Next>
inline awaitable<void> stream_core<Next>::wait_until_flushed() {
    schedule_flush();
    while ((writing_ || flush_posted_ || !nothing_queued()) && !write_failed_) co_await wait_for_event();
}

template <class Next>
inline awaitable<void> stream_core<Next>::flush_all() {
    co_await wait_until_flushed();
    throw_if_failed();
}

// ---- sends that never wait: pub/sub and the message-driven API ----

// A message for a socket that has sent (or is failing with) its close, or that is not open, goes nowhere.
template <class Next>
inline bool stream_core<Next>::takes_messages() const noexcept {
    const auto state = state_.load(std::memory_order_relaxed);
    return !request_ended_.load(std::memory_order_relaxed) && !failure_ && !close_sent_ &&
           (state == websocket_state::open || state == websocket_state::close_received);
}

// The socket is at its limit: the message is dropped, and with close_connection the socket fails as
// a slow reader does (1008, impl/close.hpp).
template <class Next>
inline send_status stream_core<Next>::meet_backpressure(const backpressure_options& limit) {
    if (limit.policy == backpressure_policy::close_connection) fail_slow_consumer(websocket_errc::send_queue_full);
    return send_status::dropped;
}

// Queues a message encoded once for many sockets. A server takes a reference to the frame (or, small,
// a copy): the compressed one prepared for its peer's window when it negotiated compression, else the
// plain one. A client must mask with a key of its own, so it encodes the payload like any send. Inside
// one of our own messages being sent in fragments, the message waits for that one's end.
template <class Next>
inline send_status stream_core<Next>::send_prepared(const prepared_message& message, const backpressure_options& limit) {
    if (!takes_messages()) return send_status::closed;
    if (queued_bytes() >= limit.max_backpressure_bytes) return meet_backpressure(limit);
    if (send_in_message_) {
        shared_frames().deferred.push_back(message);
        return send_status::queued;
    }
    queue_prepared(message);
    schedule_flush();
    return send_status::queued;
}

template <class Next>
inline void stream_core<Next>::queue_prepared(const prepared_message& message) {
    if (role_ == role::client) {
        bool compressed = false;
        const auto payload = message.payload();
        const auto data = asio::buffer(payload.data(), payload.size());
        const auto header = message_header(data, message.type(), true, message_flags::none, compressed);
        queue_message(header, data, message.type(), compressed);
        return;
    }
    if (compression_) {
        if (const auto* deflated = message.deflated_for(compression_->send_window_bits())) {
            place_shared_frame(*deflated);
            if (compression_->send_context_takeover()) shared_frames().reset_compressor = true;
            return;
        }
    }
    place_shared_frame(message.plain());
}

// Small frames are copied into the output buffer, larger ones referenced where they go in it
// (shared_frame_copy_limit says why).
template <class Next>
inline void stream_core<Next>::place_shared_frame(const shared_frame_ptr& frame) {
    const auto size = frame->size();
    if (size <= shared_frame_copy_limit) {
        const auto old_size = out_.size();
        out_.resize(old_size + size);
        std::memcpy(out_.data() + old_size, frame->data(), size);
        return;
    }
    auto& queue = shared_frames();
    queue.queued.push_back({out_.size(), frame});
    queue.queued_bytes += size;
}

// The messages that waited for the end of one of ours sent in fragments (send_prepared).
template <class Next>
inline void stream_core<Next>::release_deferred_messages() {
    if (!shared_ || shared_->deferred.empty() || send_in_message_) return;
    auto waiting = std::move(shared_->deferred);
    shared_->deferred.clear();
    if (takes_messages())
        for (const auto& message : waiting) queue_prepared(message);
    schedule_flush();
}

// A whole message of the caller's, copied into the queue at once (never written from the caller's
// buffer, which the caller may reuse when this returns); compressed when negotiated.
template <class Next>
inline send_status stream_core<Next>::send_now(asio::const_buffer data, message_type type, message_flags flags,
                                               const backpressure_options& limit) {
    if (!takes_messages()) return send_status::closed;
    if (send_in_message_) throw std::logic_error("send_now inside a message being sent in fragments");
    if (queued_bytes() >= limit.max_backpressure_bytes) return meet_backpressure(limit);
    bool compressed = false;
    const auto header = message_header(data, type, true, flags, compressed);
    queue_message(header, data, type, compressed);
    return send_status::queued;
}

template <class Next>
inline shared_frame_queue& stream_core<Next>::shared_frames() {
    if (!shared_) shared_ = std::make_unique<shared_frame_queue>();
    return *shared_;
}

// The buffers of the write that starts: the output buffer with the shared frames in flight in place,
// then `tail` (a large payload's header and bytes).
template <class Next>
inline std::span<const asio::const_buffer> stream_core<Next>::in_flight_buffers(std::span<const asio::const_buffer> tail) {
    return shared_frames().gather_with(asio::buffer(in_flight_), tail);
}

template <class Next>
inline void stream_core<Next>::finish_write() noexcept {
    in_flight_.clear();
    if (shared_) shared_->in_flight.clear();
}

// After a write: with nothing left to send, the one waiting for the queue to drain is told (once).
template <class Next>
inline void stream_core<Next>::drained() noexcept {
    if (!drain_listener_ || writing_ || !nothing_queued()) return;
    std::exchange(drain_listener_, nullptr)->on_drained();
}

}  // namespace duplex::ws::detail
