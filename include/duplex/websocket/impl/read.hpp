// receive for ws::stream: reading from the transport, frame parsing and validation, unmasking, UTF-8
// checks and decompression into the caller's buffer, and receive_message's whole-message gathering.
// parse_step decides everything it can from what is buffered without suspending; next_piece is the
// thin coroutine that waits when parse_step says so.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

template <class Next>
inline awaitable<std::error_code> stream_core<Next>::read_more() {
    make_room_to_read();
    auto [ec, n] = co_await next_.async_read_some(read_space(), duplex::detail::use_nothrow_awaitable);
    rx_end_ += n;
    co_return after_read(ec, n);
}

// Before a read: an empty buffer starts over; a full one moves its partial frame to the front.
template <class Next>
inline void stream_core<Next>::make_room_to_read() {
    take_receive_buffer();
    if (rx_begin_ == rx_end_) {
        rx_begin_ = rx_end_ = 0;
    } else if (rx_end_ == rx_capacity_) {
        std::memmove(rx_.get(), rx_.get() + rx_begin_, rx_end_ - rx_begin_);
        rx_end_ -= rx_begin_;
        rx_begin_ = 0;
    }
}

// Whether the next read of a quiet connection waits for data without a buffer, freeing its own (see
// stream_options::release_receive_buffer_after). Only with the buffer empty, and only over a socket.
template <class Next>
inline bool stream_core<Next>::wait_without_buffer() {
    if constexpr (duplex::detail::peekable_socket<Next>) {
        if (!measures_read_waits() || !receive_quiet_ || rx_begin_ != rx_end_) return false;
        rx_.reset();
        rx_begin_ = rx_end_ = 0;
        return true;
    } else {
        return false;
    }
}

// A read that waited release_receive_buffer_after marks the connection quiet. The clock is read only
// where that can happen.
template <class Next>
inline bool stream_core<Next>::measures_read_waits() const noexcept {
    return duplex::detail::peekable_socket<Next> &&
           options_.release_receive_buffer_after != std::chrono::steady_clock::duration::max();
}

template <class Next>
inline std::chrono::steady_clock::duration stream_core<Next>::read_wait_clock() const noexcept {
    return measures_read_waits() ? duplex::detail::coarse_now() : std::chrono::steady_clock::duration{};
}

template <class Next>
inline void stream_core<Next>::note_read_wait(std::chrono::steady_clock::duration started) noexcept {
    if (measures_read_waits())
        receive_quiet_ = duplex::detail::coarse_now() - started >= options_.release_receive_buffer_after;
}

// After a read of `n` bytes: the error, with end of stream as asio::error::eof.
template <class Next>
inline std::error_code stream_core<Next>::after_read(std::error_code ec, std::size_t n) noexcept {
    if (!ec && n == 0) ec = asio::error::eof;
    if (n != 0 && keep_alive_timeout_ > std::chrono::steady_clock::duration::zero()) {
        last_received_ = std::chrono::steady_clock::now();
        awaiting_keep_alive_answer_ = false;
    }
    return ec;
}

