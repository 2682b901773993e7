// duplex::client::detail::http2_connection — the client's HTTP/2 connection, over TLS (ALPN h2) or TCP
// (h2c with prior knowledge), carrying WebSockets as RFC 8441 extended CONNECT streams. An nghttp2
// client session (http2/client_session.hpp) driven on the connection's executor: one coroutine reads and
// feeds nghttp2, one writes whatever nghttp2 has ready, many frames per write. Each WebSocket is a
// ws::stream<http2::tunnel> over its stream (http2/tunnel.hpp), exactly as on the server.
//
// Lifetime: the reader and the writer hold the connection while it is open, every WebSocket on it holds
// it through its tunnel. It is "held" by its opener (connect() until its WebSocket is open, a
// websocket_client for as long as it lives); once released, the connection ends — GOAWAY, then the TCP
// connection — when its last stream has. A server's GOAWAY lets the streams it took finish and takes no
// new ones; the connection then ends with its last stream too.
//
// Flow control as on the server: the connection's window reopens as DATA arrives, a WebSocket's stream
// window once it has received the bytes, so a WebSocket that stops receiving stops only its own stream.
#pragma once

#include <duplex/client/connect_options.hpp>
#include <duplex/client/uri.hpp>
#include <duplex/config.hpp>
#include <duplex/detail/recycling_awaitable.hpp>
#include <duplex/detail/transport.hpp>
#include <duplex/http/request.hpp>
#include <duplex/http2/client_session.hpp>
#include <duplex/http2/connection_io.hpp>
#include <duplex/http2/tunnel.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/stream.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace duplex::client::detail {

using duplex::detail::use_nothrow_awaitable;

// What a websocket_client keeps of each HTTP/2 connection, whatever its transport.
class http2_origin_connection {
public:
    virtual ~http2_origin_connection() = default;
    // A WebSocket on a new stream of this connection: the extended CONNECT for uri.target with the
    // options' sub-protocols, headers and permessage-deflate offer, its 200 checked as handshake() checks
    // a 101. Throws websocket_error(handshake_failed) when the server refuses or does not answer within
    // options.stream.handshake_timeout.
    virtual awaitable<websocket> open(const websocket_uri& uri, const connect_options& options) = 0;
    // Whether a new WebSocket may go here now: open, no GOAWAY, under the server's
    // SETTINGS_MAX_CONCURRENT_STREAMS.
    virtual bool takes_new_streams() const noexcept = 0;
    // Whether it will never take one again: the server sent GOAWAY, or the connection is ending or over.
    virtual bool has_ended() const noexcept = 0;
    // The opener lets go: the connection ends once its last stream has.
    virtual void release() = 0;
};

// Header fields that must not go into an HTTP/2 request (RFC 9113 §8.2.2), and Host, which :authority
// replaces (§8.3.1); the WebSocket fields of HTTP/1.1's upgrade have no meaning on an extended CONNECT.
inline bool is_dropped_in_http2_request(std::string_view lowercase_name) noexcept {
    return lowercase_name == "connection" || lowercase_name == "keep-alive" || lowercase_name == "proxy-connection" ||
           lowercase_name == "transfer-encoding" || lowercase_name == "upgrade" || lowercase_name == "host" ||
           lowercase_name == "te" || lowercase_name == "sec-websocket-key";
}

