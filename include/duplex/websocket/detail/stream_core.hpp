// duplex::ws::detail::stream_core<Next> — the state of one WebSocket connection and the declarations of
// what it does. The definitions live by concern beside it, as in Beast's websocket/impl/:
//
//   impl/handshake.hpp   the opening handshake, both roles (read_request, accept, reject, handshake)
//   impl/read.hpp        receive: reading, frame parsing, unmasking, UTF-8, decompression, receive_message
//   impl/write.hpp       send: the send queue, the auto-cork flush, backpressure, direct large writes
//   impl/close.hpp       the close handshake, failing the connection, the transport's end
//   impl/timers.hpp      keep-alive pings, the send timeout, handshake and close deadlines
//
// The core is shared (std::shared_ptr) by every handle of the connection, so a flush still in flight
// when the last handle goes away finishes safely. Its operations run on its executor (a strand when the
// io_context has several threads); the handles (ws::stream, duplex::websocket) take callers on other
// threads there (detail/operation.hpp). Only state(), abort() and can_start_here() may be called from
// anywhere.
#pragma once

#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/deflate/permessage.hpp>
#include <duplex/detail/handler_allocator.hpp>
#include <duplex/detail/mask_key_source.hpp>
#include <duplex/detail/post.hpp>
#include <duplex/detail/resize_uninitialized.hpp>
#include <duplex/detail/transport.hpp>
#include <duplex/detail/uninitialized_allocator.hpp>
#include <duplex/http/parser.hpp>
#include <duplex/http/response.hpp>
#include <duplex/websocket/backpressure.hpp>
#include <duplex/websocket/close_status.hpp>
#include <duplex/websocket/detail/operation.hpp>
#include <duplex/websocket/detail/shared_frame_queue.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/frame.hpp>
#include <duplex/websocket/handshake.hpp>
#include <duplex/websocket/mask.hpp>
#include <duplex/websocket/message.hpp>
#include <duplex/websocket/options.hpp>
#include <duplex/websocket/prepared_message.hpp>
#include <duplex/websocket/state.hpp>
#include <duplex/websocket/utf8.hpp>
#include <duplex/websocket/websocket.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

namespace duplex::ws::detail {

// Below this a read buffer could not hold a control frame with its header.
inline constexpr std::size_t min_receive_buffer = 256;
// A payload the caller's buffer takes at least this much of, with nothing buffered, is read straight
// into the caller's buffer: one read and no copy, whatever the receive buffer's size. Smaller pieces
// are read into the receive buffer, where one read brings the following frames too.
inline constexpr std::size_t direct_read_threshold = 16 * 1024;
// Reads done at once (without waiting for readiness, after a read that filled its buffer) before a
// read goes through the event loop again, so that one busy connection cannot starve the others.
inline constexpr unsigned max_reads_at_once = 16;

// receive_message's output, type-erased so that one coroutine frame (next_piece's) serves both kinds
// of container: `resize` sets its size without zeroing where it can and returns its data.
struct message_sink {
    void* container = nullptr;
    std::byte* (*resize)(void* container, std::size_t size) = nullptr;
    std::size_t max_size = 0;
};

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
          rx_initial_(std::max(options.receive_buffer_size, min_receive_buffer)),
          rx_limit_(std::max(rx_initial_, options.max_receive_buffer_size)),
          rx_capacity_(rx_initial_),
          wake_(next_.get_executor(), asio::steady_timer::time_point::max()),
          deadline_(next_.get_executor()),
          home_(next_.get_executor()) {}

    Next& next_layer() noexcept { return next_; }

    // Keeps `dependency` alive as long as the stream: the app host passes its io_context, so that a
    // handle kept after app::run() returned is still destroyed cleanly.
    void retain(std::shared_ptr<void> dependency) noexcept { retained_ = std::move(dependency); }
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

    // The opening handshake (impl/handshake.hpp).
    awaitable<http::request> read_request();
    awaitable<void> accept(const http::request& request, std::string_view sub_protocol,
                           const http::headers& extra_headers, std::optional<duplex::deflate::options> compression);
    awaitable<void> reject(int status_code, std::string_view message);
    std::string accept_tunneled(const http::request& request, std::string_view sub_protocol,
                                std::optional<duplex::deflate::options> compression);
    awaitable<void> handshake(std::string_view host, std::string_view target, std::span<const std::string> sub_protocols,
                              const http::headers& extra_headers, std::optional<duplex::deflate::options> compression);
    void open_tunneled(const http::response& response, std::span<const std::string> sub_protocols,
                       std::optional<duplex::deflate::options> compression);