// The heart of receive: delivers the next piece of data, handling control frames on the way. With
// `receive_call` it is a whole receive() (state checks and the receive-in-progress flag included).
//
// Its frame must stay small: asio recycles coroutine frames of up to 1,020 bytes (a couple per thread)
// and allocates bigger ones on every call, and GCC gives every co_await its own slots in the frame.
// So the deciding is done by parse_step without suspending, and this coroutine has one co_await per
// kind of wait: reading, the send queue, failing, and the peer's close frame.
template <class Next>
inline awaitable<receive_result> stream_core<Next>::next_piece(asio::mutable_buffer buffer, bool receive_call) {
    // See "Lifetime" in stream_core; taken before the first wait only, as in send.
    std::shared_ptr<stream_core> keep_alive;
    std::optional<receive_guard> receiving;
    if (receive_call) {
        check_can_receive();
        receiving.emplace(*this);
    }
    auto step = parse_step(buffer);
    for (;;) {
        if (step.what == step_action::deliver)
            co_return receive_result{step.count, message_kind_, step.end_of_message, std::nullopt, {}};
        if (receive_call && !keep_alive) keep_alive = this->shared_from_this();
        if (step.what == step_action::fail) co_await fail(step.errc, std::move(step.detail));
        if (step.what == step_action::close_frame) co_return co_await on_close_frame(step.payload, step.count);

        if (out_.size() >= options_.send_queue_high_water || idle_reading_) {
            const bool canceled = co_await wait_before_reading();
            if (canceled) receive_canceled();
            throw_if_failed();
            step = parse_step(buffer);  // the keep-alive's read may have brought data
            continue;
        }
        throw_if_failed();
        const bool into_caller = step.what == step_action::read_into_caller;
        const bool peek = !into_caller && wait_without_buffer();
        if (!into_caller && !peek) make_room_to_read();
        auto space = into_caller ? asio::buffer(buffer.data(), step.count) : read_space();
        if (peek) space = asio::buffer(&peeked_, 1);
        const auto read_started = read_wait_clock();
        auto [read_error, n] = co_await read_some(space, peek);
        const auto ec = after_read(read_error, n);
        if (ec) {
            // Our own reasons to stop a read (abort, a deadline, the keep-alive) set failure_ or
            // deadline_fired_ first; an operation_aborted without them is the caller's cancellation.
            if (read_error == asio::error::operation_aborted && !failure_ && !deadline_fired_) receive_canceled();
            co_await fail_transport(ec);
        }
        if (peek) {
            receive_quiet_ = false;  // data came: read it (the peeked byte is still in the socket)
            continue;
        }
        note_read_wait(read_started);
        // (if/else, not ?:, for GCC 12: a conditional of class type in a coroutine is best avoided)
        if (into_caller) {
            step = took_payload_directly(static_cast<std::byte*>(buffer.data()), n);
        } else {
            rx_end_ += n;
            step = parse_step(buffer);
        }
    }
}

// Before receive reads: a read the keep-alive started must end first (it reads into the same buffer),
// and past the send queue's high-water mark receive stops reading until the queue drains: a peer that
// makes us answer (pings) without reading our answers would otherwise grow the queue without bound.
// True when the caller canceled the receive meanwhile.
template <class Next>
inline awaitable<bool> stream_core<Next>::wait_before_reading() {
    std::optional<peer_wait> waiting;
    if (out_.size() >= options_.send_queue_high_water) waiting.emplace(*this);
    while ((idle_reading_ || out_.size() >= options_.send_queue_high_water) && !failure_) {
        co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable);
        // Checked here, not in a helper coroutine: once the caller has canceled, Asio throws at every
        // co_await of an awaitable, ours included.
        const asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
        if (cancellation.cancelled() != asio::cancellation_type::none) co_return true;
    }
    co_return false;
}

// A receive canceled by its caller (per-operation cancellation) consumed nothing of the message it
// waited for, so the socket stays usable and the next receive gets that message whole. Only when an
// earlier receive delivered part of the message is the connection aborted: the caller gave up on a
// message whose start it holds, and a later receive would hand it the rest as if it were whole.
template <class Next>
[[noreturn]] inline void stream_core<Next>::receive_canceled() {
    if (partly_delivered_) {
        abort_now(make_error_code(websocket_errc::aborted));
        throw websocket_error(asio::error::operation_aborted,
                              "receive canceled in the middle of a message; the connection was aborted");
    }
    throw websocket_error(asio::error::operation_aborted, "receive canceled");
}

template <class Next>
inline auto stream_core<Next>::delivered(std::size_t count, bool end_of_message) -> receive_step {
    if (end_of_message) {
        if (!end_message()) return failure(websocket_errc::invalid_payload_data, incomplete_utf8);
    } else if (count != 0) {
        partly_delivered_ = true;
    }
    return {step_action::deliver, count, end_of_message};
}

// `count` bytes of the current (uncompressed) frame's payload are in the caller's buffer, unmasked.
template <class Next>
inline auto stream_core<Next>::took_payload(const std::byte* destination, std::size_t count) -> receive_step {
    frame_remaining_ -= count;
    frame_offset_ += count;
    if (message_kind_ == message_type::text && !utf8_.feed(destination, count))
        return failure(websocket_errc::invalid_payload_data, "invalid UTF-8 in a text message");
    if (frame_remaining_ == 0) in_frame_ = false;
    return delivered(count, frame_remaining_ == 0 && frame_.fin);
}

