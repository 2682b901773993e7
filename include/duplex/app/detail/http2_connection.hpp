// One HTTP/2 connection of duplex::app, over TLS (ALPN h2) or TCP (h2c with prior knowledge): an
// nghttp2 server session (http2/session.hpp) driven on the connection's io_context. One coroutine reads
// and feeds nghttp2; one writes whatever nghttp2 has ready, many frames per write. Each request stream
// runs the same pipeline as an HTTP/1.1 request, in a coroutine of its own with its own http_context:
// middleware, map, static files, 404/500, request bodies. An RFC 8441 extended CONNECT becomes a
// WebSocket over its stream (http2/tunnel.hpp) when a handler accepts it.
//
// Flow control follows the handlers: a request body's bytes reopen the stream's window once read_body
// asks for them, a WebSocket's once its handler has received them. The connection's window reopens as
// DATA arrives, so a stalled stream holds at most its own window (initial_stream_window_size) and never
// blocks the others. The app's graceful shutdown sends GOAWAY (the
// streams already taken finish, no new ones start) and close 1001 to every WebSocket; the connection ends
// when its last stream has.
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/handler_failure.hpp>
#include <duplex/app/detail/response_content.hpp>
#include <duplex/app/http_context.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/config.hpp>
#include <duplex/detail/recycling_awaitable.hpp>
#include <duplex/detail/transport.hpp>
#include <duplex/http/host.hpp>
#include <duplex/http/response.hpp>
#include <duplex/http2/connection_io.hpp>
#include <duplex/http2/session.hpp>
#include <duplex/http2/tunnel.hpp>
#include <duplex/websocket/handshake.hpp>
#include <duplex/websocket/stream.hpp>

#include <algorithm>
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
#include <unordered_map>
#include <vector>