    // Messages (impl/read.hpp, impl/write.hpp). receive is not a coroutine itself: the receive runs in
    // next_piece's frame alone (see there).
    awaitable<receive_result> receive(asio::mutable_buffer buffer) override { return next_piece(buffer, true); }
    awaitable<receive_result> receive_message(std::vector<std::byte>& out, std::size_t max_size) override {
        return next_piece({}, true, sink_of(out, max_size));
    }
    awaitable<receive_result> receive_message(std::string& out, std::size_t max_size) override {
        return next_piece({}, true, sink_of(out, max_size));
    }
    awaitable<void> send(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags) override;

    // The same, driven by completion handlers, for the token forms (impl/async_ops.hpp).
    void start_receive(asio::mutable_buffer buffer, duplex::detail::receive_completion completion) override {
        start_token_receive(buffer, std::move(completion), false);
    }
    void start_receive_now(asio::mutable_buffer buffer, duplex::detail::receive_completion completion) override {
        start_token_receive(buffer, std::move(completion), true);
    }
    void start_send(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags,
                    duplex::detail::send_completion completion) override;

    // Sends that never wait, for pub/sub and the message-driven API (impl/write.hpp), on the executor:
    // a message encoded once for many sockets, and a whole message of the caller's, each queued unless
    // the socket is at its backpressure limit (then dropped, or the socket failed with 1008).
    send_status send_prepared(const prepared_message& message, const backpressure_options& limit) override;
    send_status send_now(asio::const_buffer data, message_type type, message_flags flags,
                         const backpressure_options& limit) override;
    // Bytes queued and not yet handed to the transport (uWebSockets' getBufferedAmount).
    std::size_t buffered_amount() const noexcept override { return queued_bytes(); }
    // The window of the compressed frames of a prepared_message this socket can take; 0 for none.
    int prepared_window_bits() const noexcept override {
        return compression_ && role_ == role::server ? compression_->send_window_bits() : 0;
    }
    // Calls `listener` once, the next time a write completes with nothing left to send (null: never).
    void notify_when_drained(duplex::detail::drain_listener* listener) noexcept override { drain_listener_ = listener; }

    // The close handshake and the connection's end (impl/close.hpp).
    awaitable<void> close(close_status status, std::string_view description) override;
    awaitable<void> close_output(close_status status, std::string_view description) override;
    // close_output, with the peer's close then due within close_timeout (impl/close.hpp).
    awaitable<void> close_output_with_deadline(close_status status, std::string_view description);
    // The request that owned this WebSocket has completed (ASP.NET's pipeline unwound): the connection
    // ends unless it already closed (a close frame of ours still queued is written first), and every
    // later operation fails with request_ended.
    awaitable<void> end_request();
    void end_request_now() noexcept;
    // From any thread: on another, the abort is posted to the socket's executor.
    void abort() noexcept override;

    // Whether an operation may start on the calling thread: it runs the socket's executor, or the
    // socket's request has ended (every operation then fails at once, wherever it runs).
    bool can_start_here() const noexcept override {
        if (request_ended_.load(std::memory_order_relaxed)) return true;
        if (auto* io = home_.io_context()) return io->get_executor().running_in_this_thread();
        return duplex::detail::running_in(const_cast<Next&>(next_).get_executor());
    }

    // Pings the peer every `interval`; with a non-zero `timeout`, a peer from which no byte arrives
    // within `timeout` of a ping is aborted and the pending receive (or the next operation) fails with
    // keep_alive_timeout. Without a receive pending, the keep-alive reads the answer itself
    // (read_while_idle), so a handler that only sends learns that its peer is gone (impl/timers.hpp).
    void start_keep_alive(std::chrono::steady_clock::duration interval, std::chrono::steady_clock::duration timeout);

    websocket_state state() const noexcept override { return state_.load(std::memory_order_relaxed); }
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
    asio::any_io_executor get_executor() const override { return const_cast<Next&>(next_).get_executor(); }

private:
    // ---- the opening handshake (impl/handshake.hpp) ----