template <class Next>
inline auto stream_core<Next>::took_payload_directly(std::byte* destination, std::size_t count) -> receive_step {
    if (frame_.masked) apply_mask(destination, count, frame_.key, frame_offset_);
    return took_payload(destination, count);
}

// Everything receive can do with what is buffered, without waiting: validates headers, answers pings,
// and delivers data into `buffer`; says what to wait for when that is all.
template <class Next>
inline auto stream_core<Next>::parse_step(asio::mutable_buffer buffer) -> receive_step {
    for (;;) {
        if (!in_frame_) {
            frame_header header;
            const auto decoded = decode_header(rx_.get() + rx_begin_, rx_end_ - rx_begin_, header);
            if (decoded.status == decode_status::need_more) return {step_action::read};
            if (decoded.status == decode_status::length_too_large)
                return failure(websocket_errc::protocol_error, "frame length has its most significant bit set");
            if (auto violation = header_violation(header)) return failure(violation->errc, std::move(violation->detail));

            if (is_control(header.op)) {
                // Whole control frames only: the header is decoded again once the payload is in.
                if (rx_end_ - rx_begin_ - decoded.header_size < header.payload_length) return {step_action::read};
                if (header.op == opcode::ping && !close_sent_) throw_if_send_queue_full();
                if (const auto* close_payload = take_control_frame(header, decoded.header_size))
                    return {step_action::close_frame, static_cast<std::size_t>(header.payload_length), false,
                            close_payload};
                continue;
            }

            rx_begin_ += decoded.header_size;
            if (header.op != opcode::continuation) {
                in_message_ = true;
                message_kind_ = header.op == opcode::text ? message_type::text : message_type::binary;
                message_size_ = 0;
                message_fragments_ = 0;
                receive_compressed_ = header.rsv1;
                utf8_.reset();
            }
            message_size_ += header.payload_length;
            ++message_fragments_;
            frame_ = header;
            frame_remaining_ = header.payload_length;
            frame_offset_ = 0;
            rx_unmasked_ = 0;
            in_frame_ = true;
            if (frame_remaining_ == 0) {
                // An empty fragment carries nothing to deliver; an empty final frame of a compressed
                // message still ends the compressed data, which the codec must see.
                if (!header.fin) {
                    in_frame_ = false;
                    continue;
                }
                if (!receive_compressed_) {
                    in_frame_ = false;
                    return delivered(0, true);
                }
            }
            continue;
        }

        if (receive_compressed_) {
            // A zero-byte receive only waits for input (the codec cannot be asked for 0 bytes).
            if (buffer.size() == 0) {
                if (rx_begin_ == rx_end_ && frame_remaining_ != 0) return {step_action::read};
                return {step_action::deliver, 0, false};
            }
            auto piece = decompress_piece(buffer);
            if (piece.status == piece_status::need_input) return {step_action::read};
            if (piece.status == piece_status::next_frame) continue;
            if (piece.status == piece_status::corrupt)
                return failure(websocket_errc::invalid_payload_data, "invalid compressed data in a message");
            if (piece.status == piece_status::too_big)
                return failure(websocket_errc::message_too_big,
                               "message exceeds the maximum size of " + std::to_string(message_limit_) + " bytes");
            if (message_kind_ == message_type::text && !utf8_.feed(static_cast<const std::byte*>(buffer.data()), piece.count))
                return failure(websocket_errc::invalid_payload_data, "invalid UTF-8 in a text message");
            return delivered(piece.count, piece.status == piece_status::end_of_message);
        }

        // Inside a data frame's payload.
        const auto wanted = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, buffer.size()));
        auto* destination = static_cast<std::byte*>(buffer.data());
        if (rx_begin_ != rx_end_) {
            const auto count = std::min(wanted, rx_end_ - rx_begin_);
            if (frame_.masked)
                copy_masked(destination, rx_.get() + rx_begin_, count, frame_.key, frame_offset_);
            else
                std::memcpy(destination, rx_.get() + rx_begin_, count);
            rx_begin_ += count;
            return took_payload(destination, count);
        }
        // A large payload goes straight into the caller's buffer, never past the frame's end.
        if (wanted >= rx_capacity_) return {step_action::read_into_caller, wanted};
        return {step_action::read};
    }
}

