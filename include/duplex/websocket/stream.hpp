// duplex::ws::stream<Next> — RFC 6455 over any Asio stream (TCP, TLS, a Unix socket, a test stream).
//
// The stream is a thin coroutine shell around the sans-I/O pieces (frame, mask, utf8, close_status,
// handshake, http parser, deflate negotiation and codec). Its state lives in a shared core so that a
// flush still in flight when the last handle goes away finishes safely. All operations of one stream
// must run on its executor (a strand when the io_context has several threads).
//
// permessage-deflate (RFC 7692) is decided per connection at the handshake, not per type: accept() and
// handshake() take the compression options, and the codec is built only when both ends agree. A
// connection without it pays one null pointer and a branch per message; the type-erased
// duplex::websocket is the same handle either way.
#pragma once

#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/deflate/permessage.hpp>
#include <duplex/detail/handler_allocator.hpp>
#include <duplex/detail/mask_key_source.hpp>
#include <duplex/detail/transport.hpp>
#include <duplex/detail/uninitialized_allocator.hpp>
#include <duplex/http/parser.hpp>
#include <duplex/http/response.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/handshake.hpp>
#include <duplex/websocket/mask.hpp>
#include <duplex/websocket/message.hpp>
#include <duplex/websocket/options.hpp>
#include <duplex/websocket/state.hpp>
#include <duplex/websocket/utf8.hpp>
#include <duplex/websocket/websocket.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace duplex::ws {

