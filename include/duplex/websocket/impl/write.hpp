// send for ws::stream: frames are encoded (masked for clients, compressed when negotiated) into the
// send queue; the auto-cork flush writes everything queued until the connection next waits in one
// write; past send_queue_high_water a send waits for the peer (backpressure); large server payloads
// leave straight from the caller's buffer.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

template <class Next>
inline awaitable<void> stream_core<Next>::send(asio::const_buffer data, message_type type, bool end_of_message,
                                        message_flags flags) {
    // See "Lifetime" in stream_core. Taken before the first wait only: until then the caller's handle, held
    // across its co_await, keeps the core alive, and most sends never wait (two atomic operations saved).
    std::shared_ptr<stream_core> keep_alive;
    check_can_send();
    if (type == message_type::close)
        throw std::invalid_argument("send a close with close() or close_output(), not send()");
    throw_if_send_queue_full();
    opcode op = type == message_type::text ? opcode::text : opcode::binary;
    if (send_in_message_) {
        if (type != send_message_type_)
            throw std::invalid_argument("the message type changed in the middle of a fragmented message");
        op = opcode::continuation;
    } else {
        send_compressed_ = compression_ && !has_flag(flags, message_flags::disable_compression);
    }
    send_in_message_ = !end_of_message;
    send_message_type_ = type;

    frame_header header;
    header.fin = end_of_message;
    header.op = op;
    header.payload_length = data.size();
    if (role_ == role::client) {
        header.masked = true;
        header.key = duplex::detail::next_mask_key();
    }
    if (send_compressed_) {
        header.rsv1 = op != opcode::continuation;  // RFC 7692 §6: the first frame of the message only
        append_compressed_frame(header, data, end_of_message);
    } else if (role_ == role::server && data.size() >= options_.direct_write_threshold) {
        // A large server payload leaves from the caller's buffer in one gather write with its header
        // and anything queued before it. Written out here rather than in a coroutine of its own: a
        // nested frame would be one more for asio's two-block frame cache to miss (see next_piece).
        keep_alive = this->shared_from_this();
        const peer_wait waiting(*this);  // the send timeout covers the wait and the write
        while (writing_ && !failure_) co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
        throw_if_failed();
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
        if (ec) on_write_error(ec);
        else start_write();
        notify();
        throw_if_failed();
        co_return;
    } else {
        append_frame(header, data);
    }
    schedule_flush();
    if (out_.size() >= options_.send_queue_high_water) {
        keep_alive = this->shared_from_this();
        const peer_wait waiting(*this);
        while (out_.size() >= options_.send_queue_high_water && !failure_)
            co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
    }
    throw_if_failed();
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
    auto flush = asio::bind_allocator(duplex::detail::handler_allocator<void>{}, [self = this->shared_from_this()] {
        self->flush_posted_ = false;
        self->start_write();
    });
    // Posted to the io_context's own executor when that is what the transport runs on: through
    // any_io_executor, every post costs a wrapper from asio's small recycling cache as well. (Asio
    // 1.22's target<T>() does not check the type, so a strand would pass for it: compare first.)
    auto executor = next_.get_executor();
    if constexpr (std::is_same_v<decltype(executor), asio::any_io_executor>) {
        if (executor.target_type() == typeid(asio::io_context::executor_type)) {
            asio::post(*executor.template target<asio::io_context::executor_type>(), std::move(flush));
            return;
        }
    }
    asio::post(executor, std::move(flush));
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
