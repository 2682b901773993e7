// duplex::http2::tunnel — one HTTP/2 stream as an Asio stream (async_read_some, async_write_some, a
// half-close and a close), so that ws::stream<http2::tunnel> runs RFC 6455 over an RFC 8441 extended
// CONNECT knowing nothing of HTTP/2. The connection that owns the stream (the tunnel_host) feeds it the
// DATA it receives and drains what is written into its DATA frames.
//
// - Reading hands out the stream's DATA as it came (a WebSocket frame may span DATA frames, or share
//   one); only what a read has taken reopens the window (tunnel_host::tunnel_consumed), so a handler
//   that stops receiving stops its peer's stream and nothing else. END_STREAM reads as end of file, a
//   RST_STREAM (or the connection's end) as connection_reset once what came before it has been read.
// - A write completes once nghttp2 has taken all of it into DATA frames: a peer that does not open its
//   window holds the writer there, which is the WebSocket's backpressure.
// - The half-close (async_shutdown_send, after the close frame) puts END_STREAM on the last DATA frame
//   (RFC 8441 §5: "orderly TCP-level closures are represented as END_STREAM"), also when close() follows
//   before the frame went. close() on a stream still open otherwise resets it: RST_STREAM(CANCEL), or
//   NO_ERROR once our END_STREAM is out and only the peer's half remains (RFC 9113 §8.1).
//
// Everything runs on the connection's executor (one io_context thread, app/detail/app_core.hpp).
#pragma once

#include <duplex/config.hpp>
#include <duplex/websocket/detail/erased_handler.hpp>

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

namespace duplex::http2 {

// What a tunnel asks of the connection its stream belongs to.
class tunnel_host {
public:
    // `n` bytes of stream `id` were read: its window may reopen.
    virtual void tunnel_consumed(std::int32_t id, std::size_t n) = 0;
    // Stream `id` has data to send, or its end.
    virtual void tunnel_has_output(std::int32_t id) = 0;
    // Stream `id` is abandoned: RST_STREAM with `error_code`.
    virtual void tunnel_reset(std::int32_t id, std::uint32_t error_code) = 0;

protected:
    ~tunnel_host() = default;
};

// The state of one tunnelled stream, shared by the connection (which feeds it) and the tunnel handles.
class tunnel_state {
public:
    using completion = duplex::detail::erased_handler<void(std::error_code, std::size_t)>;

    tunnel_state(std::int32_t id, tunnel_host& host, asio::any_io_executor executor)
        : id_(id), host_(&host), executor_(std::move(executor)) {}

    std::int32_t id() const noexcept { return id_; }
    const asio::any_io_executor& executor() const noexcept { return executor_; }
    bool is_open() const noexcept { return !closed_; }

    // --- the connection's side ---

    // Payload of a DATA frame of the stream. Straight into a pending read when there is one.
    void deliver(std::span<const std::byte> data) {
        if (closed_) return;
        if (reader_ && inbound_begin_ == inbound_.size()) {
            const auto n = std::min(data.size(), read_into_.size());
            std::memcpy(read_into_.data(), data.data(), n);
            data = data.subspan(n);
            host_->tunnel_consumed(id_, n);
            reader_.post(std::error_code{}, n);
        }
        if (data.empty()) return;
        if (inbound_begin_ == inbound_.size()) inbound_.clear(), inbound_begin_ = 0;
        inbound_.insert(inbound_.end(), data.begin(), data.end());
    }

    // END_STREAM from the peer: reads end with eof once what came before is read.
    void end_of_input() {
        end_received_ = true;
        if (reader_ && inbound_begin_ == inbound_.size()) reader_.post(asio::error::eof, 0);
    }

    // The stream is gone: closed after both ends (error_code 0), reset by the peer, or the connection
    // ended. Pending operations end. What was received before a reset is still read first: a peer that
    // sends its Close frame and then RST_STREAM(CANCEL) at once (Chromium) has closed cleanly.
    void stream_closed(std::uint32_t error_code) {
        gone_ = true;
        if (error_code != NGHTTP2_NO_ERROR || !end_received_) failure_ = asio::error::connection_reset;
        closed_ = true;
        finish_pending(failure_ ? failure_ : std::error_code(asio::error::eof));
    }

    // nghttp2's data source: copies what a pending write holds into a DATA frame; defers while there is
    // nothing, and ends the stream once asked to and everything before it went.
    ssize_t produce(std::uint8_t* buffer, std::size_t length, std::uint32_t* data_flags) {
        std::size_t copied = 0;
        while (writer_ && copied < length) {
            auto& piece = pieces_[piece_index_];
            const auto n = std::min(length - copied, piece.size());
            std::memcpy(buffer + copied, piece.data(), n);
            piece += n;
            copied += n;
            if (piece.size() == 0 && ++piece_index_ == piece_count_) writer_.post(std::error_code{}, std::exchange(write_size_, 0));
        }
        if (copied != 0) return static_cast<ssize_t>(copied);
        if (end_requested_) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            end_sent_ = true;
            return 0;
        }
        return NGHTTP2_ERR_DEFERRED;
    }

    // --- the tunnel's side ---

    void start_read(asio::mutable_buffer into, completion handler) {
        if (inbound_begin_ != inbound_.size()) {
            const auto n = std::min(into.size(), inbound_.size() - inbound_begin_);
            std::memcpy(into.data(), inbound_.data() + inbound_begin_, n);
            inbound_begin_ += n;
            if (!gone_) host_->tunnel_consumed(id_, n);
            return handler.post(std::error_code{}, n);
        }
        if (failure_) return handler.post(failure_, 0);
        if (end_received_ || closed_) return handler.post(asio::error::eof, 0);
        if (into.size() == 0) return handler.post(std::error_code{}, 0);
        read_into_ = into;
        reader_ = std::move(handler);
    }