    template <class Parser>
    awaitable<std::error_code> read_head(Parser& parser);
    awaitable<void> write_and_close(std::string bytes);
    [[noreturn]] void fail_handshake(const std::string& detail);
    void adopt_answer(const http::response& response, const std::optional<duplex::deflate::options>& compression);

    // ---- receiving (impl/read.hpp) ----

    std::string_view buffered_text() const noexcept {
        return {reinterpret_cast<const char*>(rx_.get() + rx_begin_), rx_end_ - rx_begin_};
    }
    asio::mutable_buffer read_space() noexcept { return asio::buffer(rx_.get() + rx_end_, rx_capacity_ - rx_end_); }
    void take_receive_buffer() {
        if (!rx_) rx_ = std::make_unique_for_overwrite<std::byte[]>(rx_capacity_);
    }
    void release_receive_buffer() noexcept;
    void took_read(std::size_t n) noexcept;

    awaitable<std::error_code> read_more();
    void make_room_to_read();
    bool read_now(asio::mutable_buffer space, std::error_code& ec, std::size_t& n);
    bool wait_without_buffer();
    bool measures_read_waits() const noexcept;
    std::chrono::steady_clock::duration read_wait_clock() const noexcept;
    void note_read_wait(std::chrono::steady_clock::duration started) noexcept;
    // One read from the transport: into `space`, or (peek) a wait for data that consumes nothing.
    auto read_some(asio::mutable_buffer space, bool peek) {
        if constexpr (duplex::detail::peekable_socket<Next>)
            return next_.async_receive(space, peek ? asio::socket_base::message_peek : 0,
                                       duplex::detail::use_nothrow_awaitable);
        else
            return next_.async_read_some(space, duplex::detail::use_nothrow_awaitable);
    }
    std::error_code after_read(std::error_code ec, std::size_t n) noexcept;

    awaitable<receive_result> next_piece(asio::mutable_buffer buffer, bool receive_call = false,
                                         message_sink whole = {});
    template <class Container>
    static message_sink sink_of(Container& out, std::size_t max_size) noexcept {
        return {&out,
                [](void* c, std::size_t n) {
                    return reinterpret_cast<std::byte*>(duplex::detail::resize_uninitialized(*static_cast<Container*>(c), n));
                },
                max_size};
    }
    asio::mutable_buffer grow_message(const message_sink& whole, std::size_t filled);
    awaitable<bool> wait_before_reading();
    [[noreturn]] void receive_canceled();
    const std::byte* take_control_frame(const frame_header& header, std::size_t header_size);

    // Reading while no receive is pending: the keep-alive's answer (impl/read.hpp).
    void read_while_idle();
    void on_idle_read(std::error_code ec, std::size_t n);
    void take_idle_control_frames();

    // Marks a receive in progress; at its end, a keep-alive still waiting for the peer's answer goes on
    // reading by itself.
    struct receive_guard {
        stream_core& core;
        explicit receive_guard(stream_core& c) noexcept : core(c) { core.receiving_ = true; }
        ~receive_guard() {
            core.receiving_ = false;
            core.message_limit_ = core.options_.max_message_size;  // receive_message lowers it
            if (core.awaiting_keep_alive_answer_) core.read_while_idle();
        }
        receive_guard(const receive_guard&) = delete;
        receive_guard& operator=(const receive_guard&) = delete;
    };

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
    receive_step delivered(std::size_t count, bool end_of_message);
    receive_step took_payload(std::byte* destination, const std::byte* source, std::size_t count);
    receive_step took_payload_directly(std::byte* destination, std::size_t count);
    receive_step parse_step(asio::mutable_buffer buffer);

    enum class piece_status { delivered, end_of_message, need_input, next_frame, corrupt, too_big };
    struct decompressed_piece {
        piece_status status;
        std::size_t count = 0;
    };
    decompressed_piece decompress_piece(asio::mutable_buffer buffer);