// Consumes the whole control frame at rx_begin_ (its header decoded, its payload buffered), answering a
// ping; returns a close frame's payload for the caller to handle, else null.
template <class Next>
inline const std::byte* stream_core<Next>::take_control_frame(const frame_header& header, std::size_t header_size) {
    rx_begin_ += header_size;
    auto* payload = rx_.get() + rx_begin_;
    const auto size = static_cast<std::size_t>(header.payload_length);
    rx_begin_ += size;
    if (header.masked) apply_mask(payload, size, header.key);
    if (header.op == opcode::ping && !close_sent_) queue_frame(opcode::pong, payload, size);
    return header.op == opcode::close ? payload : nullptr;
}

// With a keep-alive timeout and no receive pending, the keep-alive reads the peer's answer itself, so a
// handler that only sends (a background processor) still learns that its peer is gone. What arrives
// stays buffered for the next receive, except pongs (dropped) and pings (answered) at its front; a
// receive started meanwhile waits for the read (wait_before_reading). Nothing is read while the buffer
// is full of what the next receive will take; the keep-alive timeout then cannot judge the peer, and
// does not fail it (the peer did send, we did not take it).
template <class Next>
inline void stream_core<Next>::read_while_idle() {
    if (receiving_ || idle_reading_ || failure_ || close_received_ || state_ != websocket_state::open) return;
    make_room_to_read();
    const auto space = read_space();
    idle_read_blocked_ = space.size() == 0;
    if (idle_read_blocked_) return;
    idle_reading_ = true;
    next_.async_read_some(space, asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                                      [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                                                          self->on_idle_read(ec, n);
                                                      }));
}

template <class Next>
inline void stream_core<Next>::on_idle_read(std::error_code ec, std::size_t n) {
    idle_reading_ = false;
    rx_end_ += n;
    if (const auto error = after_read(ec, n)) {
        // The peer is gone (or we closed the transport ourselves, having set failure_ already).
        if (!failure_) abort_now(make_error_code(map_transport_error(error)));
    } else {
        take_idle_control_frames();
    }
    notify();
}

// The pings and pongs at the front of the buffer, between messages; anything else (data, a close
// frame, a frame that breaks the rules, a ping we could not queue the answer of) is left for receive.
template <class Next>
inline void stream_core<Next>::take_idle_control_frames() {
    while (!in_frame_) {
        frame_header header;
        const auto decoded = decode_header(rx_.get() + rx_begin_, rx_end_ - rx_begin_, header);
        if (decoded.status != decode_status::ok || (header.op != opcode::ping && header.op != opcode::pong)) break;
        if (header_violation(header) || rx_end_ - rx_begin_ - decoded.header_size < header.payload_length) break;
        if (header.op == opcode::ping && out_.size() > options_.max_send_queue_bytes) break;
        take_control_frame(header, decoded.header_size);
    }
    if (rx_begin_ == rx_end_ && measures_read_waits()) {  // nothing left: a quiet connection holds no buffer
        rx_.reset();
        rx_begin_ = rx_end_ = 0;
    }
}

// One step of a compressed frame: the buffered part of its payload is unmasked in place (once; a
// chunk the codec did not take stays unmasked for the next call) and decompressed into the caller's
// buffer. Compressed bytes are never read straight into the caller's buffer: the output goes there.
template <class Next>
inline auto stream_core<Next>::decompress_piece(asio::mutable_buffer buffer) -> decompressed_piece {
    const auto available = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, rx_end_ - rx_begin_));
    if (available == 0 && frame_remaining_ != 0) return {piece_status::need_input};
    auto* input = rx_.get() + rx_begin_;
    if (frame_.masked && rx_unmasked_ < available)
        apply_mask(input + rx_unmasked_, available - rx_unmasked_, frame_.key,
                   static_cast<std::size_t>(frame_offset_) + rx_unmasked_);
    rx_unmasked_ = available;
    const bool ends_message = frame_.fin && available == frame_remaining_;
    const auto r = compression_->decompress_some(
        std::span<const std::byte>(input, available), ends_message,
        std::span<std::byte>(static_cast<std::byte*>(buffer.data()), buffer.size()), message_limit_);
    rx_begin_ += r.consumed;
    rx_unmasked_ -= r.consumed;
    frame_remaining_ -= r.consumed;
    frame_offset_ += r.consumed;
    switch (r.status) {
    case duplex::deflate::decompress_status::corrupt: return {piece_status::corrupt};
    case duplex::deflate::decompress_status::too_big: return {piece_status::too_big};
    case duplex::deflate::decompress_status::end_of_message:
        in_frame_ = false;
        return {piece_status::end_of_message, r.produced};
    case duplex::deflate::decompress_status::more: break;
    }
    // A non-final frame is done once its payload is taken: what the codec still holds comes out
    // with the next frame (or its empty final frame).
    if (frame_remaining_ == 0 && !frame_.fin) in_frame_ = false;
    if (r.produced != 0 || buffer.size() == 0) return {piece_status::delivered, r.produced};
    if (!in_frame_) return {piece_status::next_frame};
    return {piece_status::need_input};
}