namespace detail {

// Below this a read buffer could not hold a control frame with its header.
inline constexpr std::size_t min_receive_buffer = 256;

struct flag_guard {
    bool& flag;
    explicit flag_guard(bool& f) noexcept : flag(f) { flag = true; }
    ~flag_guard() { flag = false; }
    flag_guard(const flag_guard&) = delete;
    flag_guard& operator=(const flag_guard&) = delete;
};

inline void check_close_arguments(close_status status, std::string_view description) {
    if (status == close_status::empty) {
        if (!description.empty())
            throw std::invalid_argument("a close description needs a close status other than 'empty'");
        return;
    }
    if (!is_valid_wire_code(static_cast<std::uint16_t>(status)))
        throw std::invalid_argument("close status " + std::to_string(static_cast<unsigned>(status)) +
                                    " may not be sent in a close frame");
    if (description.size() > max_close_reason_size)
        throw std::invalid_argument("a close description is limited to 123 bytes");
    if (!is_valid_utf8(description)) throw std::invalid_argument("a close description must be valid UTF-8");
}

// The close code that goes with each way we fail a connection (RFC 6455 §7.4.1): 1009 for what is too
// big to process, 1008 for our other limits (the message is not too big, it breaks our policy).
inline close_status close_code_for(websocket_errc errc) noexcept {
    switch (errc) {
    case websocket_errc::invalid_payload_data: return close_status::invalid_payload_data;
    case websocket_errc::message_too_big:
    case websocket_errc::frame_too_big: return close_status::message_too_big;
    case websocket_errc::too_many_fragments:
    case websocket_errc::send_queue_full:
    case websocket_errc::send_timeout: return close_status::policy_violation;
    default: return close_status::protocol_error;
    }
}

// Our own failure messages go into the close frame's reason, cut to what a control frame can carry.
inline std::string_view close_reason_for(std::string_view detail) {
    return detail.substr(0, std::min(detail.size(), max_close_reason_size));
}

// Lifetime: each operation holds a reference to the core while it runs, so a handle dropped while an
// operation is suspended (or a flush is in flight) never leaves that operation on a destroyed stream.
template <class Next>
class stream_core final : public duplex::detail::websocket_interface,
                          public std::enable_shared_from_this<stream_core<Next>> {
public:
    stream_core(Next next, role r, stream_options options)
        : next_(std::move(next)),
          role_(r),
          options_(options),
          message_limit_(options.max_message_size),
          rx_capacity_(std::max(options.receive_buffer_size, min_receive_buffer)),
          wake_(next_.get_executor(), asio::steady_timer::time_point::max()),
          deadline_(next_.get_executor()) {}

    Next& next_layer() noexcept { return next_; }
    std::size_t receive_buffer_bytes() const noexcept { return rx_ ? rx_capacity_ : 0; }

    // Bytes that arrived before the stream took over the transport (e.g. read by an HTTP server along
    // with the upgrade request) and belong to the WebSocket.
    void prime(std::span<const std::byte> bytes) {
        if (bytes.size() > rx_capacity_ - rx_end_)
            throw std::length_error("more pre-read bytes than the receive buffer holds");
        if (bytes.empty()) return;
        take_receive_buffer();
        std::memcpy(rx_.get() + rx_end_, bytes.data(), bytes.size());
        rx_end_ += bytes.size();
    }

    // ---- opening handshake, server side ----

    awaitable<http::request> read_request() {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        state_ = websocket_state::connecting;
        http::request_parser parser(options_.http_limits);
        arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
        const auto ec = co_await read_head(parser);
        disarm_deadline();
        if (ec) {
            state_ = websocket_state::aborted;
            close_now();
            throw websocket_error(map_transport_error(ec), "while reading the upgrade request");
        }
        if (parser.status() == http::parse_status::error) {
            co_await reject(parser.error_status(), parser.error_message());
            throw websocket_error(websocket_errc::handshake_failed, std::string(parser.error_message()));
        }
        co_return std::move(parser.get());
    }

    // Answers the upgrade request with 101 Switching Protocols, or with the RFC's error (400, or 426 for
    // another protocol version) and throws. `sub_protocol` must be one the client offered. With
    // `compression`, the client's first acceptable permessage-deflate offer is accepted on those terms.
    awaitable<void> accept(const http::request& request, std::string_view sub_protocol,
                           const http::headers& extra_headers, std::optional<duplex::deflate::options> compression) {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        state_ = websocket_state::connecting;
        if (auto check = handshake::validate_request(request); !check) {
            co_await write_and_close(handshake::make_error_response(check));
            throw websocket_error(websocket_errc::handshake_failed, check.message);
        }
        if (!sub_protocol.empty()) {
            const auto offered = handshake::requested_protocols(request);
            if (std::find(offered.begin(), offered.end(), sub_protocol) == offered.end())
                throw std::invalid_argument("sub-protocol '" + std::string(sub_protocol) +
                                            "' was not offered by the client");
        }
        std::optional<duplex::deflate::agreement> agreed;
        if (compression) agreed = duplex::deflate::select_offer(request.headers, *compression);
        std::unique_ptr<duplex::deflate::permessage> codec;
        std::string response;
        const auto key = request.headers.get("Sec-WebSocket-Key").value_or("");
        if (agreed) {
            codec = std::make_unique<duplex::deflate::permessage>(role_, agreed->parameters);
            http::headers headers = extra_headers;
            headers.add("Sec-WebSocket-Extensions", agreed->response);
            response = handshake::make_accept_response(key, sub_protocol, headers);
        } else {
            response = handshake::make_accept_response(key, sub_protocol, extra_headers);
        }
        arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
        auto [ec, n] = co_await asio::async_write(next_, asio::buffer(response), duplex::detail::use_nothrow_awaitable);
        disarm_deadline();
        if (ec) {
            state_ = websocket_state::aborted;
            close_now();
            throw websocket_error(map_transport_error(ec), "while answering the upgrade request");
        }
        sub_protocol_ = sub_protocol;
        compression_ = std::move(codec);
        state_ = websocket_state::open;
    }

    // Answers an HTTP request that will not become a WebSocket and closes the connection.
    awaitable<void> reject(int status_code, std::string_view message) {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        http::headers headers;
        headers.add("Content-Type", "text/plain; charset=utf-8");
        headers.add("Content-Length", std::to_string(message.size()));
        headers.add("Connection", "close");
        std::string response;
        http::write_response_head(response, status_code, headers);
        response.append(message);
        co_await write_and_close(std::move(response));
    }

    // ---- opening handshake, client side ----

    // With `compression`, permessage-deflate is offered on those terms; the server may decline it.
    awaitable<void> handshake(std::string_view host, std::string_view target, std::span<const std::string> sub_protocols,
                              const http::headers& extra_headers, std::optional<duplex::deflate::options> compression) {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        state_ = websocket_state::connecting;
        const auto key = handshake::generate_key();
        std::string request;
        if (compression) {
            http::headers headers = extra_headers;
            headers.add("Sec-WebSocket-Extensions", duplex::deflate::make_offer(*compression));
            request = handshake::make_request(host, target, key, sub_protocols, headers);
        } else {
            request = handshake::make_request(host, target, key, sub_protocols, extra_headers);
        }
        arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
        auto [write_ec, written] =
            co_await asio::async_write(next_, asio::buffer(request), duplex::detail::use_nothrow_awaitable);
        if (write_ec) {
            disarm_deadline();
            fail_handshake("could not send the upgrade request: " + write_ec.message());
        }
        http::response_parser parser(options_.http_limits);
        const auto ec = co_await read_head(parser);
        disarm_deadline();
        if (ec)
            fail_handshake("connection ended during the opening handshake: " +
                           make_error_code(map_transport_error(ec)).message());
        if (parser.status() == http::parse_status::error)
            fail_handshake("malformed upgrade response: " + std::string(parser.error_message()));
        const auto& response = parser.get();
        if (auto check = handshake::validate_response(response, key, sub_protocols, compression.has_value()); !check)
            fail_handshake(check.error);
        if (compression) {
            const auto answer = duplex::deflate::validate_response(response.headers, *compression);
            if (!answer) fail_handshake(answer.error);
            if (answer.parameters) compression_ = std::make_unique<duplex::deflate::permessage>(role_, *answer.parameters);
        }
        sub_protocol_ = std::string(response.headers.get("Sec-WebSocket-Protocol").value_or(""));
        state_ = websocket_state::open;
    }

    // ---- messages ----

    // Not a coroutine itself: the receive runs in next_piece's frame alone (see there).
    awaitable<receive_result> receive(asio::mutable_buffer buffer) override { return next_piece(buffer, true); }

    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) override {
        return receive_whole(out, max_size);
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) override {
        return receive_whole(out, max_size);
    }

    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message,
                         message_flags flags) override {
        // See "Lifetime" above. Taken before the first wait only: until then the caller's handle, held
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

    awaitable<void> close(close_status status, std::string_view description) override {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        throw_if_request_ended();
        check_close_arguments(status, description);
        if (state_ == websocket_state::closed) co_return;
        throw_if_failed();
        require_opened();
        arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
        if (!close_sent_) queue_close(status, description);
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
        disarm_deadline();
        co_await finish_transport();
        state_ = websocket_state::closed;
    }

    awaitable<void> close_output(close_status status, std::string_view description) override {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        throw_if_request_ended();
        check_close_arguments(status, description);
        if (state_ == websocket_state::closed) co_return;
        throw_if_failed();
        require_opened();
        if (close_sent_) co_return;
        queue_close(status, description);
        arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
        co_await flush_all();
        disarm_deadline();
        if (close_received_) {
            co_await finish_transport();
            state_ = websocket_state::closed;
        }
    }

    // Pings the peer every `interval`; with a non-zero `timeout`, a peer from which no byte arrives
    // within `timeout` of a ping is aborted and the pending receive fails with keep_alive_timeout.
    // Bytes are read only while a receive is pending, as in ASP.NET: keep one pending.
    void start_keep_alive(std::chrono::steady_clock::duration interval, std::chrono::steady_clock::duration timeout) {
        if (interval <= std::chrono::steady_clock::duration::zero() || keep_alive_timer_) return;
        keep_alive_timer_ = std::make_unique<asio::steady_timer>(next_.get_executor());
        keep_alive_interval_ = interval;
        keep_alive_timeout_ = timeout;
        if (state_ == websocket_state::open) wait_to_ping();
    }

    // The request that owned this WebSocket has completed (ASP.NET's pipeline unwound): the connection
    // is dropped unless it already closed, and every later operation fails with request_ended.
    void end_request() noexcept {
        request_ended_ = true;
        if (state_ != websocket_state::closed) {
            if (!failure_) failure_ = make_error_code(websocket_errc::request_ended);
            state_ = websocket_state::aborted;
        }
        close_now();
        deadline_.cancel();
        notify();
    }

    void abort() noexcept override {
        if (!failure_) failure_ = make_error_code(websocket_errc::aborted);
        if (state_ != websocket_state::closed) state_ = websocket_state::aborted;
        close_now();
        deadline_.cancel();
        notify();
    }

    websocket_state state() const noexcept override { return state_; }
    const std::string& sub_protocol() const noexcept override { return sub_protocol_; }
    std::optional<duplex::deflate::negotiated> compression() const {
        if (!compression_) return std::nullopt;
        const auto& c = *compression_;
        const bool server = role_ == role::server;
        duplex::deflate::negotiated n;
        n.server_max_window_bits = server ? c.send_window_bits() : c.receive_window_bits();
        n.client_max_window_bits = server ? c.receive_window_bits() : c.send_window_bits();
        n.server_no_context_takeover = !(server ? c.send_context_takeover() : c.receive_context_takeover());
        n.client_no_context_takeover = !(server ? c.receive_context_takeover() : c.send_context_takeover());
        return n;
    }
    asio::any_io_executor get_executor() const override {
        return const_cast<Next&>(next_).get_executor();
    }

private:
    // ---- receiving ----

    std::string_view buffered_text() const noexcept {
        return {reinterpret_cast<const char*>(rx_.get() + rx_begin_), rx_end_ - rx_begin_};
    }

    // Feeds the HTTP head parser until it is done or fails; what follows the head stays buffered for the
    // WebSocket. The parser copies what it keeps and enforces its own size limits, so it consumes every
    // byte it is given until the head ends.
    template <class Parser>
    awaitable<std::error_code> read_head(Parser& parser) {
        for (;;) {
            rx_begin_ += parser.feed(buffered_text());
            if (parser.status() != http::parse_status::need_more) co_return std::error_code{};
            const auto ec = co_await read_more();
            if (ec) co_return ec;
        }
    }

    // Reads what the transport has into the free end of the receive buffer.
    awaitable<std::error_code> read_more() {
        make_room_to_read();
        auto [ec, n] = co_await next_.async_read_some(read_space(), duplex::detail::use_nothrow_awaitable);
        rx_end_ += n;
        co_return after_read(ec, n);
    }

    // Before a read: an empty buffer starts over; a full one moves its partial frame to the front.
    void make_room_to_read() {
        take_receive_buffer();
        if (rx_begin_ == rx_end_) {
            rx_begin_ = rx_end_ = 0;
        } else if (rx_end_ == rx_capacity_) {
            std::memmove(rx_.get(), rx_.get() + rx_begin_, rx_end_ - rx_begin_);
            rx_end_ -= rx_begin_;
            rx_begin_ = 0;
        }
    }

    void take_receive_buffer() {
        if (!rx_) rx_ = std::make_unique_for_overwrite<std::byte[]>(rx_capacity_);
    }

    // Whether the next read of a quiet connection waits for data without a buffer, freeing its own (see
    // stream_options::release_receive_buffer_after). Only with the buffer empty, and only over a socket.
    bool wait_without_buffer() {
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
    bool measures_read_waits() const noexcept {
        return duplex::detail::peekable_socket<Next> &&
               options_.release_receive_buffer_after != std::chrono::steady_clock::duration::max();
    }
    std::chrono::steady_clock::duration read_wait_clock() const noexcept {
        return measures_read_waits() ? duplex::detail::coarse_now() : std::chrono::steady_clock::duration{};
    }
    void note_read_wait(std::chrono::steady_clock::duration started) noexcept {
        if (measures_read_waits())
            receive_quiet_ = duplex::detail::coarse_now() - started >= options_.release_receive_buffer_after;
    }

    // One read from the transport: into `space`, or (peek) a wait for data that consumes nothing.
    auto read_some(asio::mutable_buffer space, bool peek) {
        if constexpr (duplex::detail::peekable_socket<Next>)
            return next_.async_receive(space, peek ? asio::socket_base::message_peek : 0,
                                       duplex::detail::use_nothrow_awaitable);
        else
            return next_.async_read_some(space, duplex::detail::use_nothrow_awaitable);
    }

    asio::mutable_buffer read_space() noexcept { return asio::buffer(rx_.get() + rx_end_, rx_capacity_ - rx_end_); }

    // After a read of `n` bytes: the error, with end of stream as asio::error::eof.
    std::error_code after_read(std::error_code ec, std::size_t n) noexcept {
        if (!ec && n == 0) ec = asio::error::eof;
        if (n != 0 && keep_alive_timeout_ > std::chrono::steady_clock::duration::zero())
            last_received_ = std::chrono::steady_clock::now();
        return ec;
    }

    // The heart of receive: delivers the next piece of data, handling control frames on the way. With
    // `receive_call` it is a whole receive() (state checks and the receive-in-progress flag included).
    //
    // Its frame must stay small: asio recycles coroutine frames of up to 1,020 bytes (a couple per thread)
    // and allocates bigger ones on every call, and GCC gives every co_await its own slots in the frame.
    // So the deciding is done by parse_step without suspending, and this coroutine has one co_await per
    // kind of wait: reading, the send queue, failing, and the peer's close frame.
    awaitable<receive_result> next_piece(asio::mutable_buffer buffer, bool receive_call = false) {
        // See "Lifetime" above; taken before the first wait only, as in send.
        std::shared_ptr<stream_core> keep_alive;
        std::optional<flag_guard> receiving;
        if (receive_call) {
            check_can_receive();
            receiving.emplace(receiving_);
        }
        auto step = parse_step(buffer);
        for (;;) {
            if (step.what == step_action::deliver)
                co_return receive_result{step.count, message_kind_, step.end_of_message, std::nullopt, {}};
            if (receive_call && !keep_alive) keep_alive = this->shared_from_this();
            if (step.what == step_action::fail) co_await fail(step.errc, std::move(step.detail));
            if (step.what == step_action::close_frame) co_return co_await on_close_frame(step.payload, step.count);

            // A peer that makes us answer (pings) without reading our answers would grow the output queue
            // without bound: past the high-water mark, stop reading until the queue drains.
            if (out_.size() >= options_.send_queue_high_water) co_await wait_for_send_queue_room();
            throw_if_failed();
            const bool into_caller = step.what == step_action::read_into_caller;
            const bool peek = !into_caller && wait_without_buffer();
            if (!into_caller && !peek) make_room_to_read();
            auto space = into_caller ? asio::buffer(buffer.data(), step.count) : read_space();
            if (peek) space = asio::buffer(&peeked_, 1);
            const auto read_started = read_wait_clock();
            auto [read_error, n] = co_await read_some(space, peek);
            const auto ec = after_read(read_error, n);
            if (ec) co_await fail_transport(ec);
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

    enum class step_action { deliver, read, read_into_caller, close_frame, fail };
    struct receive_step {
        step_action what;
        std::size_t count = 0;               // deliver: bytes; read_into_caller: bytes wanted; close_frame: size
        bool end_of_message = false;         // deliver
        const std::byte* payload = nullptr;  // close_frame
        websocket_errc errc{};               // fail
        std::string detail{};                // fail
    };

    static receive_step failure(websocket_errc errc, std::string detail) {
        return {step_action::fail, 0, false, nullptr, errc, std::move(detail)};
    }

    receive_step delivered(std::size_t count, bool end_of_message) {
        if (end_of_message && !end_message()) return failure(websocket_errc::invalid_payload_data, incomplete_utf8);
        return {step_action::deliver, count, end_of_message};
    }

    // `count` bytes of the current (uncompressed) frame's payload are in the caller's buffer, unmasked.
    receive_step took_payload(const std::byte* destination, std::size_t count) {
        frame_remaining_ -= count;
        frame_offset_ += count;
        if (message_kind_ == message_type::text && !utf8_.feed(destination, count))
            return failure(websocket_errc::invalid_payload_data, "invalid UTF-8 in a text message");
        if (frame_remaining_ == 0) in_frame_ = false;
        return delivered(count, frame_remaining_ == 0 && frame_.fin);
    }

    receive_step took_payload_directly(std::byte* destination, std::size_t count) {
        if (frame_.masked) apply_mask(destination, count, frame_.key, frame_offset_);
        return took_payload(destination, count);
    }

    // Everything receive can do with what is buffered, without waiting: validates headers, answers pings,
    // and delivers data into `buffer`; says what to wait for when that is all.
    receive_step parse_step(asio::mutable_buffer buffer) {
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
                    rx_begin_ += decoded.header_size;
                    auto* payload = rx_.get() + rx_begin_;
                    const auto size = static_cast<std::size_t>(header.payload_length);
                    rx_begin_ += size;
                    if (header.masked) apply_mask(payload, size, header.key);
                    if (header.op == opcode::ping) {
                        if (!close_sent_) {
                            throw_if_send_queue_full();
                            queue_frame(opcode::pong, payload, size);
                        }
                    } else if (header.op == opcode::close) {
                        return {step_action::close_frame, size, false, payload};
                    }
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

    enum class piece_status { delivered, end_of_message, need_input, next_frame, corrupt, too_big };
    struct decompressed_piece {
        piece_status status;
        std::size_t count = 0;
    };

    // One step of a compressed frame: the buffered part of its payload is unmasked in place (once; a
    // chunk the codec did not take stays unmasked for the next call) and decompressed into the caller's
    // buffer. Compressed bytes are never read straight into the caller's buffer: the output goes there.
    decompressed_piece decompress_piece(asio::mutable_buffer buffer) {
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

    awaitable<void> wait_for_send_queue_room() {
        const peer_wait waiting(*this);
        while (out_.size() >= options_.send_queue_high_water && !failure_) co_await wait_for_event();
    }

    static constexpr const char* incomplete_utf8 = "a text message ends inside a UTF-8 sequence";

    // Ends the message being received; false when a text message ends inside a UTF-8 sequence.
    bool end_message() noexcept {
        in_message_ = false;
        return message_kind_ != message_type::text || utf8_.complete();
    }

    struct violation {
        websocket_errc errc;
        std::string detail;
    };

    // The protocol rules a header must follow, given our role and where we are in a message: the first
    // one it breaks, if any.
    std::optional<violation> header_violation(const frame_header& h) const {
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

    awaitable<receive_result> on_close_frame(const std::byte* payload, std::size_t size) {
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
        receive_result result{0, message_type::close, true, parsed->status, std::string(parsed->reason)};
        state_ = close_sent_ ? websocket_state::closed : websocket_state::close_received;
        notify();
        co_return result;
    }

    // ---- failing ----

    // _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): send the matching close frame while the
    // transport allows, close the transport, and throw.
    awaitable<void> fail(websocket_errc errc, std::string detail) {
        if (!failure_) {
            failure_ = make_error_code(errc);
            if (!close_sent_) {
                close_sent_ = true;
                queue_close_frame(close_code_for(errc), close_reason_for(detail));
                arm_deadline(options_.close_timeout, websocket_errc::close_timeout);
                co_await wait_until_flushed();
                disarm_deadline();
            }
            state_ = websocket_state::aborted;
            co_await linger_and_close(true);
            notify();
        }
        throw websocket_error(failure_, detail);
    }

    awaitable<void> fail_transport(std::error_code ec) {
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
    void fail_slow_consumer(websocket_errc errc) {
        if (failure_) return;
        failure_ = make_error_code(errc);
        state_ = websocket_state::aborted;
        if (!close_sent_) {
            close_sent_ = true;
            out_.clear();
            queue_close_frame(close_code_for(errc), errc == websocket_errc::send_timeout
                                                        ? "the peer did not read within the send timeout"
                                                        : "the peer reads too slowly: send queue full");
            arm_deadline(options_.close_timeout, errc);
        }
        notify();
    }

    void throw_if_send_queue_full() {
        if (out_.size() <= options_.max_send_queue_bytes) return;
        fail_slow_consumer(websocket_errc::send_queue_full);
        throw websocket_error(failure_, "more than " + std::to_string(options_.max_send_queue_bytes) +
                                            " bytes were queued for a peer that reads too slowly");
    }

    [[noreturn]] void fail_handshake(const std::string& detail) {
        failure_ = make_error_code(websocket_errc::handshake_failed);
        state_ = websocket_state::aborted;
        close_now();
        throw websocket_error(websocket_errc::handshake_failed, detail);
    }

    websocket_errc map_transport_error(std::error_code ec) const noexcept {
        if (failure_ && failure_.category() == websocket_category())
            return static_cast<websocket_errc>(failure_.value());
        if (deadline_fired_) return *deadline_fired_;
        (void)ec;
        return websocket_errc::connection_closed_prematurely;
    }

    void throw_if_failed() const {
        if (failure_) throw websocket_error(failure_);
    }

    void require_opened() const {
        if (state_ == websocket_state::none || state_ == websocket_state::connecting)
            throw websocket_error(websocket_errc::invalid_state, "the WebSocket is not open yet");
    }

    void throw_if_request_ended() const {
        if (request_ended_)
            throw websocket_error(websocket_errc::request_ended,
                                  "the request that accepted this WebSocket has completed; keep the request "
                                  "alive (e.g. await a task_completion_source) while the socket is in use");
    }

    void check_can_receive() const {
        throw_if_request_ended();
        if (receiving_) throw websocket_error(websocket_errc::concurrent_receive);
        throw_if_failed();
        require_opened();
        if (close_received_)
            throw websocket_error(websocket_errc::invalid_state, "the peer's close frame was already received");
    }

    void check_can_send() const {
        throw_if_request_ended();
        throw_if_failed();
        require_opened();
        if (close_sent_) throw websocket_error(websocket_errc::invalid_state, "send after close");
    }

    // ---- the end of the connection ----

    // The transport's end after the close handshake (or a failure). A server half-closes first, as RFC
    // 6455 §7.1.1 asks, so the client sees end-of-stream right after the close frame; a client waits for
    // the server to do so, then ends its side in kind (over TLS, its close_notify answers the server's).
    // Either way we read until the peer's end (bounded) instead of closing on unread data, which would
    // send RST and could destroy our close frame in flight.
    awaitable<void> linger_and_close(bool shutdown_first) {
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

    awaitable<void> finish_transport() { co_await linger_and_close(role_ == role::server); }

    // ---- sending ----

    void append_frame(const frame_header& header, asio::const_buffer data) {
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
    void append_compressed_frame(frame_header header, asio::const_buffer data, bool end_of_message) {
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

    void queue_frame(opcode op, const std::byte* payload, std::size_t size) {
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

    void queue_close_frame(close_status status, std::string_view reason) {
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
    void queue_close(close_status status, std::string_view description) {
        close_sent_ = true;
        if (!close_received_) state_ = websocket_state::close_sent;
        queue_close_frame(status, description);
    }

    // Auto-cork: the flush runs after the current handler yields, so every frame queued until the
    // connection next has to wait leaves in one write.
    void schedule_flush() {
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
    void swap_output_buffers() {
        std::swap(out_, in_flight_);
        if (out_.capacity() < in_flight_.capacity()) out_.reserve(in_flight_.capacity());
    }

    void start_write() {
        if (writing_ || out_.empty() || write_failed_) return;
        writing_ = true;
        swap_output_buffers();
        asio::async_write(next_, asio::buffer(in_flight_), counting_transfer_all{write_progress_},
                          asio::bind_allocator(duplex::detail::handler_allocator<void>{},
                                               [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                                                   self->on_written(ec);
                                               }));
    }

    // asio::transfer_all that also counts the writes, for the send timeout to see the peer reading.
    struct counting_transfer_all {
        std::size_t& progress;
        std::size_t operator()(const std::error_code& ec, std::size_t) const noexcept {
            ++progress;
            return ec ? 0 : 64 * 1024;
        }
    };

    void on_written(std::error_code ec) {
        writing_ = false;
        in_flight_.clear();
        if (ec) on_write_error(ec);
        else start_write();
        notify();
    }

    void on_write_error(std::error_code ec) {
        write_failed_ = true;
        if (!failure_) failure_ = make_error_code(map_transport_error(ec));
        if (state_ != websocket_state::closed) state_ = websocket_state::aborted;
        out_.clear();
        close_now();
    }

    awaitable<void> wait_until_flushed() {
        schedule_flush();
        while ((writing_ || flush_posted_ || !out_.empty()) && !write_failed_) co_await wait_for_event();
    }

    awaitable<void> flush_all() {
        co_await wait_until_flushed();
        throw_if_failed();
    }

    // ---- keep-alive ----

    void close_now() noexcept {
        duplex::detail::close_transport(next_);
        if (keep_alive_timer_) keep_alive_timer_->cancel();
        if (send_timer_) send_timer_->cancel();
    }

    // ---- a peer that does not read ----

    // Marks a send or receive waiting on the peer to read what we queued (held by backpressure, or
    // writing a large payload from the caller's buffer), for the send timeout. While any waits, a timer
    // checks every send_timeout that some write to the peer progressed; one that saw none fails the
    // connection. The timer is created by the first wait and armed at most once per send_timeout, never
    // per message; the hot path only counts.
    struct peer_wait {
        stream_core& core;
        explicit peer_wait(stream_core& c) : core(c) {
            ++core.peer_waits_;
            core.watch_peer();
        }
        ~peer_wait() { --core.peer_waits_; }
        peer_wait(const peer_wait&) = delete;
        peer_wait& operator=(const peer_wait&) = delete;
    };

    void watch_peer() {
        if (send_watch_armed_ || options_.send_timeout <= std::chrono::steady_clock::duration::zero() || failure_)
            return;
        if (!send_timer_) send_timer_ = std::make_unique<asio::steady_timer>(next_.get_executor());
        send_watch_armed_ = true;
        arm_send_timer();
    }

    void arm_send_timer() {
        watched_progress_ = write_progress_;
        send_timer_->expires_after(options_.send_timeout);
        send_timer_->async_wait([weak = this->weak_from_this()](std::error_code ec) {
            const auto self = weak.lock();
            if (!self) return;
            if (ec || self->peer_waits_ == 0 || self->failure_) {
                self->send_watch_armed_ = false;
            } else if (self->write_progress_ != self->watched_progress_) {
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
    void wait_to_ping() {
        keep_alive_timer_->expires_after(keep_alive_interval_);
        keep_alive_timer_->async_wait(asio::bind_allocator(
            duplex::detail::handler_allocator<void>{}, [weak = this->weak_from_this()](std::error_code ec) {
                if (ec) return;  // cancelled: the connection is over
                if (auto self = weak.lock(); self && self->state_ == websocket_state::open) self->ping();
            }));
    }

    void ping() {
        const auto pinged_at = std::chrono::steady_clock::now();
        queue_frame(opcode::ping, nullptr, 0);
        if (keep_alive_timeout_ <= std::chrono::steady_clock::duration::zero()) {
            wait_to_ping();
            return;
        }
        keep_alive_timer_->expires_after(keep_alive_timeout_);
        keep_alive_timer_->async_wait(asio::bind_allocator(
            duplex::detail::handler_allocator<void>{},
            [weak = this->weak_from_this(), pinged_at](std::error_code ec) {
                if (ec) return;
                const auto self = weak.lock();
                if (!self || self->state_ != websocket_state::open) return;
                if (self->last_received_ >= pinged_at) {
                    self->wait_to_ping();
                    return;
                }
                self->failure_ = make_error_code(websocket_errc::keep_alive_timeout);
                self->state_ = websocket_state::aborted;
                self->close_now();
                self->notify();
            }));
    }

    // ---- waiting ----

    // A timer that never expires serves as a condition variable: notify() cancels its waits.
    awaitable<void> wait_for_event() { co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable); }
    void notify() noexcept { wake_.cancel(); }

    // Bounds the handshake and the close: when the deadline passes, the transport is closed, which ends
    // whatever read or write is pending, and the resulting error is reported as `reason`.
    void arm_deadline(std::chrono::steady_clock::duration timeout, websocket_errc reason) {
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
    void disarm_deadline() noexcept { deadline_.cancel(); }

    awaitable<void> write_and_close(std::string bytes) {
        arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
        co_await asio::async_write(next_, asio::buffer(bytes), duplex::detail::use_nothrow_awaitable);
        disarm_deadline();
        state_ = websocket_state::aborted;
        co_await linger_and_close(true);
    }

    template <class Container>
    awaitable<receive_result> receive_whole(Container& out, std::size_t max_size) {
        const auto keep_alive = this->shared_from_this();  // see "Lifetime" above
        check_can_receive();
        flag_guard guard(receiving_);
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

    Next next_;
    role role_;
    stream_options options_;
    websocket_state state_ = websocket_state::none;
    std::string sub_protocol_;
    std::error_code failure_;
    std::optional<websocket_errc> deadline_fired_;

    // Receiving.
    std::size_t message_limit_;
    std::size_t rx_capacity_;
    std::unique_ptr<std::byte[]> rx_;  // taken at the first read; freed while quiet (wait_without_buffer)
    std::size_t rx_begin_ = 0, rx_end_ = 0;
    bool receive_quiet_ = true;  // the next wait on an empty buffer gives the buffer back (a new connection)
    std::byte peeked_{};         // where a wait without buffer peeks; never read
    frame_header frame_;
    std::uint64_t frame_remaining_ = 0, frame_offset_ = 0, message_size_ = 0;
    std::size_t message_fragments_ = 0;  // frames of the message being received so far
    message_type message_kind_ = message_type::binary;
    utf8_validator utf8_;
    bool in_frame_ = false, in_message_ = false, receiving_ = false, close_received_ = false;
    bool receive_compressed_ = false;  // the message being received has RSV1 on its first frame
    std::size_t rx_unmasked_ = 0;      // bytes of the current compressed frame at rx_begin_ already unmasked

    // Sending.
    // Resized before being written: not zeroed first (uninitialized_allocator).
    std::vector<std::byte, duplex::detail::uninitialized_allocator<std::byte>> out_, in_flight_;
    message_type send_message_type_ = message_type::binary;
    bool send_in_message_ = false, close_sent_ = false, writing_ = false, flush_posted_ = false,
         write_failed_ = false;
    bool send_compressed_ = false;  // the message being sent goes through the compressor

    // The send timeout (see peer_wait): writes to the peer so far, their count when the timer was armed,
    // and the sends and receives now waiting on the peer. The timer exists once a wait has happened.
    std::size_t write_progress_ = 0, watched_progress_ = 0, peer_waits_ = 0;
    bool send_watch_armed_ = false;
    std::unique_ptr<asio::steady_timer> send_timer_;

    // permessage-deflate's codec, built only when the handshake negotiated it (zlib's state is not
    // movable, and a connection without compression should not carry its ~300 bytes).
    std::unique_ptr<duplex::deflate::permessage> compression_;

    asio::steady_timer wake_;
    asio::steady_timer deadline_;

    // Keep-alive (off unless started) and the request's lifetime.
    std::unique_ptr<asio::steady_timer> keep_alive_timer_;
    std::chrono::steady_clock::duration keep_alive_interval_{}, keep_alive_timeout_{};
    std::chrono::steady_clock::time_point last_received_{};
    bool request_ended_ = false;
};

}  // namespace detail

// The composable WebSocket stream. A cheap handle: copies share one connection.
template <class Next>
class stream {
public:
    using next_layer_type = Next;

    stream(Next next, role r, stream_options options = {})
        : core_(std::make_shared<detail::stream_core<Next>>(std::move(next), r, options)) {}

    Next& next_layer() noexcept { return core_->next_layer(); }

    // Hands over bytes read from the transport before the stream took it (they are parsed first).
    void prime(std::span<const std::byte> bytes) { core_->prime(bytes); }

    // Server: reads the HTTP upgrade request (answering a malformed one with its 4xx and throwing).
    awaitable<http::request> read_request() { return core_->read_request(); }
    // Server: answers the request with 101, or with 400/426 and throws websocket_error. With
    // `compression` (DANGEROUS, see deflate/permessage.hpp: CRIME/BREACH), a permessage-deflate offer of
    // the client is accepted on those terms; without it, or without an acceptable offer, none is.
    awaitable<void> accept(const http::request& request, std::string_view sub_protocol = {},
                           const http::headers& extra_headers = {},
                           std::optional<duplex::deflate::options> compression = std::nullopt) {
        return core_->accept(request, sub_protocol, extra_headers, compression);
    }
    // Server: read_request() then accept().
    awaitable<void> accept(std::optional<duplex::deflate::options> compression = std::nullopt) {
        auto request = co_await core_->read_request();
        const http::headers no_headers;  // named: g++ 12 destroys a temporary inside co_await twice
        co_await core_->accept(request, {}, no_headers, compression);
    }
    // Server: answers a request that will not be upgraded (e.g. 404) and closes the connection.
    awaitable<void> reject(int status_code, std::string_view message) { return core_->reject(status_code, message); }

    // Client: sends the upgrade request for `target` to `host` and checks the server's answer. With
    // `compression` (DANGEROUS, see deflate/permessage.hpp), permessage-deflate is offered on those
    // terms; the server may decline it, and a response that breaks RFC 7692 fails the handshake.
    awaitable<void> handshake(std::string_view host, std::string_view target,
                              std::span<const std::string> sub_protocols = {}, const http::headers& extra_headers = {},
                              std::optional<duplex::deflate::options> compression = std::nullopt) {
        return core_->handshake(host, target, sub_protocols, extra_headers, compression);
    }

    awaitable<receive_result> receive(asio::mutable_buffer buffer) { return core_->receive(buffer); }
    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) {
        return core_->receive_message(out, max_size);
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) {
        return core_->receive_message(out, max_size);
    }
    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message = true,
                         message_flags flags = message_flags::none) {
        return core_->send(data, type, end_of_message, flags);
    }
    awaitable<void> close(close_status status, std::string_view description = {}) {
        return core_->close(status, description);
    }
    awaitable<void> close_output(close_status status, std::string_view description = {}) {
        return core_->close_output(status, description);
    }
    void abort() noexcept { core_->abort(); }
    websocket_state state() const noexcept { return core_->state(); }
    // The memory the stream's receive buffer takes now: receive_buffer_size, or 0 while a quiet
    // connection waits without one (stream_options::release_receive_buffer_after).
    std::size_t receive_buffer_bytes() const noexcept { return core_->receive_buffer_bytes(); }
    const std::string& sub_protocol() const noexcept { return core_->sub_protocol(); }
    asio::any_io_executor get_executor() const { return core_->get_executor(); }

    void start_keep_alive(std::chrono::steady_clock::duration interval, std::chrono::steady_clock::duration timeout) {
        core_->start_keep_alive(interval, timeout);
    }
    void end_request() noexcept { core_->end_request(); }

    // What permessage-deflate the handshake agreed, from this end's point of view; empty when none.
    std::optional<duplex::deflate::negotiated> compression() const { return core_->compression(); }

    // The type-erased handle application code holds; it shares this connection.
    duplex::websocket as_websocket() const { return duplex::websocket(core_); }

private:
    std::shared_ptr<detail::stream_core<Next>> core_;
};

}  // namespace duplex::ws
