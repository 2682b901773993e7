// One HTTP/1.1 connection of duplex::app, over TCP or TLS: it reads requests (heads, bodies, limits and
// timeouts), runs each through the pipeline, writes the responses (keep-alive), and becomes a
// WebSocket when a handler accepts one. It also ends itself on the app's graceful shutdown.
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/config.hpp>
#include <duplex/http/parser.hpp>
#include <duplex/http/response.hpp>
#include <duplex/tls/stream.hpp>
#include <duplex/websocket/stream.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace duplex::detail {

template <class Transport>
asio::ip::tcp::endpoint remote_endpoint(Transport& transport) {
    std::error_code ignored;
    return transport.lowest_layer().remote_endpoint(ignored);
}

template <class Transport>
struct is_tls_transport : std::false_type {};
template <class Next>
struct is_tls_transport<tls::stream<Next>> : std::true_type {};

inline bool wants_keep_alive(const http::request& r) {
    if (r.headers.has_token("Connection", "close")) return false;
    if (r.version_major == 1 && r.version_minor == 0) return r.headers.has_token("Connection", "keep-alive");
    return true;
}

// One HTTP/1.1 connection, over TCP or TLS: requests through the pipeline until it closes or becomes a
// WebSocket. Over TLS the handshake runs first, here on the connection's strand, never in the accept loop.
template <class Transport>
class http_connection final : public upgrade_target,
                              public connection_base,
                              public std::enable_shared_from_this<http_connection<Transport>> {
public:
    http_connection(Transport transport, app_core& core)
        : transport_(std::move(transport)),
          core_(core),
          buffer_(std::make_unique_for_overwrite<std::byte[]>(buffer_capacity)),
          deadline_(transport_.get_executor()) {}

    awaitable<void> run() {
        ++core_.active_connections;
        const auto entry = core_.enroll(this->weak_from_this());
        try {
            // A shutdown that began between the accept and the enrolment did not see this connection.
            bool secured = !core_.stopping;
            if (!secured) close_transport(transport_);
            if constexpr (is_tls_transport<Transport>::value)
                if (secured) secured = co_await handshake();
            if (secured) co_await serve();
        } catch (const std::exception& e) {
            core_.log(log_level::debug, "connection from " + peer() + " ended: " + e.what());
        }
        if (websocket_) websocket_->end_request();
        deadline_.cancel();
        core_.withdraw(entry);
        --core_.active_connections;
    }

    void abandon() noexcept override {
        if (websocket_) websocket_->end_request();
    }

    void hand_over_websocket() noexcept override { websocket_.reset(); }

    void begin_shutdown() override {
        asio::post(transport_executor_, [self = this->shared_from_this()] { self->shut_down(); });
    }

    awaitable<websocket> upgrade(const http::request& request, const accept_context& context,
                                 const websocket_options& options) override {
        auto limits = core_.options.websocket_limits;
        limits.receive_buffer_size = options.receive_buffer_size;
        websocket_.emplace(std::move(transport_), ws::role::server, limits);
        websocket_->retain(core_.io);
        websocket_->prime(std::span(buffer_.get() + begin_, end_ - begin_));
        begin_ = end_ = 0;
        std::optional<duplex::deflate::options> compression;
        if (context.dangerous_enable_compression) {
            compression.emplace();
            compression->server_max_window_bits = context.server_max_window_bits;
            compression->disable_server_context_takeover = context.disable_server_context_takeover;
        }
        const http::headers no_extra_headers;
        co_await websocket_->accept(request, context.sub_protocol, no_extra_headers, compression);
        buffer_.reset();  // this connection speaks WebSocket from now on: its HTTP read buffer is not needed
        websocket_->start_keep_alive(context.keep_alive_interval.value_or(options.keep_alive_interval),
                                     context.keep_alive_timeout.value_or(options.keep_alive_timeout));
        if (core_.stopping) begin_shutdown();
        co_return websocket_->as_websocket();
    }

private:
    static constexpr std::size_t buffer_capacity = 4096;
    // How long our close_notify (or TCP half-close) and the peer's answer may take at the end.
    static constexpr auto goodbye_timeout = std::chrono::seconds(2);

    // The TLS handshake, bounded by https_options::handshake_timeout. Plain HTTP gets 400 from the TLS
    // layer; whatever fails, the transport is closed already and there is nothing worth reporting.
    awaitable<bool> handshake() {
        waiting_for_request_ = true;  // a shutdown ends a connection still in its handshake at once
        const auto failure = co_await transport_.accept(core_.https->handshake_timeout);
        waiting_for_request_ = false;
        co_return !failure;
    }

    awaitable<void> serve() {
        for (;;) {
            http::request_parser parser(core_.options.http_limits);
            const bool got_head = co_await read_head(parser);
            if (!got_head) co_return;
            if (parser.status() == http::parse_status::error) {
                co_await write_error(parser.error_status(), parser.error_message());
                co_return;
            }
            auto request = std::move(parser.get());
            std::string body;
            const auto body_status = co_await read_body(request, body);
            if (body_status != 0) {
                co_await write_error(body_status, http::reason_phrase(body_status));
                co_return;
            }
            const bool keep_alive = wants_keep_alive(request);
            http_context ctx(std::move(request), *this);
            ctx.request_body = std::move(body);
            std::exception_ptr failure;
            try {
                co_await duplex::next(core_.pipeline, 0, ctx)(ctx);
            } catch (...) {
                failure = std::current_exception();
            }
            if (ctx.websockets.accepted()) {
                if (failure) report(failure, ctx.request, true);
                co_return;
            }
            if (failure) {
                report(failure, ctx.request, false);
                ctx.response = {};
                ctx.response.status_code = 500;
            }
            const bool again = keep_alive && !failure && !core_.stopping;
            co_await write_response(ctx, again);
            if (!again) {
                co_await close_gracefully();
                co_return;
            }
        }
    }

    // A handler's exception, with the connection and the request it came from. A WebSocket that its
    // peer ended (it vanished, broke the protocol, read too slowly) is the peer's doing, not the
    // handler's: debug. Anything else is a failure of the handler: error.
    void report(std::exception_ptr failure, const http::request& request, bool websocket) const {
        auto level = log_level::error;
        std::string what;
        try {
            std::rethrow_exception(failure);
        } catch (const websocket_error& e) {
            if (websocket && e.code().category() == websocket_category() && ended_by_peer(e.code()))
                level = log_level::debug;
            what = e.what();
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
            what = "a non-standard exception";
        }
        if (!core_.logs(level)) return;
        core_.log(level, (websocket ? "WebSocket handler for " : "request ") + request.method + " " + request.target +
                             " from " + peer() + " failed" + (websocket ? "" : " (500)") + ": " + what);
    }

    static bool ended_by_peer(std::error_code ec) noexcept {
        switch (static_cast<websocket_errc>(ec.value())) {
        case websocket_errc::protocol_error:
        case websocket_errc::invalid_payload_data:
        case websocket_errc::message_too_big:
        case websocket_errc::connection_closed_prematurely:
        case websocket_errc::close_timeout:
        case websocket_errc::keep_alive_timeout:
        case websocket_errc::frame_too_big:
        case websocket_errc::too_many_fragments:
        case websocket_errc::send_queue_full:
        case websocket_errc::send_timeout: return true;
        default: return false;
        }
    }

    // "address:port" of the client, for the log.
    std::string peer() const {
        const auto address = peer_.address().to_string();
        return (peer_.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(peer_.port());
    }

    // Reads one request head. The idle timeout runs until its first byte, the request timeout after.
    awaitable<bool> read_head(http::request_parser& parser) {
        bool started = begin_ != end_;
        arm_deadline(started ? core_.options.request_timeout : core_.options.idle_timeout);
        for (;;) {
            begin_ += parser.feed(buffered());
            if (parser.status() != http::parse_status::need_more) break;
            waiting_for_request_ = parser.head_bytes() == 0;
            if (!started && !waiting_for_request_) {
                started = true;
                arm_deadline(core_.options.request_timeout);
            }
            // A shutdown that came while the previous response was being written found the connection
            // busy and left it to finish: it ends here, before waiting for another request.
            std::size_t n = 0;
            if (waiting_for_request_ && core_.stopping)
                read_error_ = asio::error::operation_aborted;
            else
                n = co_await read_some();
            waiting_for_request_ = false;
            if (n == 0) {
                co_await close_after_end_of_requests();
                co_return false;
            }
        }
        deadline_.cancel();
        co_return true;
    }

    // 0, or the status that refuses the body: 400 bad length, 413 too large, 501 transfer coding.
    awaitable<int> read_body(const http::request& request, std::string& body) {
        if (request.headers.contains("Transfer-Encoding")) co_return 501;
        const auto length_text = request.headers.get("Content-Length");
        if (!length_text) co_return 0;
        if (request.headers.count("Content-Length") != 1) co_return 400;
        std::size_t length = 0;
        const auto [end, ec] = std::from_chars(length_text->data(), length_text->data() + length_text->size(), length);
        if (ec != std::errc{} || end != length_text->data() + length_text->size()) co_return 400;
        if (length > core_.options.max_request_body_size) co_return 413;
        arm_deadline(core_.options.request_timeout);
        while (body.size() < length) {
            if (begin_ == end_) {
                const auto n = co_await read_some();
                if (n == 0) co_return 400;
            }
            const auto take = std::min(length - body.size(), end_ - begin_);
            body.append(reinterpret_cast<const char*>(buffer_.get() + begin_), take);
            begin_ += take;
        }
        deadline_.cancel();
        co_return 0;
    }

    std::string_view buffered() const noexcept {
        return {reinterpret_cast<const char*>(buffer_.get() + begin_), end_ - begin_};
    }

    // Bytes read (0 at end of stream, on error or on timeout).
    awaitable<std::size_t> read_some() {
        if (begin_ == end_) begin_ = end_ = 0;
        if (end_ == buffer_capacity) {
            std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        auto [ec, n] = co_await transport_.async_read_some(asio::buffer(buffer_.get() + end_, buffer_capacity - end_),
                                                           use_nothrow_awaitable);
        end_ += n;
        read_error_ = ec;
        co_return ec ? 0 : n;
    }

    awaitable<void> write_response(http_context& ctx, bool keep_alive) {
        auto& response = ctx.response;
        if (!response.body.empty() && !response.headers.contains("Content-Type"))
            response.headers.add("Content-Type", "text/plain; charset=utf-8");
        response.headers.set("Content-Length", std::to_string(response.body.size()));
        response.headers.set("Connection", keep_alive ? "keep-alive" : "close");
        std::string head;
        http::write_response_head(head, response.status_code, response.headers);
        const auto body = asio::buffer(response.body.data(), ctx.request.method != "HEAD" ? response.body.size() : 0);
        // request_timeout bounds each write, not the whole response: a large download to a slow client
        // goes on as long as it moves, one that stops reading is cut off.
        std::size_t written = 0;
        while (written < head.size() + body.size()) {
            arm_deadline(core_.options.request_timeout);
            const std::array<asio::const_buffer, 2> rest{
                asio::buffer(head) + written, body + (written > head.size() ? written - head.size() : 0)};
            auto [ec, n] = co_await transport_.async_write_some(rest, use_nothrow_awaitable);
            if (ec) break;
            written += n;
        }
        deadline_.cancel();
    }

    awaitable<void> write_error(int status, std::string_view message) {
        http_response response;
        response.status_code = status;
        response.body = std::string(message);
        http::request request;
        http_context ctx(std::move(request), *this);
        ctx.response = std::move(response);
        co_await write_response(ctx, false);
        co_await close_gracefully();
    }

    // Half-close (over TLS: close_notify), then read (bounded) until the client closes too, so that unread
    // request bytes do not turn our close into a reset that destroys the response in flight.
    awaitable<void> close_gracefully() {
        arm_deadline(goodbye_timeout);
        co_await async_shutdown_send(transport_);
        std::size_t n = 1;
        while (n != 0) {
            begin_ = end_ = 0;
            n = co_await read_some();
        }
        deadline_.cancel();
        close_transport(transport_);
    }

    // Between requests the connection ended: the client closed it (over TLS: its close_notify), it idled
    // past idle_timeout, or the app is stopping (both interrupt the read). A TLS connection that can still
    // say so sends its close_notify before closing; one the client dropped, or one cut off by the request
    // timeout, just closes.
    awaitable<void> close_after_end_of_requests() {
        const bool ended_cleanly = read_error_ == asio::error::eof || read_error_ == asio::error::operation_aborted;
        if (ended_cleanly && transport_is_open(transport_)) {
            arm_deadline(goodbye_timeout);
            co_await async_shutdown_send(transport_);
        }
        deadline_.cancel();
        close_transport(transport_);
    }

    void arm_deadline(std::chrono::steady_clock::duration timeout) {
        deadline_.expires_after(timeout);
        deadline_.async_wait([weak = this->weak_from_this()](std::error_code ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && !self->websocket_) self->interrupt();
        });
    }

    // Ends the connection from outside its coroutine. One waiting for its next request (or in its TLS
    // handshake) has its read cancelled, so that the coroutine closes it politely; one anywhere else is
    // closed at once.
    void interrupt() noexcept {
        if (waiting_for_request_) {
            std::error_code ignored;
            transport_.lowest_layer().cancel(ignored);
        } else {
            close_transport(transport_);
        }
    }

    // On the connection's executor: WebSockets get close 1001; a connection idle between requests
    // closes now; one in the middle of a request closes after its response.
    void shut_down() {
        if (websocket_) {
            if (websocket_->state() != websocket_state::open) return;
            asio::co_spawn(transport_executor_, close_going_away(*websocket_), asio::detached);
        } else if (waiting_for_request_) {
            interrupt();
        }
    }

    static awaitable<void> close_going_away(ws::stream<Transport> stream) {
        try {
            co_await stream.close_output(close_status::endpoint_unavailable, "server shutting down");
        } catch (const std::exception&) {
            // The connection is already ending; its handler sees why.
        }
    }

    Transport transport_;
    typename Transport::executor_type transport_executor_ = transport_.get_executor();
    asio::ip::tcp::endpoint peer_ = remote_endpoint(transport_);
    app_core& core_;
    std::unique_ptr<std::byte[]> buffer_;
    std::size_t begin_ = 0, end_ = 0;
    asio::steady_timer deadline_;
    std::optional<ws::stream<Transport>> websocket_;
    bool waiting_for_request_ = false;
    std::error_code read_error_;
};

}  // namespace duplex::detail