// The protocol rules a header must follow, given our role and where we are in a message: the first
// one it breaks, if any.
template <class Next>
inline auto stream_core<Next>::header_violation(const frame_header& h) const -> std::optional<violation> {
    using enum websocket_errc;
    if (h.rsv2 || h.rsv3 || (h.rsv1 && !compression_))
        return violation{protocol_error, "reserved bits set without a negotiated extension"};
    if (!is_known(h.op)) return violation{protocol_error, "reserved opcode"};
    // RFC 7692 §6.1: RSV1 marks a compressed message on its first frame, and nowhere else.
    if (h.rsv1 && is_control(h.op)) return violation{protocol_error, "RSV1 set on a control frame"};
    if (h.rsv1 && h.op == opcode::continuation) return violation{protocol_error, "RSV1 set on a continuation frame"};
    if (role_ == role::server && !h.masked) return violation{protocol_error, "a client sent an unmasked frame"};
    if (role_ == role::client && h.masked) return violation{protocol_error, "a server sent a masked frame"};
    if (is_control(h.op)) {
        if (!h.fin) return violation{protocol_error, "fragmented control frame"};
        if (h.payload_length > max_control_payload)
            return violation{protocol_error, "control frame payload over 125 bytes"};
        return std::nullopt;
    }
    if (h.op == opcode::continuation && !in_message_)
        return violation{protocol_error, "continuation frame without a message in progress"};
    if (h.op != opcode::continuation && in_message_)
        return violation{protocol_error, "new message started inside a fragmented message"};
    // A compressed message's limit is on its decompressed size, which the codec enforces (1009 too).
    const bool compressed = h.op == opcode::continuation ? receive_compressed_ : h.rsv1;
    const auto so_far = h.op == opcode::continuation ? message_size_ : 0;
    if (!compressed && so_far + h.payload_length > message_limit_)
        return violation{message_too_big,
                         "message exceeds the maximum size of " + std::to_string(message_limit_) + " bytes"};
    if (h.payload_length > options_.max_frame_size)
        return violation{frame_too_big,
                         "frame exceeds the maximum size of " + std::to_string(options_.max_frame_size) + " bytes"};
    const auto fragments = h.op == opcode::continuation ? message_fragments_ + 1 : 1;
    if (fragments > options_.max_fragments_per_message)
        return violation{too_many_fragments,
                         "message exceeds " + std::to_string(options_.max_fragments_per_message) + " fragments"};
    return std::nullopt;
}

// receive_message: one whole message into a growing container.
template <class Next>
template <class Container>
inline awaitable<receive_result> stream_core<Next>::receive_whole(Container& out, std::size_t max_size) {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    check_can_receive();
    receive_guard guard(*this);
    message_limit_ = std::min(max_size, options_.max_message_size);
    struct limit_reset {
        stream_core& self;
        ~limit_reset() { self.message_limit_ = self.options_.max_message_size; }
    } reset{*this};
    // The container grows geometrically and is trimmed once at the end, so a message of many small
    // frames costs linear time.
    out.clear();
    std::size_t filled = 0;
    for (;;) {
        if (filled == out.size()) {
            const auto room = message_limit_ - std::min(filled, message_limit_);
            out.resize(filled + std::max<std::size_t>(1, std::min(std::max(rx_capacity_, filled), room)));
        }
        auto piece = co_await next_piece(asio::buffer(out.data() + filled, out.size() - filled));
        filled += piece.count;
        if (piece.close_status || piece.end_of_message) {
            out.resize(filled);
            piece.count = filled;
            co_return piece;
        }
    }
}

}  // namespace duplex::ws::detail