template <class Transport>
class http2_connection final : public http2_origin_connection,
                               public http2::tunnel_host,
                               public std::enable_shared_from_this<http2_connection<Transport>> {
    struct stream {
        explicit stream(const asio::any_io_executor& executor) : arrival(executor) {}
        std::int32_t id = 0;
        std::shared_ptr<http2::tunnel_state> tunnel;
        http::response response;
        std::size_t header_list_size = 0;  // RFC 9113 §6.5.2's count of the head being received
        bool response_too_large = false;
        bool response_complete = false;  // the final (non-1xx) head
        bool closed = false;
        std::uint32_t close_error = 0;
        asio::steady_timer arrival;  // open() waits on it for the response
    };

public:
    // `peer` names the server in errors ("127.0.0.1:8443").
    http2_connection(Transport transport, const http2_limits& limits, std::string peer)
        : transport_(std::move(transport)),
          executor_(transport_.get_executor()),
          limits_(limits),
          peer_(std::move(peer)),
          session_(*this, limits),
          read_buffer_(std::make_unique_for_overwrite<std::byte[]>(read_buffer_size)),
          writer_wake_(executor_),
          settings_arrival_(executor_),
          ended_(executor_, asio::steady_timer::time_point::max()) {}

    // Starts the reader and the writer (the preface and our SETTINGS go out) and waits for the server's
    // SETTINGS: whether it takes extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1). Throws
    // websocket_error(handshake_failed) when the connection ends first or nothing came within `timeout`.
    awaitable<bool> start(std::chrono::steady_clock::duration timeout) {
        const auto self = this->shared_from_this();
        asio::co_spawn(executor_, read_loop(self), asio::detached);
        asio::co_spawn(executor_, write_loop(self), asio::detached);
        settings_arrival_.expires_after(timeout);
        while (!settings_received_ && reading_) {
            const auto [ec] = co_await settings_arrival_.async_wait(use_nothrow_awaitable);
            if (!ec) break;
        }
        if (!settings_received_) {
            const bool timed_out = reading_;
            end_now();
            throw websocket_error(websocket_errc::handshake_failed,
                                  "HTTP/2 connection to " + peer_ +
                                      (timed_out ? ": no SETTINGS from the server within the handshake timeout"
                                                 : " ended before the server's SETTINGS" + failure_suffix()));
        }
        co_return session_.connect_protocol_enabled();
    }

    awaitable<websocket> open(const websocket_uri& uri, const connect_options& options) override {
        const auto self = this->shared_from_this();
        if (!takes_new_streams())
            throw websocket_error(websocket_errc::handshake_failed,
                                  "HTTP/2 connection to " + peer_ + " takes no new streams" +
                                      (going_away_ ? std::string(" (the server sent GOAWAY with ") +
                                                         nghttp2_http2_strerror(goaway_error_) + ")"
                                                   : std::string()));
        auto opened = std::make_shared<stream>(executor_);
        {
            const auto fields = request_fields(uri, options);
            std::vector<nghttp2_nv> list;
            list.reserve(fields.size());
            for (const auto& [name, value] : fields) list.push_back(http2::field(name, value));
            const auto id = session_.submit_request(list);
            if (id < 0)
                throw websocket_error(websocket_errc::handshake_failed, "HTTP/2 connection to " + peer_ +
                                                                            ": cannot open a stream: " + nghttp2_strerror(id));
            opened->id = id;
        }
        opened->tunnel = std::make_shared<http2::tunnel_state>(opened->id, *this, executor_);
        streams_.emplace(opened->id, opened);
        wake_writer();
        opened->arrival.expires_after(options.stream.handshake_timeout);
        while (!opened->response_complete && !opened->closed) {
            const auto [ec] = co_await opened->arrival.async_wait(use_nothrow_awaitable);
            if (!ec) break;
        }
        if (!opened->response_complete) {
            std::string why = "no answer within the handshake timeout";
            if (!opened->closed)
                tunnel_reset(opened->id, NGHTTP2_CANCEL);
            else if (!reading_)  // the streams left ended with the connection
                why = "the HTTP/2 connection ended" + failure_suffix();
            else if (going_away_)  // nghttp2 closes the streams a GOAWAY did not take
                why = std::string("the server sent GOAWAY (") + nghttp2_http2_strerror(goaway_error_) +
                      ") without taking the stream";
            else if (opened->close_error == NGHTTP2_NO_ERROR)
                why = "the stream ended without an answer";
            else
                why = std::string("the server reset the stream (") + nghttp2_http2_strerror(opened->close_error) + ")";
            throw websocket_error(websocket_errc::handshake_failed,
                                  "extended CONNECT to " + peer_ + uri.target + " over HTTP/2 failed: " + why);
        }
        ws::stream<http2::tunnel> socket(http2::tunnel(opened->tunnel, self), ws::role::client, options.stream);
        if (opened->response_too_large) {
            opened->tunnel->close();
            throw websocket_error(websocket_errc::handshake_failed,
                                  "the answer to the extended CONNECT is larger than http2.max_header_list_size");
        }
        socket.open_tunneled(opened->response, options.sub_protocols, options.dangerous_deflate);
        socket.start_keep_alive(options.keep_alive_interval, options.keep_alive_timeout);
        co_return socket.as_websocket();
    }

    bool takes_new_streams() const noexcept override {
        // want_read() turns false once nghttp2 has ended the session itself (a protocol error of the peer).
        return reading_ && !going_away_ && !ending_ && session_.want_read() &&
               streams_.size() < session_.max_concurrent_streams();
    }

    bool has_ended() const noexcept override { return !reading_ || going_away_ || ending_ || !session_.want_read(); }

    void release() override {
        held_ = false;
        end_if_unused();
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

    // --- http2::client_session's events ---

    void on_settings() {
        settings_received_ = true;
        settings_arrival_.cancel();
    }

    int on_header(std::int32_t id, std::string_view name, std::string_view value) {
        const auto s = find(id);
        if (!s || s->response_complete) return 0;  // trailers carry nothing a WebSocket uses
        s->header_list_size += name.size() + value.size() + 32;
        if (s->header_list_size > limits_.max_header_list_size) {
            s->response_too_large = true;
            return 0;
        }
        if (name == ":status") {
            int status = 0;
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), status);
            s->response.status_code = ec == std::errc{} && end == value.data() + value.size() ? status : 0;
        } else if (!name.starts_with(':')) {
            s->response.headers.add(std::string(name), std::string(value));
        }
        return 0;
    }

    int on_head(std::int32_t id, bool end_stream) {
        const auto s = find(id);
        if (!s) return 0;
        if (!s->response_complete) {
            if (s->response.status_code >= 100 && s->response.status_code < 200) {
                // An interim response: the final one follows.
                s->response = {};
                s->header_list_size = 0;
                return 0;
            }
            s->response_complete = true;
            s->arrival.cancel();
        }
        if (end_stream) s->tunnel->end_of_input();
        return 0;
    }

    int on_data(std::int32_t id, std::span<const std::byte> data) {
        session_.consume_connection(data.size());
        if (const auto s = find(id); s && s->response_complete) s->tunnel->deliver(data);
        return 0;
    }

    int on_end_of_stream(std::int32_t id) {
        if (const auto s = find(id)) s->tunnel->end_of_input();
        return 0;
    }

    int on_stream_close(std::int32_t id, std::uint32_t error_code) {
        const auto it = streams_.find(id);
        if (it == streams_.end()) return 0;
        const auto s = it->second;
        streams_.erase(it);
        close_stream(*s, error_code);
        end_if_unused();
        return 0;
    }

    void on_goaway(std::int32_t, std::uint32_t error_code) {
        going_away_ = true;
        goaway_error_ = error_code;
        end_if_unused();
    }

    // Our END_STREAM is out: a WebSocket that closed its transport meanwhile without the server's
    // END_STREAM is reset now (RFC 9113 §8.1, NO_ERROR), as on the server.
    void on_end_sent(std::int32_t id) {
        if (const auto s = find(id); s && s->tunnel->reset_after_end()) tunnel_reset(id, NGHTTP2_NO_ERROR);
    }

    ssize_t read_body(std::int32_t id, std::uint8_t* buffer, std::size_t length, std::uint32_t* data_flags) {
        const auto s = find(id);
        if (!s) return NGHTTP2_ERR_DEFERRED;
        return s->tunnel->produce(buffer, length, data_flags);
    }

