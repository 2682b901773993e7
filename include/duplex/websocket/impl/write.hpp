// send for ws::stream: frames are encoded (masked for clients, compressed when negotiated) into the
// send queue; the auto-cork flush writes everything queued until the connection next waits in one
// write; past send_queue_high_water a send waits for the peer (backpressure); large server payloads
// leave straight from the caller's buffer.
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
        if (out_.size() >= options_.send_queue_high_water) {
            const auto keep_alive = this->shared_from_this();
            const peer_wait waiting(*this);
            while (out_.size() >= options_.send_queue_high_water && !failure_) {
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
    const std::array<asio::const_buffer, 3> buffers{asio::buffer(in_flight_),
                                                    asio::buffer(header_bytes.data(), header_size), data};
    auto [ec, n] = co_await asio::async_write(next_, buffers, counting_transfer_all{write_progress_},
                                              duplex::detail::use_nothrow_awaitable);
    writing_ = false;
    in_flight_.clear();
    if (ec == asio::error::operation_aborted && !failure_ && !deadline_fired_) {
        abort_now(make_error_code(websocket_errc::aborted));
        throw websocket_error(asio::error::operation_aborted,
                              "send canceled while its message was being written; the connection was aborted");
    }
    if (ec) on_write_error(ec);
    else start_write();
    notify();
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
    schedule_flush();
}

// Backpressure for the token forms (start_send): waits while the send queue is past its high-water
// mark. Canceled, the message already queued still goes out.
template <class Next>
inline awaitable<void> stream_core<Next>::wait_for_send_room() {
    const auto keep_alive = this->shared_from_this();
    const peer_wait waiting(*this);
    while (out_.size() >= options_.send_queue_high_water && !failure_) {
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
    if (flush_posted_ || writing_ || out_.empty()) return;
    flush_posted_ = true;
    duplex::detail::post_recycled(next_.get_executor(), [self = this->shared_from_this()] {
        self->flush_posted_ = false;
        self->start_write();
    });
}

// The output buffer and the one being written trade places on every write, so each keeps the
// capacity the other reached: a burst that grew one no longer finds the other short later on.
template <class Next>
inline void stream_core<Next>::swap_output_buffers() {
    std::swap(out_, in_flight_);
    if (out_.capacity() < in_flight_.capacity()) out_.reserve(in_flight_.capacity());
}

template <class Next>
inline void stream_core<Next>::start_write() {
    if (writing_ || out_.empty() || write_failed_) return;
    writing_ = true;
    swap_output_buffers();
    asio::async_write(next_, asio::buffer(in_flight_), counting_transfer_all{write_progress_},
                      asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                           [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                                               self->on_written(ec);
                                           }));
}

template <class Next>
inline void stream_core<Next>::on_written(std::error_code ec) {
    writing_ = false;
    in_flight_.clear();
    if (ec) on_write_error(ec);
    else start_write();
    notify();
}

template <class Next>
inline void stream_core<Next>::on_write_error(std::error_code ec) {
    write_failed_ = true;
    if (!failure_) failure_ = make_error_code(map_transport_error(ec));
    if (state_ != websocket_state::closed) state_ = websocket_state::aborted;
    out_.clear();
    close_now();
}

template <class Next>
inline awaitable<void> stream_core<Next>::wait_until_flushed() {
    schedule_flush();
    while ((writing_ || flush_posted_ || !out_.empty()) && !write_failed_) co_await wait_for_event();
}

template <class Next>
inline awaitable<void> stream_core<Next>::flush_all() {
    co_await wait_until_flushed();
    throw_if_failed();
}

}  // namespace duplex::ws::detail