    // The token forms' receive (impl/async_ops.hpp); `inline_ok`: a piece ready at once completes from
    // within the call (start_receive_now), else it is posted (Asio's rule for initiating functions).
    void start_token_receive(asio::mutable_buffer buffer, duplex::detail::receive_completion completion, bool inline_ok);
    void continue_token_receive(receive_step step, bool initiating);
    void on_token_receive_read(std::error_code ec, std::size_t n, bool into_caller, bool peek,
                               std::chrono::steady_clock::duration started);
    awaitable<receive_result> finish_receive_in_coroutine(receive_step step);
    void finish_token_receive(std::error_code ec, receive_result result, bool initiating);
    struct token_receive {
        asio::mutable_buffer buffer;
        duplex::detail::receive_completion completion;
    };

    static constexpr const char* incomplete_utf8 = "a text message ends inside a UTF-8 sequence";
    // Ends the message being received; false when a text message ends inside a UTF-8 sequence.
    bool end_message() noexcept {
        in_message_ = false;
        partly_delivered_ = false;
        return message_kind_ != message_type::text || utf8_.complete();
    }

    struct violation {
        websocket_errc errc;
        std::string detail;
    };
    std::optional<violation> header_violation(const frame_header& h) const;

    // ---- the close handshake and failing (impl/close.hpp) ----

