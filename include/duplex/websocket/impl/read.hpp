// receive for ws::stream: reading from the transport, frame parsing and validation, unmasking, UTF-8
// checks and decompression into the caller's buffer, and receive_message's whole-message gathering.
// parse_step decides everything it can from what is buffered without suspending; next_piece is the
// thin coroutine that waits when parse_step says so.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

#if defined(__unix__)
#include <sys/socket.h>

#include <cerrno>
#endif

namespace duplex::ws::detail {

template <class Next>
inline awaitable<std::error_code> stream_core<Next>::read_more() {
    make_room_to_read();
    auto [ec, n] = co_await next_.async_read_some(read_space(), duplex::detail::use_nothrow_awaitable);
    took_read(n);
    co_return after_read(ec, n);
}

template <class Next>
inline void stream_core<Next>::release_receive_buffer() noexcept {
    rx_.reset();
    rx_begin_ = rx_end_ = 0;
    rx_capacity_ = rx_initial_;
    rx_filled_ = false;
}

// `n` bytes were read into read_space(). A read that filled the buffer, and was at least half of it,
// says the traffic brings more than the buffer holds: make_room_to_read grows it.
template <class Next>
inline void stream_core<Next>::took_read(std::size_t n) noexcept {
    rx_end_ += n;
    rx_filled_ = n != 0 && rx_end_ == rx_capacity_ && n * 2 >= rx_capacity_;
    read_again_now_ = rx_end_ == rx_capacity_;
}

// Before a read: a buffer that the last read filled doubles (up to rx_limit_); an empty buffer starts
// over; a full one moves its partial frame to the front.
template <class Next>
inline void stream_core<Next>::make_room_to_read() {
    take_receive_buffer();
    if (rx_filled_ && rx_capacity_ < rx_limit_) {
        const auto kept = rx_end_ - rx_begin_;
        const auto capacity = std::min(rx_capacity_ * 2, rx_limit_);
        auto larger = std::make_unique_for_overwrite<std::byte[]>(capacity);
        std::memcpy(larger.get(), rx_.get() + rx_begin_, kept);
        rx_ = std::move(larger);
        rx_capacity_ = capacity;
        rx_begin_ = 0;
        rx_end_ = kept;
        rx_filled_ = false;
    } else if (rx_begin_ == rx_end_) {
        rx_begin_ = rx_end_ = 0;
    } else if (rx_end_ == rx_capacity_) {
        std::memmove(rx_.get(), rx_.get() + rx_begin_, rx_end_ - rx_begin_);
        rx_end_ -= rx_begin_;
        rx_begin_ = 0;
    }
}

// A read without waiting for readiness, when the last one filled its space (the socket likely holds
// more): Asio would first go through its scheduler and epoll_wait, which at 64 KiB messages cost an
// epoll_wait per recv. TCP sockets only, at most max_reads_at_once in a row, and not while the send
// queue holds data (pongs, replies): the flush waits for the event loop, and reading on without it
// would let a pinging peer fill the queue without our answers ever leaving. False when the read would
// block (nothing was consumed) or was not tried: then the caller reads through Asio.
template <class Next>
inline bool stream_core<Next>::read_now(asio::mutable_buffer space, std::error_code& ec, std::size_t& n) {
#if defined(__unix__)
    if constexpr (duplex::detail::peekable_socket<Next>) {
        if (!read_again_now_ || reads_at_once_ >= max_reads_at_once || space.size() == 0 || !out_.empty()) {
            reads_at_once_ = 0;
            return false;
        }
        const auto r = ::recv(next_.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            reads_at_once_ = 0;
            return false;
        }
        ++reads_at_once_;
        ec = r < 0 ? std::error_code(errno, asio::error::get_system_category()) : std::error_code{};
        n = r < 0 ? 0 : static_cast<std::size_t>(r);
        return true;
    }
#endif
    (void)space, (void)ec, (void)n;
    return false;
}

// Whether the next read of a quiet connection waits for data without a buffer, freeing its own (see
// stream_options::release_receive_buffer_after). Only with the buffer empty, and only over a socket.
template <class Next>
inline bool stream_core<Next>::wait_without_buffer() {
    if constexpr (duplex::detail::peekable_socket<Next>) {
        if (!measures_read_waits() || !receive_quiet_ || rx_begin_ != rx_end_) return false;
        release_receive_buffer();
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
// `receive_call` it is a whole receive() (state checks and the receive-in-progress flag included); with
// a `whole` sink, a whole receive_message(): the message is read into the sink's container, grown to
// the frame's announced length (or geometrically, for compressed data) without zeroing, so that a
// large payload goes from the socket straight into it.
//
// Its frame must stay small: asio recycles coroutine frames of up to 1,020 bytes (a couple per thread)
// and allocates bigger ones on every call, and GCC gives every co_await its own slots in the frame.
// So the deciding is done by parse_step without suspending, and this coroutine has one co_await per
// kind of wait: reading, the send queue, failing, and the peer's close frame. receive_message runs in
// this same frame (no nested coroutine per message).
template <class Next>
inline awaitable<receive_result> stream_core<Next>::next_piece(asio::mutable_buffer buffer, bool receive_call,
                                                               message_sink whole) {
    // See "Lifetime" in stream_core; taken before the first wait only, as in send.
    std::shared_ptr<stream_core> keep_alive;
    std::optional<receive_guard> receiving;
    if (receive_call) {
        check_can_receive();
        receiving.emplace(*this);
    }
    std::size_t filled = 0;  // receive_message: bytes of the message in the container
    if (whole.container) {
        message_limit_ = std::min(whole.max_size, options_.max_message_size);
        whole.resize(whole.container, 0);
    }
    auto step = parse_step(buffer);
    for (;;) {
        if (step.what == step_action::deliver) {
            if (!whole.container)
                co_return receive_result{step.count, message_kind_, step.end_of_message, std::nullopt, {}};
            filled += step.count;
            if (step.end_of_message) {
                whole.resize(whole.container, filled);
                co_return receive_result{filled, message_kind_, true, std::nullopt, {}};
            }
            buffer += step.count;
            if (buffer.size() == 0) buffer = grow_message(whole, filled);
            step = parse_step(buffer);
            continue;
        }
        if (receive_call && !keep_alive) keep_alive = this->shared_from_this();
        if (step.what == step_action::fail) co_await fail(step.errc, std::move(step.detail));
        if (step.what == step_action::close_frame) {
            if (whole.container) whole.resize(whole.container, filled);
            co_return co_await on_close_frame(step.payload, step.count, filled);
        }

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
        std::error_code read_error;
        std::size_t n = 0;
        if (peek || !read_now(space, read_error, n)) {
            auto [e, count] = co_await read_some(space, peek);
            read_error = e;
            n = count;
        }
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
            read_again_now_ = n == space.size();
            step = took_payload_directly(static_cast<std::byte*>(buffer.data()), n);
        } else {
            took_read(n);
            step = parse_step(buffer);
        }
    }
}

// receive_message's next space: the container grows past the `filled` bytes by the rest of the frame
// whose header was decoded (its whole payload, at once), or else geometrically; never past the limit,
// but by one byte at least, so that a message at the limit still makes progress (and fails at the next
// header, or in the decompressor, with 1009).
template <class Next>
inline asio::mutable_buffer stream_core<Next>::grow_message(const message_sink& whole, std::size_t filled) {
    const auto room = message_limit_ - std::min(filled, message_limit_);
    std::size_t more;
    if (in_frame_ && !receive_compressed_ && frame_remaining_ != 0)
        more = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, room));
    else
        more = std::min(std::max(rx_capacity_, filled), room);
    more = std::max<std::size_t>(more, 1);
    auto* data = whole.resize(whole.container, filled + more);
    return asio::buffer(data + filled, more);
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

// `count` bytes of the current (uncompressed) frame's payload go from `source` (the receive buffer, or
// `destination` itself when they were read straight into the caller's buffer) into the caller's
// buffer, unmasked, and a text message's are validated as UTF-8. Text goes chunk by chunk, each
// validated right after it is unmasked, while it is still in the L1 cache: a 1 MiB text message is
// brought through the cache once instead of twice. With nothing to unmask or copy (a client's direct
// read) there is nothing to share a pass with, and the validator takes it whole.
template <class Next>
inline auto stream_core<Next>::took_payload(std::byte* destination, const std::byte* source, std::size_t count)
    -> receive_step {
    const bool text = message_kind_ == message_type::text;
    const bool in_place = source == destination && !frame_.masked;
    // with its source, well inside a 32 KiB L1 data cache
    const std::size_t chunk = text && !in_place ? 8 * 1024 : count;
    for (std::size_t done = 0; done < count;) {
        const auto n = std::min(chunk, count - done);
        const auto offset = static_cast<std::size_t>(frame_offset_ + done);
        if (frame_.masked) {
            if (source == destination) apply_mask(destination + done, n, frame_.key, offset);
            else copy_masked(destination + done, source + done, n, frame_.key, offset);
        } else if (source != destination) {
            std::memcpy(destination + done, source + done, n);
        }
        if (text && !utf8_.feed(destination + done, n))
            return failure(websocket_errc::invalid_payload_data, "invalid UTF-8 in a text message");
        done += n;
    }
    frame_remaining_ -= count;
    frame_offset_ += count;
    if (frame_remaining_ == 0) in_frame_ = false;
    return delivered(count, frame_remaining_ == 0 && frame_.fin);
}

template <class Next>
inline auto stream_core<Next>::took_payload_directly(std::byte* destination, std::size_t count) -> receive_step {
    return took_payload(destination, destination, count);
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
            const auto* source = rx_.get() + rx_begin_;
            rx_begin_ += count;
            return took_payload(destination, source, count);
        }
        // A large payload goes straight into the caller's buffer, never past the frame's end.
        if (wanted >= direct_read_threshold) return {step_action::read_into_caller, wanted};
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
    took_read(n);
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
    if (rx_begin_ == rx_end_ && measures_read_waits()) release_receive_buffer();  // a quiet connection holds none
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

}  // namespace duplex::ws::detail