    template <class ConstBufferSequence>
    void start_write(const ConstBufferSequence& buffers, completion handler) {
        if (closed_ || end_requested_) return handler.post(closed_ && failure_ ? failure_ : asio::error::broken_pipe, 0);
        piece_count_ = piece_index_ = write_size_ = 0;
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            const asio::const_buffer piece(*it);
            if (piece.size() == 0) continue;
            if (piece_count_ == pieces_.size()) break;  // a write may take less than it is given
            pieces_[piece_count_++] = piece;
            write_size_ += piece.size();
        }
        if (write_size_ == 0) return handler.post(std::error_code{}, 0);
        writer_ = std::move(handler);
        host_->tunnel_has_output(id_);
    }

    void shutdown_send() {
        if (closed_ || end_requested_) return;
        end_requested_ = true;
        host_->tunnel_has_output(id_);
    }

    // No more I/O. A stream whose END_STREAM is asked for but not out yet (the WebSocket's lingering close
    // ends at once when the peer's END_STREAM came first) keeps it: the END_STREAM goes, and a peer that
    // has not ended its side by then is reset with NO_ERROR (reset_after_end). Any other open stream is
    // reset at once: CANCEL (an abort), or NO_ERROR when only the peer's half remains.
    void close() {
        if (closed_) return;
        closed_ = true;
        if (!gone_) {
            if (end_requested_ && !end_sent_) reset_after_end_ = !end_received_;
            else host_->tunnel_reset(id_, end_sent_ ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
        }
        finish_pending(asio::error::operation_aborted);
    }

    // After our END_STREAM went out: whether the stream is to be reset now (see close()).
    bool reset_after_end() const noexcept { return reset_after_end_ && !gone_; }

private:
    void finish_pending(std::error_code ec) {
        if (reader_) reader_.post(ec, 0);
        if (writer_) {
            write_size_ = 0;
            writer_.post(ec, 0);
        }
    }

    std::int32_t id_;
    tunnel_host* host_;
    asio::any_io_executor executor_;
    // Received and not yet read: [inbound_begin_, size()); at most the stream's window.
    std::vector<std::byte> inbound_;
    std::size_t inbound_begin_ = 0;
    completion reader_;
    asio::mutable_buffer read_into_;
    completion writer_;
    std::array<asio::const_buffer, 8> pieces_;
    std::size_t piece_count_ = 0, piece_index_ = 0, write_size_ = 0;
    std::error_code failure_;
    bool end_received_ = false;   // the peer's END_STREAM
    bool end_requested_ = false;  // our half-close, END_STREAM once the data before it went
    bool end_sent_ = false;
    bool reset_after_end_ = false;
    bool gone_ = false;    // nghttp2 closed the stream
    bool closed_ = false;  // no more I/O: gone, or closed by the tunnel
};

// The handle ws::stream holds: the Asio stream concept over a tunnel_state, and its own lowest layer
// (shutdown, close, is_open) for the WebSocket's end of the transport.
class tunnel {
public:
    using executor_type = asio::any_io_executor;
    using lowest_layer_type = tunnel;
    using shutdown_type = asio::socket_base::shutdown_type;
    static constexpr shutdown_type shutdown_send = asio::socket_base::shutdown_send;

    // `host_lifetime` keeps the connection (the tunnel_host) alive as long as this handle.
    tunnel(std::shared_ptr<tunnel_state> state, std::shared_ptr<void> host_lifetime) noexcept
        : state_(std::move(state)), host_lifetime_(std::move(host_lifetime)) {}

    executor_type get_executor() const noexcept { return state_->executor(); }
    lowest_layer_type& lowest_layer() noexcept { return *this; }
    const lowest_layer_type& lowest_layer() const noexcept { return *this; }
    std::int32_t stream_id() const noexcept { return state_->id(); }

    template <class MutableBufferSequence, class Token>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
        asio::mutable_buffer first;
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it)
            if (asio::mutable_buffer b(*it); b.size() != 0) {
                first = b;
                break;
            }
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<tunnel_state> state, asio::mutable_buffer into) {
                tunnel_state::completion completion(std::move(handler), state->executor());
                state->start_read(into, std::move(completion));
            },
            token, state_, first);
    }

    template <class ConstBufferSequence, class Token>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [](auto handler, std::shared_ptr<tunnel_state> state, const ConstBufferSequence& data) {
                tunnel_state::completion completion(std::move(handler), state->executor());
                state->start_write(data, std::move(completion));
            },
            token, state_, buffers);
    }

    // The WebSocket's half-close: END_STREAM after what was written (duplex::detail::async_shutdown_send).
    awaitable<void> async_shutdown_send() {
        state_->shutdown_send();
        co_return;
    }

    // The lowest layer's part.
    void shutdown(shutdown_type, std::error_code& ec) {
        state_->shutdown_send();
        ec = {};
    }
    void close(std::error_code& ec) {
        state_->close();
        ec = {};
    }
    bool is_open() const noexcept { return state_->is_open(); }

private:
    std::shared_ptr<tunnel_state> state_;
    std::shared_ptr<void> host_lifetime_;
};

}  // namespace duplex::http2