    bool may_close(close_status status, std::string_view description) const;
    awaitable<receive_result> on_close_frame(const std::byte* payload, std::size_t size, std::size_t gathered = 0);
    void abort_now(std::error_code reason) noexcept;
    void mark_request_ended() noexcept;
    awaitable<void> fail(websocket_errc errc, std::string detail);
    awaitable<void> fail_transport(std::error_code ec);
    void fail_slow_consumer(websocket_errc errc);
    void throw_if_send_queue_full();
    websocket_errc map_transport_error(std::error_code ec) const noexcept;
    awaitable<void> linger_and_close(bool shutdown_first);
    awaitable<void> finish_transport() { co_await linger_and_close(role_ == role::server); }
    void queue_close_frame(close_status status, std::string_view reason);
    void queue_close(close_status status, std::string_view description);
    void close_now() noexcept;

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
        if (close_sent_)
            throw websocket_error(websocket_errc::invalid_state, "send after close: our close frame is sent "
                                                                 "(close, close_output, or the server's 1001 at shutdown)");
    }

    // ---- sending (impl/write.hpp) ----

    frame_header message_header(asio::const_buffer data, message_type type, bool end_of_message, message_flags flags,
                                bool& compressed);
    bool takes_direct_write(asio::const_buffer data, bool compressed) const noexcept;
    void commit_message(message_type type, bool end_of_message, bool compressed) noexcept;
    void queue_message(const frame_header& header, asio::const_buffer data, message_type type, bool compressed);
    awaitable<void> wait_for_send_room();
    [[noreturn]] static void throw_send_canceled_while_queued();

    void append_frame(const frame_header& header, asio::const_buffer data);
    void append_compressed_frame(frame_header header, asio::const_buffer data, bool end_of_message);
    void queue_frame(opcode op, const std::byte* payload, std::size_t size);
    void schedule_flush();
    void swap_output_buffers();
    void start_write();
    void on_written(std::error_code ec);
    void on_write_error(std::error_code ec);
    awaitable<void> wait_until_flushed();
    awaitable<void> flush_all();

    // Shared frames in the send queue (pub/sub; websocket/detail/shared_frame_queue.hpp).
    std::size_t queued_bytes() const noexcept { return out_.size() + (shared_ ? shared_->queued_bytes : 0); }
    bool nothing_queued() const noexcept { return out_.empty() && (!shared_ || shared_->queued.empty()); }
    bool takes_messages() const noexcept;
    send_status meet_backpressure(const backpressure_options& limit);
    void queue_prepared(const prepared_message& message);
    void place_shared_frame(const shared_frame_ptr& frame);
    void release_deferred_messages();
    shared_frame_queue& shared_frames();
    std::span<const asio::const_buffer> in_flight_buffers(std::span<const asio::const_buffer> tail);
    void finish_write() noexcept;
    void drained() noexcept;

    // asio::transfer_all that also counts the writes, for the send timeout to see the peer reading.
    struct counting_transfer_all {
        std::size_t& progress;
        std::size_t operator()(const std::error_code& ec, std::size_t) const noexcept {
            ++progress;
            return ec ? 0 : 64 * 1024;
        }
    };

    // ---- timers (impl/timers.hpp) ----

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
    void watch_peer();
    void arm_send_timer();
    void wait_to_ping();
    void ping();
    void arm_deadline(std::chrono::steady_clock::duration timeout, websocket_errc reason);
    void disarm_deadline() noexcept { deadline_.cancel(); }

    // A timer that never expires serves as a condition variable: notify() cancels its waits, and wakes
    // a token form's send held by backpressure (async_ops.hpp).
    awaitable<void> wait_for_event() { co_await wake_.async_wait(duplex::detail::use_nothrow_awaitable); }
    void notify() noexcept {
        wake_.cancel();
        if (send_room_waiter_) wake_send_room_waiter();
    }
    void wake_send_room_waiter() noexcept;
    void wait_for_send_room(duplex::detail::send_completion completion);

    // ---- state ----

    std::shared_ptr<void> retained_;  // first, so that it outlives everything below (see retain)
    Next next_;
    role role_;
    stream_options options_;
    std::atomic<websocket_state> state_ = websocket_state::none;  // read from any thread (state())
    std::string sub_protocol_;
    std::error_code failure_;
    std::optional<websocket_errc> deadline_fired_;

    // Receiving.
    std::size_t message_limit_;
    // The receive buffer starts at rx_initial_ and doubles, up to rx_limit_, after each read that filled
    // it (traffic that brings more than it holds); given back while quiet, it starts small again.
    std::size_t rx_initial_, rx_limit_;
    std::size_t rx_capacity_;
    std::unique_ptr<std::byte[]> rx_;  // taken at the first read; freed while quiet (wait_without_buffer)
    std::size_t rx_begin_ = 0, rx_end_ = 0;
    bool rx_filled_ = false;     // the last read into rx_ filled it: grow before the next
    bool read_again_now_ = false;  // the last read filled its space: more is likely there (read_now)
    unsigned reads_at_once_ = 0;   // reads done by read_now since the last one through the event loop
    bool receive_quiet_ = true;  // the next wait on an empty buffer gives the buffer back (a new connection)
    std::byte peeked_{};         // where a wait without buffer peeks; never read
    frame_header frame_;
    std::uint64_t frame_remaining_ = 0, frame_offset_ = 0, message_size_ = 0;
    std::size_t message_fragments_ = 0;  // frames of the message being received so far
    message_type message_kind_ = message_type::binary;
    utf8_validator utf8_;
    bool in_frame_ = false, in_message_ = false, receiving_ = false, close_received_ = false;
    bool receive_compressed_ = false;  // the message being received has RSV1 on its first frame
    bool partly_delivered_ = false;    // receive returned part of the current message (see receive_canceled)
    bool idle_reading_ = false;        // read_while_idle's read is pending; a receive waits for it
    bool idle_read_blocked_ = false;   // read_while_idle found the buffer full of unreceived data
    std::size_t rx_unmasked_ = 0;      // bytes of the current compressed frame at rx_begin_ already unmasked
    token_receive token_receive_;      // the receive of a token form in progress (async_ops.hpp)
    duplex::detail::send_completion send_room_waiter_;  // a token form's send held by backpressure
    // A token form's send whose message went into the queue: completed by the flush that the message
    // scheduled (after the write starts), saving a post of its own (impl/async_ops.hpp).
    duplex::detail::send_completion completes_after_flush_;

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

    // Shared frames (pub/sub), once one came; and who wants to know when the queue has drained.
    std::unique_ptr<shared_frame_queue> shared_;
    duplex::detail::drain_listener* drain_listener_ = nullptr;

    // permessage-deflate's codec, built only when the handshake negotiated it (zlib's state is not
    // movable, and a connection without compression should not carry its ~300 bytes).
    std::unique_ptr<duplex::deflate::permessage> compression_;

    asio::steady_timer wake_;
    asio::steady_timer deadline_;
    duplex::detail::executor_home home_;  // for can_start_here

    // Keep-alive (off unless started) and the request's lifetime.
    std::unique_ptr<asio::steady_timer> keep_alive_timer_;
    std::chrono::steady_clock::duration keep_alive_interval_{}, keep_alive_timeout_{};
    std::chrono::steady_clock::time_point last_received_{};
    bool awaiting_keep_alive_answer_ = false;  // a ping with a timeout went out and nothing came since
    std::atomic<bool> request_ended_ = false;  // read from any thread (can_start_here)
};

}  // namespace duplex::ws::detail