namespace duplex::detail {

// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4); an HTTP/1.1 parser
// stops at its first line, "PRI * HTTP/2.0".
inline constexpr std::string_view http2_preface_line = "PRI * HTTP/2.0\r\n";

// Header fields that mean nothing in HTTP/2 (RFC 9113 §8.2.2): a response must not carry them.
inline bool is_connection_specific(std::string_view lowercase_name) noexcept {
    return lowercase_name == "connection" || lowercase_name == "keep-alive" || lowercase_name == "proxy-connection" ||
           lowercase_name == "transfer-encoding" || lowercase_name == "upgrade";
}

template <class Transport>
class http2_connection final : public http2::tunnel_host,
                               public std::enable_shared_from_this<http2_connection<Transport>> {
    // One request stream: what nghttp2 told us of it, and the request_connection its http_context uses.
    struct request_stream final : request_connection {
        request_stream(http2_connection& c, std::int32_t i) : connection(c), id(i) {}

        awaitable<websocket> upgrade(const http::request& request, const accept_context& context,
                                     const websocket_options& options) override {
            return connection.upgrade(*this, request, context, options);
        }
        awaitable<std::string_view> read_body() override { return connection.read_body(*this); }
        void hand_over_websocket() noexcept override { socket.reset(); }

        http2_connection& connection;
        const std::int32_t id;
        http::request request;
        std::string authority;
        std::size_t header_list_size = 0;  // RFC 9113 §6.5.2's count
        bool header_list_too_large = false;
        // The body: what arrived (up to max_request_body_size), the bytes not yet given back to the
        // window (until read_body asks), and whether it is complete.
        std::string body;
        std::size_t unconsumed = 0;
        bool body_wanted = false;
        bool body_too_large = false;
        bool expects_continue = false;  // Expect: 100-continue
        bool request_ended = false;  // the client's END_STREAM
        bool closed = false;         // nghttp2 closed the stream (both ends, or a reset)
        bool response_ended = false;  // our END_STREAM went out
        std::unique_ptr<asio::steady_timer> body_arrival;  // read_body waits on it
        // The response while nghttp2 sends it (its body source).
        http_response response;
        std::size_t body_sent = 0;
        // An extended CONNECT: its DATA, until and after a handler accepts the WebSocket.
        std::shared_ptr<http2::tunnel_state> tunnel;
        std::optional<ws::stream<http2::tunnel>> socket;
        bool tunnel_open = false;  // the 200 was submitted: read_body feeds nghttp2 from the tunnel
    };

public:
    http2_connection(Transport transport, app_core& core, std::string peer)
        : transport_(std::move(transport)),
          core_(core),
          peer_(std::move(peer)),
          session_(*this, core.options.http2_limits),
          read_buffer_(std::make_unique_for_overwrite<std::byte[]>(read_buffer_size)),
          writer_wake_(executor_, asio::steady_timer::time_point::max()),
          ended_(executor_, asio::steady_timer::time_point::max()),
          idle_(executor_),
          write_deadline_(executor_),
          request_head_deadline_(executor_) {}

    // Serves the connection until its end; `prefix` is what was read before it was known to be HTTP/2, and
    // the client's connection preface must be complete by `preface_deadline`.
    awaitable<void> run(std::span<const std::byte> prefix, asio::steady_timer::time_point preface_deadline) {
        const auto self = this->shared_from_this();
        arm_preface_deadline(preface_deadline);
        asio::co_spawn(executor_, write_loop(self), asio::detached);
        bool healthy = prefix.empty() || feed(prefix);
        while (healthy && session_.want_read()) {
            if (streams_.empty() && pipelines_ == 0) arm_idle();
            auto [ec, n] = co_await transport_.async_read_some(asio::buffer(read_buffer_.get(), read_buffer_size),
                                                               recycling_nothrow_awaitable());
            idle_.cancel();
            if (ec) break;
            healthy = feed(std::span(read_buffer_.get(), n));
        }
        reading_ = false;
        wake_writer();
        while (!writer_done_) co_await ended_.async_wait(use_nothrow_awaitable);
        if (transport_is_open(transport_))
            co_await http2::linger(transport_, std::span(read_buffer_.get(), read_buffer_size), goodbye_timeout);
        close_transport(transport_);
        // What is left of the streams ends with the connection: tunnels and bodies read as reset.
        for (auto& [id, stream] : streams_) end_stream(*stream, NGHTTP2_CANCEL);
        streams_.clear();
        while (pipelines_ != 0) co_await ended_.async_wait(use_nothrow_awaitable);
    }

    // On the connection's executor (http_connection forwards the app's graceful shutdown): GOAWAY, and
    // close 1001 to every WebSocket.
    void shut_down() {
        if (shutting_down_) return;
        shutting_down_ = true;
        session_.go_away();
        for (auto& [id, stream] : streams_)
            if (stream->socket && stream->socket->state() == websocket_state::open)
                asio::co_spawn(executor_, close_going_away(*stream->socket), asio::detached);
        wake_writer();
    }

    // No thread runs the io_context any more (see connection_base::abandon). A handler suspended in a
    // WebSocket operation waits in its tunnel, not in the io_context, and its WebSocket holds this
    // connection: the tunnels end now, handing their pending completions to the io_context (whose
    // shutdown destroys them with the handlers' frames), and the streams let go of their sockets.
    void abandon() noexcept {
        for (auto& [id, stream] : streams_) {
            if (stream->socket) stream->socket->end_request_now();
            if (stream->tunnel) stream->tunnel->stream_closed(NGHTTP2_CANCEL);
            stream->socket.reset();
        }
    }

    // --- nghttp2's events (http2::server_session) ---

    int on_begin_request(std::int32_t id) {
        streams_.insert_or_assign(id, std::make_shared<request_stream>(*this, id));
        head_pending_ = id;
        return 0;
    }

    int on_header(std::int32_t id, std::string_view name, std::string_view value) {
        const auto stream = find(id);
        if (!stream || stream->header_list_too_large) return 0;
        stream->header_list_size += name.size() + value.size() + 32;
        if (stream->header_list_size > core_.options.http2_limits.max_header_list_size) {
            stream->header_list_too_large = true;
            stream->request = {};  // nothing of it is kept
            return 0;
        }
        auto& request = stream->request;
        if (name.starts_with(':')) {
            // nghttp2 has checked the pseudo-headers: known, once each, before the fields (RFC 9113 §8.3).
            if (name == ":method") request.method = value;
            else if (name == ":path") request.target = value;
            else if (name == ":authority") stream->authority = value;
            else if (name == ":protocol") request.protocol = value;
        } else if (name == "cookie" && request.headers.contains("cookie")) {
            // Split cookies are joined with "; " for an HTTP/1.1 view (RFC 9113 §8.2.3).
            http::headers joined;
            for (const auto& f : request.headers)
                joined.add(f.name, f.name == "cookie" ? f.value + "; " + std::string(value) : f.value);
            request.headers = std::move(joined);
        } else {
            request.headers.add(std::string(name), std::string(value));
        }
        return 0;
    }

    int on_request(std::int32_t id, bool end_stream) {
        head_complete(id);
        const auto stream = find(id);
        if (!stream) return 0;
        stream->request_ended = end_stream;
        if (stream->header_list_too_large) return respond_at_once(*stream, 431), 0;
        auto& request = stream->request;
        request.version_major = 2;
        request.version_minor = 0;
        // The request's authority is :authority; an HTTP/1.1 view has it as Host (RFC 9113 §8.3.1).
        if (const auto host = request.headers.get("host"); host && !stream->authority.empty() &&
                                                          !http::detail::iequals(*host, stream->authority))
            return respond_at_once(*stream, 400), 0;  // RFC 9113 §8.3.1: Host naming another entity
        if (!stream->authority.empty() && !request.headers.contains("host")) request.headers.add("host", stream->authority);
        if (request.method == "CONNECT") {
            // A CONNECT without :protocol asks for a TCP tunnel, and one with another protocol for
            // something we do not speak: neither reaches the pipeline, and neither gets a tunnel.
            if (!http::detail::iequals(request.protocol, "websocket")) return respond_at_once(*stream, 501), 0;
            stream->tunnel = std::make_shared<http2::tunnel_state>(id, *this, executor_);
            if (end_stream) stream->tunnel->end_of_input();
        }
        const std::string_view target = request.target;
        const auto question = target.find('?');
        request.path.assign(target.substr(0, question));
        if (question != std::string_view::npos) request.query.assign(target.substr(question + 1));
        if (const auto problem = http::host_problem(request); !problem.empty()) return respond_at_once(*stream, 400), 0;
        stream->expects_continue = http::detail::iequals(request.headers.get("expect").value_or(""), "100-continue");
        if (const auto length = request.headers.get("content-length")) {
            std::size_t n = 0;
            const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
            if (ec == std::errc{} && end == length->data() + length->size() && n > core_.options.max_request_body_size)
                return respond_at_once(*stream, 413), 0;
        }
        asio::co_spawn(executor_, serve_stream(this->shared_from_this(), stream), asio::detached);
        return 0;
    }

    int on_data(std::int32_t id, std::span<const std::byte> data) {
        // The connection's window reopens at once: what a stream holds is bounded by its own window.
        session_.consume_connection(data.size());
        const auto stream = find(id);
        if (!stream) return 0;
        if (stream->tunnel) {
            stream->tunnel->deliver(data);
            return 0;
        }
        if (stream->body_too_large || stream->body.size() + data.size() > core_.options.max_request_body_size) {
            // Dropped, and its window given back: the handler's read_body fails, the response is 413.
            stream->body_too_large = true;
            std::string().swap(stream->body);
            session_.consume_stream(id, data.size());
        } else {
            stream->body.append(reinterpret_cast<const char*>(data.data()), data.size());
            if (stream->body_wanted) session_.consume_stream(id, data.size());
            else stream->unconsumed += data.size();
        }
        wake_body_reader(*stream);
        return 0;
    }

    int on_end_of_request(std::int32_t id) {
        const auto stream = find(id);
        if (!stream) return 0;
        stream->request_ended = true;
        if (stream->tunnel) stream->tunnel->end_of_input();
        wake_body_reader(*stream);
        return 0;
    }

    int on_stream_close(std::int32_t id, std::uint32_t error_code) {
        head_complete(id);
        const auto it = streams_.find(id);
        if (it == streams_.end()) return 0;
        const auto stream = it->second;
        streams_.erase(it);
        end_stream(*stream, error_code);
        return 0;
    }

    // A response went out in full before its request did: the rest of the request is not wanted
    // (RFC 9113 §8.1, RST_STREAM(NO_ERROR)). A tunnel's END_STREAM is followed by a reset only when the
    // WebSocket has closed its transport meanwhile without the peer's END_STREAM (tunnel_state::close).
    void on_response_end(std::int32_t id) {
        const auto stream = find(id);
        if (!stream) return;
        stream->response_ended = true;
        if (stream->tunnel_open ? stream->tunnel->reset_after_end() : !stream->request_ended)
            session_.reset(id, NGHTTP2_NO_ERROR);
    }

    ssize_t read_body(void* source, std::int32_t, std::uint8_t* buffer, std::size_t length, std::uint32_t* data_flags) {
        auto& stream = *static_cast<request_stream*>(source);
        if (stream.tunnel_open) return stream.tunnel->produce(buffer, length, data_flags);
        auto& response = stream.response;
        std::size_t n = 0;
        std::size_t total = 0;
        if (response.file) {
            total = static_cast<std::size_t>(response.file->size());
            const auto wanted = std::min(length, total - stream.body_sent);
            const auto got = response.file->read_at(response.file->offset() + stream.body_sent,
                                                    std::span(reinterpret_cast<std::byte*>(buffer), wanted));
            if (got <= 0 && wanted != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the file shrank: reset
            n = static_cast<std::size_t>(std::max<decltype(got)>(got, 0));
        } else {
            total = response.body.size();
            n = std::min(length, total - stream.body_sent);
            std::memcpy(buffer, response.body.data() + stream.body_sent, n);
        }
        stream.body_sent += n;
        if (stream.body_sent == total) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
    }

    // --- http2::tunnel_host ---

    void tunnel_consumed(std::int32_t id, std::size_t n) override {
        session_.consume_stream(id, n);
        wake_writer();
    }
    void tunnel_has_output(std::int32_t id) override {
        session_.resume(id);
        wake_writer();
    }
    void tunnel_reset(std::int32_t id, std::uint32_t error_code) override {
        session_.reset(id, error_code);
        wake_writer();
    }

private:
    static constexpr std::size_t read_buffer_size = 16 * 1024;
    // The write buffer is handed to the transport once it holds this much, or nothing more is ready.
    static constexpr std::size_t write_batch = 64 * 1024;

    std::shared_ptr<request_stream> find(std::int32_t id) const {
        const auto it = streams_.find(id);
        return it == streams_.end() ? nullptr : it->second;
    }

    // Bytes read from the transport into nghttp2; false when the connection cannot go on.
    bool feed(std::span<const std::byte> bytes) {
        if (preface_missing_ != 0) {
            preface_missing_ -= std::min(preface_missing_, bytes.size());
            if (preface_missing_ == 0) request_head_deadline_.cancel();  // before any request head can arm it
        }
        const int rv = session_.receive(bytes);
        wake_writer();
        if (rv == 0) {
            if (head_pending_ != 0 && head_timed_ != head_pending_) arm_request_head_deadline();
            return true;
        }
        core_.log(log_level::debug, "HTTP/2 connection from " + peer_ + " ended: " + nghttp2_strerror(rv) +
                                        (session_.flood().empty() ? "" : " (" + std::string(session_.flood()) + ")"));
        // A flood (CONTINUATION frames past max_continuations, control frames we are not let to answer,
        // frames that give us nothing: server_session counts them)
        // is told ENHANCE_YOUR_CALM; a client that is not speaking HTTP/2 at all is told nothing.
        if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS || rv == NGHTTP2_ERR_FLOODED) session_.terminate(NGHTTP2_ENHANCE_YOUR_CALM);
        else if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC) session_.terminate(NGHTTP2_INTERNAL_ERROR);
        return false;
    }