private:
    static constexpr std::size_t read_buffer_size = 16 * 1024;
    static constexpr std::size_t write_batch = 64 * 1024;
    static constexpr std::chrono::seconds goodbye_timeout{1};

    // The extended CONNECT (RFC 8441 §4): pseudo-headers first, no key, the WebSocket's fields lowercase.
    static std::vector<std::pair<std::string, std::string>> request_fields(const websocket_uri& uri,
                                                                           const connect_options& options) {
        std::vector<std::pair<std::string, std::string>> fields{
            {":method", "CONNECT"},
            {":protocol", "websocket"},
            {":scheme", uri.secure ? "https" : "http"},
            {":path", uri.target},
            {":authority", uri.host_header()},
            {"sec-websocket-version", "13"},
        };
        if (!options.sub_protocols.empty()) {
            std::string offered;
            for (const auto& protocol : options.sub_protocols) {
                if (!http::detail::is_token(protocol)) throw std::invalid_argument("a WebSocket subprotocol must be a token");
                if (!offered.empty()) offered.append(", ");
                offered.append(protocol);
            }
            fields.emplace_back("sec-websocket-protocol", std::move(offered));
        }
        if (options.dangerous_deflate)
            fields.emplace_back("sec-websocket-extensions", duplex::deflate::make_offer(*options.dangerous_deflate));
        for (const auto& field : options.headers) {
            std::string name = field.name;
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (is_dropped_in_http2_request(name)) continue;
            fields.emplace_back(std::move(name), field.value);
        }
        return fields;
    }

    std::shared_ptr<stream> find(std::int32_t id) const {
        const auto it = streams_.find(id);
        return it == streams_.end() ? nullptr : it->second;
    }

    void close_stream(stream& s, std::uint32_t error_code) {
        if (s.closed) return;
        s.closed = true;
        s.close_error = error_code;
        s.tunnel->stream_closed(error_code);
        s.arrival.cancel();
    }

    std::string failure_suffix() const { return failure_.empty() ? "" : " (" + failure_ + ")"; }

    // Released (or told GOAWAY) with no stream left: GOAWAY from us, then the TCP connection ends.
    void end_if_unused() {
        if (ending_ || !streams_.empty() || (held_ && !going_away_)) return;
        ending_ = true;
        session_.terminate(NGHTTP2_NO_ERROR);
        wake_writer();
    }

    // At once, without waiting for anything (a failed start).
    void end_now() {
        ending_ = true;
        duplex::detail::close_transport(transport_);
        wake_writer();
    }

    void wake_writer() { writer_wake_.cancel(); }

    // A server that does not speak HTTP/2 (h2c to an HTTP/1.1 server) answers our preface in HTTP/1.1:
    // its status line says more than nghttp2's complaint about the bytes.
    void note_http1_answer(std::span<const std::byte> bytes) {
        const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        if (!text.starts_with("HTTP/1.")) return;
        failure_ = "the server answered in HTTP/1.1: \"" + std::string(text.substr(0, std::min(text.find('\r'), std::size_t{80}))) +
                   "\"; it does not take HTTP/2 with prior knowledge";
    }

    awaitable<void> read_loop([[maybe_unused]] std::shared_ptr<http2_connection> self) {
        while (session_.want_read()) {
            auto [ec, n] = co_await transport_.async_read_some(asio::buffer(read_buffer_.get(), read_buffer_size),
                                                               duplex::detail::recycling_nothrow_awaitable());
            if (ec) {
                if (ec != asio::error::operation_aborted && failure_.empty())
                    failure_ = ec == asio::error::eof ? "the server closed the connection" : ec.message();
                break;
            }
            const std::span<const std::byte> bytes(read_buffer_.get(), n);
            if (!settings_received_ && failure_.empty()) note_http1_answer(bytes);
            if (const int rv = session_.receive(bytes); rv != 0) {
                if (failure_.empty()) failure_ = std::string("HTTP/2 error: ") + nghttp2_strerror(rv);
                // The server learns why before the connection closes (RFC 9113 §5.4.1): the writer sends
                // this GOAWAY before it stops.
                session_.terminate(rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS || rv == NGHTTP2_ERR_FLOODED
                                       ? NGHTTP2_ENHANCE_YOUR_CALM
                                       : NGHTTP2_INTERNAL_ERROR);
                break;
            }
            wake_writer();
        }
        reading_ = false;
        settings_arrival_.cancel();
        wake_writer();
        while (!writer_done_) co_await ended_.async_wait(use_nothrow_awaitable);
        if (duplex::detail::transport_is_open(transport_))
            co_await http2::linger(transport_, std::span(read_buffer_.get(), read_buffer_size), goodbye_timeout);
        duplex::detail::close_transport(transport_);
        // The streams left end with the connection: their WebSockets read connection_reset.
        auto left = std::move(streams_);
        streams_.clear();
        for (auto& [id, s] : left) close_stream(*s, NGHTTP2_CANCEL);
    }

    // Writes what nghttp2 has ready until the session is over (our GOAWAY out after the end, or the
    // reader has stopped) or a write fails.
    awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<http2_connection> self) {
        const bool healthy = co_await http2::write_frames(transport_, session_, out_, writer_wake_, reading_, write_batch,
                                                          [] { return 0; });
        if (!healthy) {
            duplex::detail::close_transport(transport_);
        } else if (reading_) {
            std::error_code ignored;
            transport_.lowest_layer().cancel(ignored);
        }
        writer_done_ = true;
        ended_.cancel();
    }

    Transport transport_;
    asio::any_io_executor executor_;
    const http2_limits limits_;
    const std::string peer_;
    http2::client_session<http2_connection> session_;
    std::unordered_map<std::int32_t, std::shared_ptr<stream>> streams_;
    std::unique_ptr<std::byte[]> read_buffer_;
    std::vector<std::byte> out_;
    asio::steady_timer writer_wake_;
    asio::steady_timer settings_arrival_;
    asio::steady_timer ended_;
    std::string failure_;  // why the connection ended, when it was not our choice
    std::uint32_t goaway_error_ = 0;
    bool settings_received_ = false;
    bool reading_ = true;
    bool writer_done_ = false;
    bool held_ = true;
    bool going_away_ = false;
    bool ending_ = false;
};

}  // namespace duplex::client::detail
