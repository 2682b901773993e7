// One HTTP/1.1 connection of duplex::app, over TCP or TLS: it reads requests (heads with their checks,
// limits and timeouts; bodies when a handler asks, answering Expect: 100-continue), runs each through
// the pipeline, writes the responses (keep-alive; file bodies a chunk at a time), and becomes a
// WebSocket when a handler accepts one. It also ends itself on the app's graceful shutdown.
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/file_sender.hpp>
#include <duplex/app/detail/handler_failure.hpp>
#include <duplex/app/detail/http2_connection.hpp>
#include <duplex/app/detail/response_content.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/config.hpp>
#include <duplex/http/host.hpp>
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
#include <system_error>
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
// WebSocket. Over TLS the handshake runs first, here on the connection's worker io_context, never in the accept loop.
template <class Transport>
class http_connection final : public request_connection,
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
            if constexpr (is_tls_transport<Transport>::value) {
                if (secured) secured = co_await handshake();
                // ALPN chose the version: h2 is served by an HTTP/2 connection; with HTTP/2 alone
                // configured, a client that did not choose it is turned away.
                if (secured && transport_.alpn_protocol() == "h2") {
                    secured = false;
                    co_await serve_http2({});
                } else if (secured && core_.https && core_.https->protocols == http_protocols::http2 &&
                           !core_.https_context_given) {
                    secured = false;
                    close_transport(transport_);
                }
            }
            if (secured) co_await serve();
        } catch (const std::exception& e) {
            core_.log(log_level::debug, "connection from " + peer() + " ended: " + e.what());
        }
        if (websocket_) co_await websocket_->end_request();
        deadline_.cancel();
        core_.withdraw(entry);
        --core_.active_connections;
    }

    void abandon() noexcept override {
        if (websocket_) websocket_->end_request_now();
        if (http2_) http2_->abandon();
    }

    void hand_over_websocket() noexcept override { websocket_.reset(); }

    void begin_shutdown() override {
        asio::post(transport_executor_, [self = this->shared_from_this()] { self->shut_down(); });
    }

    awaitable<websocket> upgrade(const http::request& request, const accept_context& context,
                                 const websocket_options& options) override {
        // What follows the request belongs to the WebSocket: a body (not that an upgrade should have one)
        // must not be read as frames.
        if (body_remaining_ != 0 && !co_await take_body(nullptr))
            throw std::system_error(read_error_, "the upgrade request's body did not arrive in full");
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

    // The connection becomes HTTP/2 (ALPN h2, or the h2c preface): `prefix` is what was read of it. Its
    // preface must be complete within request_timeout of its first byte (an h2c one's began as a request
    // head, whose deadline it keeps).
    awaitable<void> serve_http2(std::span<const std::byte> prefix) {
        const auto preface_deadline =
            prefix.empty() ? std::chrono::steady_clock::now() + core_.options.request_timeout : deadline_.expiry();
        http2_ = std::make_shared<http2_connection<Transport>>(std::move(transport_), core_, peer());
        buffer_.reset();
        // A shutdown that came during the TLS handshake or the first read found no HTTP/2 connection.
        if (core_.stopping) http2_->shut_down();
        co_await http2_->run(prefix, preface_deadline);
    }

    awaitable<void> serve() {
        for (bool first = true;; first = false) {
            http::request_parser parser(core_.options.http_limits);
            const bool got_head = co_await read_head(parser, first && core_.options.http2_prior_knowledge);
            if (!got_head) co_return;
            // HTTP/2 with prior knowledge opens with "PRI * HTTP/2.0", which the HTTP/1.1 parser refuses
            // (505): on the first request of an h2c-enabled endpoint it hands the connection over.
            if (first && parser.status() == http::parse_status::error && core_.options.http2_prior_knowledge &&
                buffered_from_start().starts_with(http2_preface_line)) {
                const auto prefix = std::vector<std::byte>(buffer_.get(), buffer_.get() + end_);
                co_await serve_http2(prefix);
                co_return;
            }
            if (parser.status() == http::parse_status::error) {
                co_await write_error(parser.error_status(), parser.error_message());
                co_return;
            }
            auto request = std::move(parser.get());
            if (const auto refusal = begin_request(request); refusal.status != 0) {
                co_await write_error(refusal.status, refusal.reason);
                co_return;
            }
            bool keep_alive = wants_keep_alive(request);
            http_context ctx(std::move(request), *this);
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
            // A body nobody read is dropped now, before the response, so that a client still sending it
            // is not stuck (and the next request can follow); one the client holds back until it gets
            // 100 Continue is not waited for: the connection closes after the response instead.
            if (body_remaining_ != 0 && keep_alive && !failure) keep_alive = co_await discard_body();
            const bool again = keep_alive && !failure && !core_.stopping;
            const bool written = co_await write_response(ctx, again);
            std::string().swap(body_);  // an idle keep-alive connection holds no body
            if (!written) {
                close_transport(transport_);
                co_return;
            }
            if (!again) {
                co_await close_gracefully();
                co_return;
            }
        }
    }

    void report(std::exception_ptr failure, const http::request& request, bool websocket) const {
        report_handler_failure(core_, failure, request, websocket, peer());
    }

    std::string peer() const { return endpoint_text(peer_); }

    // Reads one request head. The idle timeout runs until its first byte, the request timeout after.
    awaitable<bool> read_head(http::request_parser& parser, bool h2c_possible) {
        bool started = begin_ != end_;
        arm_deadline(started ? core_.options.request_timeout : core_.options.idle_timeout);
        for (;;) {
            // The h2c preface's first line may arrive in pieces: the parser, which would consume them, gets
            // the bytes once they can no longer be the start of that line, so that serve() sees it whole.
            if (!(h2c_possible && could_be_preface_line())) {
                begin_ += parser.feed(buffered());
                if (parser.status() != http::parse_status::need_more) break;
            }
            waiting_for_request_ = parser.head_bytes() == 0 && begin_ == end_;
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

    struct refusal {
        int status = 0;  // 0: the request goes to the pipeline
        std::string_view reason;
    };

    // Checks a request head before the pipeline sees it, and notes its body, which is read only when a
    // handler asks: 400 for a missing, repeated or invalid Host (RFC 9112 §3.2) or a bad Content-Length,
    // 413 for a body over max_request_body_size (also when the client waits for 100 Continue: the final
    // status comes at once), 417 for an expectation other than 100-continue, 501 for Transfer-Encoding.
    refusal begin_request(const http::request& request) {
        body_remaining_ = 0;
        expect_continue_ = false;
        if (const auto problem = http::host_problem(request); !problem.empty()) return {400, problem};
        if (request.headers.contains("Transfer-Encoding")) return {501, http::reason_phrase(501)};
        // An HTTP/1.0 client knows no expectations: its Expect is ignored (RFC 9110 §10.1.1).
        const auto expect = request.version_minor >= 1 ? request.headers.get("Expect") : std::nullopt;
        if (expect && !http::detail::iequals(*expect, "100-continue")) return {417, http::reason_phrase(417)};
        const auto length_text = request.headers.get("Content-Length");
        if (!length_text) return {};
        std::size_t length = 0;
        const auto [end, ec] = std::from_chars(length_text->data(), length_text->data() + length_text->size(), length);
        if (request.headers.count("Content-Length") != 1 || ec != std::errc{} ||
            end != length_text->data() + length_text->size())
            return {400, "invalid Content-Length"};
        if (length > core_.options.max_request_body_size) return {413, http::reason_phrase(413)};
        body_remaining_ = length;
        expect_continue_ = expect.has_value() && length != 0;
        return {};
    }

    // http_context::read_body: the whole body, read on first use (after 100 Continue when the client
    // waits for it), within request_timeout.
    awaitable<std::string_view> read_body() override {
        if (body_remaining_ != 0) {
            if (expect_continue_) {
                static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
                arm_deadline(core_.options.request_timeout);
                auto [ec, n] = co_await asio::async_write(transport_, asio::buffer(go_on), use_nothrow_awaitable);
                deadline_.cancel();
                if (ec) throw std::system_error(ec, "could not send 100 Continue");
                expect_continue_ = false;
            }
            if (!co_await take_body(&body_))
                throw std::system_error(read_error_, "the request body did not arrive in full");
        }
        co_return std::string_view(body_);
    }

    // Reads and drops the rest of the body, unless the client waits for 100 Continue before sending
    // what is not here yet: false when the connection cannot go on to a next request.
    awaitable<bool> discard_body() {
        if (expect_continue_ && end_ - begin_ < body_remaining_) co_return false;
        co_return co_await take_body(nullptr);
    }

    // Takes the body_remaining_ bytes of the body from the connection, appending them to `into` (or
    // dropping them), within request_timeout; false when they did not come.
    awaitable<bool> take_body(std::string* into) {
        arm_deadline(core_.options.request_timeout);
        while (body_remaining_ != 0) {
            if (begin_ == end_ && co_await read_some() == 0) {
                deadline_.cancel();
                co_return false;
            }
            const auto take = std::min(body_remaining_, end_ - begin_);
            if (into) into->append(reinterpret_cast<const char*>(buffer_.get() + begin_), take);
            begin_ += take;
            body_remaining_ -= take;
        }
        deadline_.cancel();
        co_return true;
    }

    // Whether what was read so far is a proper start of the h2c preface's first line.
    bool could_be_preface_line() const noexcept {
        const auto seen = buffered_from_start();
        return seen.size() < http2_preface_line.size() && http2_preface_line.starts_with(seen);
    }

    // Everything read on a connection that has not moved past its first request head yet.
    std::string_view buffered_from_start() const noexcept {
        return {reinterpret_cast<const char*>(buffer_.get()), end_};
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

    // Writes the response (a file body a chunk at a time); false when it could not be written in full.
    awaitable<bool> write_response(http_context& ctx, bool keep_alive) {
        auto& response = ctx.response;
        settle_content_fields(response);
        response.headers.set("Connection", keep_alive ? "keep-alive" : "close");
        std::string head;
        http::write_response_head(head, response.status_code, response.headers);
        const bool send_body = ctx.request.method != "HEAD";
        const auto body = asio::buffer(response.body.data(), send_body && !response.file ? response.body.size() : 0);
        // request_timeout bounds each write, not the whole response: a large download to a slow client
        // goes on as long as it moves, one that stops reading is cut off.
        const auto arm_write_deadline = [this] { arm_deadline(core_.options.request_timeout); };
        std::size_t written = 0;
        bool complete = true;
        while (complete && written < head.size() + body.size()) {
            arm_write_deadline();
            const std::array<asio::const_buffer, 2> rest{
                asio::buffer(head) + written, body + (written > head.size() ? written - head.size() : 0)};
            auto [ec, n] = co_await transport_.async_write_some(rest, use_nothrow_awaitable);
            complete = !ec;
            written += n;
        }
        if (complete && response.file && send_body)
            complete = co_await send_file(transport_, *response.file, arm_write_deadline);
        deadline_.cancel();
        co_return complete;
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
        if (http2_) {
            http2_->shut_down();
        } else if (websocket_) {
            if (websocket_->state() != websocket_state::open) return;
            asio::co_spawn(transport_executor_, close_going_away(*websocket_), asio::detached);
        } else if (waiting_for_request_) {
            interrupt();
        }
    }

    static awaitable<void> close_going_away(ws::stream<Transport> stream) {
        try {
            // A peer that never answers is dropped after close_timeout (its handler's receive fails with
            // close_timeout), so that it does not hold the shutdown up until shutdown_timeout.
            co_await stream.close_output_with_deadline(close_status::endpoint_unavailable, "server shutting down");
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
    std::shared_ptr<http2_connection<Transport>> http2_;  // once the connection speaks HTTP/2
    bool waiting_for_request_ = false;
    std::error_code read_error_;
    // The request's body: what is still unread, whether the client waits for 100 Continue before sending
    // it, and what a handler read (released after the response).
    std::size_t body_remaining_ = 0;
    bool expect_continue_ = false;
    std::string body_;
};

}  // namespace duplex::detail