    void wake_writer() { writer_wake_.cancel(); }

    // Writes what nghttp2 has ready, a batch at a time, until the session is over (GOAWAY out and no
    // stream left, or the reader has stopped) or a write fails or stalls past request_timeout.
    awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<http2_connection> self) {
        const bool healthy = co_await http2::write_frames(transport_, session_, out_, writer_wake_, reading_, write_batch, [this] {
            write_deadline_.expires_after(core_.options.request_timeout);
            write_deadline_.async_wait(asio::bind_allocator(handler_allocator<void>{}, [weak = this->weak_from_this()](std::error_code ec) {
                if (auto connection = weak.lock(); connection && !ec) close_transport(connection->transport_);
            }));
            return cancel_on_exit{write_deadline_};
        });
        // The session is over (GOAWAY out and no stream left): the reader stops waiting for frames nobody
        // will process, and run() ends the connection politely. A failed write ends it at once.
        if (!healthy) {
            close_transport(transport_);
        } else if (reading_) {
            std::error_code ignored;
            transport_.lowest_layer().cancel(ignored);
        }
        writer_done_ = true;
        ended_.cancel();
    }
    struct cancel_on_exit {
        asio::steady_timer& timer;
        ~cancel_on_exit() { timer.cancel(); }
    };

    // A client whose connection preface is not complete by `deadline` (a slowloris, trickling it) is cut
    // off without a word, since it does not speak HTTP/2 yet, as an HTTP/1.1 request head would be. The
    // request-head deadline's timer serves: no request head can come before the preface.
    void arm_preface_deadline(asio::steady_timer::time_point deadline) {
        request_head_deadline_.expires_at(deadline);
        request_head_deadline_.async_wait(asio::bind_allocator(handler_allocator<void>{}, [weak = this->weak_from_this()](std::error_code ec) {
            const auto connection = weak.lock();
            if (!connection || ec || connection->preface_missing_ == 0) return;
            connection->core_.log(log_level::debug, "HTTP/2 connection from " + connection->peer_ +
                                                        " ended: its preface was not complete within request_timeout");
            close_transport(connection->transport_);
        }));
    }

    // A request head (HEADERS and its CONTINUATIONs) not complete within request_timeout of the read that
    // left it incomplete blocks the whole connection (a slowloris): the connection ends with
    // GOAWAY(INTERNAL_ERROR), as Kestrel's RequestHeadersTimeout does. CONTINUATIONs do not extend it.
    void arm_request_head_deadline() {
        head_timed_ = head_pending_;
        request_head_deadline_.expires_after(core_.options.request_timeout);
        request_head_deadline_.async_wait([weak = this->weak_from_this(), id = head_timed_](std::error_code ec) {
            const auto connection = weak.lock();
            if (!connection || ec || connection->head_pending_ != id) return;
            connection->core_.log(log_level::debug, "HTTP/2 connection from " + connection->peer_ + " ended: the head of stream " +
                                                        std::to_string(id) + " was not complete within request_timeout");
            connection->session_.terminate(NGHTTP2_INTERNAL_ERROR);
            connection->wake_writer();
        });
    }
    void head_complete(std::int32_t id) {
        if (id != head_pending_) return;
        head_pending_ = 0;
        if (head_timed_ == id) request_head_deadline_.cancel();
    }

    // A connection with no stream for idle_timeout says GOAWAY and ends.
    void arm_idle() {
        idle_.expires_after(core_.options.idle_timeout);
        idle_.async_wait([weak = this->weak_from_this()](std::error_code ec) {
            const auto connection = weak.lock();
            if (!connection || ec || !connection->streams_.empty()) return;
            connection->session_.go_away();
            connection->wake_writer();
        });
    }

    void wake_body_reader(request_stream& stream) {
        if (stream.body_arrival) stream.body_arrival->cancel();
    }

    // The stream is gone (closed by nghttp2, or with the connection).
    void end_stream(request_stream& stream, std::uint32_t error_code) {
        if (stream.closed) return;
        stream.closed = true;
        if (stream.tunnel) stream.tunnel->stream_closed(error_code);
        wake_body_reader(stream);
    }

    // Answers a request without running the pipeline (431, 400, 413, 501).
    void respond_at_once(request_stream& stream, int status) {
        stream.response.status_code = status;
        stream.response.body = std::string(http::reason_phrase(status));
        submit(stream, false);
    }

    // The response of a finished pipeline: status, fields (lowercase, connection-specific ones dropped)
    // and body, as HEADERS and DATA.
    void submit(request_stream& stream, bool head_request) {
        auto& response = stream.response;
        // HTTP/2 has no 1xx final response (nor 101, RFC 9113 §8.6), and a field that is not a token or
        // a value with CR, LF or NUL would be smuggled: the handler's response becomes 500.
        const bool valid_fields = std::all_of(response.headers.begin(), response.headers.end(), [](const auto& f) {
            return http::detail::is_token(f.name) &&
                   std::all_of(f.value.begin(), f.value.end(),
                               [](char c) { return http::detail::in(http::detail::field_value_chars, c); });
        });
        if (response.status_code < 200 || response.status_code > 999 || !valid_fields) {
            core_.log(log_level::error, "HTTP/2 response to stream " + std::to_string(stream.id) + " from " + peer_ +
                                            " has " + (valid_fields ? "status " + std::to_string(response.status_code)
                                                                    : std::string("an invalid header field")) +
                                            ": 500 instead");
            response = {};
            response.status_code = 500;
        }
        const auto status = response.status_code;
        const bool no_content = !settle_content_fields(response);
        std::vector<std::string> names;
        names.reserve(response.headers.size());
        std::vector<nghttp2_nv> fields;
        fields.reserve(response.headers.size() + 1);
        char status_text[3];
        std::to_chars(status_text, status_text + 3, status);
        fields.push_back(http2::field(":status", std::string_view(status_text, 3)));
        for (const auto& f : response.headers) {
            std::string name = f.name;
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (is_connection_specific(name)) continue;
            names.push_back(std::move(name));
            fields.push_back(http2::field(names.back(), f.value));
        }
        const bool has_body = !head_request && !no_content && (response.file ? response.file->size() != 0 : !response.body.empty());
        stream.body_sent = 0;
        session_.submit_response(stream.id, fields, &stream, has_body);
        wake_writer();
    }

    // The pipeline for one request stream, as http_connection runs it for an HTTP/1.1 request.
    static awaitable<void> serve_stream(std::shared_ptr<http2_connection> self, std::shared_ptr<request_stream> stream) {
        ++self->pipelines_;
        co_await self->serve(*stream);
        if (--self->pipelines_ == 0) self->ended_.cancel();
    }

    awaitable<void> serve(request_stream& stream) {
        http_context ctx(std::move(stream.request), stream);
        std::exception_ptr failure;
        try {
            co_await duplex::next(core_.pipeline, 0, ctx)(ctx);
        } catch (...) {
            failure = std::current_exception();
        }
        if (ctx.websockets.accepted()) {
            if (failure) report_handler_failure(core_, failure, ctx.request, true, peer_);
            if (stream.socket) {
                co_await stream.socket->end_request();
                stream.socket.reset();  // it held this connection (through its tunnel)
            }
            co_return;
        }
        if (stream.closed) co_return;  // reset by the client: nobody to answer
        if (failure) {
            report_handler_failure(core_, failure, ctx.request, false, peer_);
            ctx.response = {};
            ctx.response.status_code = 500;
        } else if (stream.body_too_large) {
            ctx.response = {};
            ctx.response.status_code = 413;
        } else if (stream.tunnel && ctx.response.status_code >= 200 && ctx.response.status_code < 300) {
            // A 2xx to a CONNECT opens a tunnel (RFC 9113 §8.5): a handler that did not accept the
            // WebSocket must not answer one by accident.
            ctx.response = {};
            ctx.response.status_code = 501;
            ctx.response.body = "extended CONNECT answered without accepting the WebSocket";
        }
        stream.response = std::move(ctx.response);
        submit(stream, ctx.request.method == "HEAD");
        std::string().swap(stream.body);
    }

    // http_context::read_body: the whole body, once the client has sent it (within request_timeout). A
    // client that sent Expect: 100-continue gets 100 first.
    awaitable<std::string_view> read_body(request_stream& stream) {
        const auto self = this->shared_from_this();
        if (!stream.body_wanted) {
            stream.body_wanted = true;
            session_.consume_stream(stream.id, std::exchange(stream.unconsumed, 0));
            if (stream.expects_continue && !stream.request_ended && stream.body.empty())
                session_.submit_informational(stream.id, "100");
            wake_writer();
        }
        if (!stream.request_ended && !stream.closed && !stream.body_too_large) {
            if (!stream.body_arrival) stream.body_arrival = std::make_unique<asio::steady_timer>(executor_);
            const auto give_up = std::chrono::steady_clock::now() + core_.options.request_timeout;
            while (!stream.request_ended && !stream.closed && !stream.body_too_large) {
                stream.body_arrival->expires_at(give_up);
                auto [ec] = co_await stream.body_arrival->async_wait(use_nothrow_awaitable);
                if (!ec) throw std::system_error(asio::error::timed_out, "the request body did not arrive in full");
            }
        }
        if (stream.body_too_large)
            throw std::system_error(std::make_error_code(std::errc::message_size),
                                    "the request body is larger than max_request_body_size");
        if (!stream.request_ended) throw std::system_error(asio::error::connection_reset, "the request was reset");
        co_return std::string_view(stream.body);
    }

    awaitable<websocket> upgrade(request_stream& stream, const http::request& request, const accept_context& context,
                                 const websocket_options& options) {
        if (!stream.tunnel || stream.closed)
            throw websocket_error(websocket_errc::handshake_failed, "the extended CONNECT stream is gone");
        if (const auto check = ws::handshake::validate_extended_connect(request); !check) {
            stream.response.status_code = check.status;
            stream.response.body = check.message;
            if (check.status == 426) stream.response.headers.add("sec-websocket-version", "13");
            submit(stream, false);
            throw websocket_error(websocket_errc::handshake_failed, check.message);
        }
        auto limits = core_.options.websocket_limits;
        limits.receive_buffer_size = options.receive_buffer_size;
        auto& socket = stream.socket.emplace(http2::tunnel(stream.tunnel, this->shared_from_this()),
                                                ws::role::server, limits);
        socket.retain(core_.io);
        std::optional<duplex::deflate::options> compression;
        if (context.dangerous_enable_compression) {
            compression.emplace();
            compression->server_max_window_bits = context.server_max_window_bits;
            compression->disable_server_context_takeover = context.disable_server_context_takeover;
        }
        const auto extensions = socket.accept_tunneled(request, context.sub_protocol, compression);
        // RFC 8441 §5: 200, no Sec-WebSocket-Accept; the stream stays open for the WebSocket's DATA.
        std::vector<nghttp2_nv> fields{http2::field(":status", "200")};
        if (!context.sub_protocol.empty()) fields.push_back(http2::field("sec-websocket-protocol", context.sub_protocol));
        if (!extensions.empty()) fields.push_back(http2::field("sec-websocket-extensions", extensions));
        stream.tunnel_open = true;
        session_.submit_response(stream.id, fields, &stream, true);
        wake_writer();
        socket.start_keep_alive(context.keep_alive_interval.value_or(options.keep_alive_interval),
                                context.keep_alive_timeout.value_or(options.keep_alive_timeout));
        if (shutting_down_) asio::co_spawn(executor_, close_going_away(socket), asio::detached);
        co_return socket.as_websocket();
    }

    static awaitable<void> close_going_away(ws::stream<http2::tunnel> socket) {
        try {
            co_await socket.close_output_with_deadline(close_status::endpoint_unavailable, "server shutting down");
        } catch (const std::exception&) {
            // The stream is already ending; its handler sees why.
        }
    }

    static constexpr auto goodbye_timeout = std::chrono::seconds(2);

    Transport transport_;
    asio::any_io_executor executor_ = transport_.get_executor();
    app_core& core_;
    std::string peer_;
    http2::server_session<http2_connection> session_;
    std::unique_ptr<std::byte[]> read_buffer_;
    std::vector<std::byte> out_;
    asio::steady_timer writer_wake_;
    asio::steady_timer ended_;  // wakes run() when the writer or the last pipeline ends
    asio::steady_timer idle_;
    asio::steady_timer write_deadline_;
    // request_timeout for a header block that has begun and not ended (at most one: RFC 9113 §6.10 lets
    // no other frame in between), armed for `head_timed_` once a read leaves it incomplete; before that,
    // the preface's deadline.
    asio::steady_timer request_head_deadline_;
    std::int32_t head_pending_ = 0, head_timed_ = 0;
    std::size_t preface_missing_ = 24;  // bytes of the client's connection preface still to come (RFC 9113 §3.4)
    std::unordered_map<std::int32_t, std::shared_ptr<request_stream>> streams_;
    std::size_t pipelines_ = 0;
    bool reading_ = true;
    bool writer_done_ = false;
    bool shutting_down_ = false;
};

}  // namespace duplex::detail
