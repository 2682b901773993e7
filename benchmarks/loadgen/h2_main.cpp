// duplex-loadgen-h2 — the echo load generator over HTTP/2 (RFC 8441 WebSockets over TLS, ALPN h2), for the
// HTTP/2 benchmark (benchmarks/run --http2): the same load as duplex-loadgen-tls puts on wss:// over
// HTTP/1.1, carried in DATA frames of extended CONNECT streams.
//
//   duplex-loadgen-h2 --url wss://HOST:PORT/PATH [--connections N] [--streams-per-connection K]
//                     [--size BYTES] [--depth N] [--warmup S] [--duration S] [--text|--binary]
//                     [--server-pid PID] [--server-core N] [--loadgen-core N]
//
// --connections counts WebSockets, as it does for duplex-loadgen-tls, so both put the same load on the
// server; --streams-per-connection puts K of them on each TLS connection (ceil(N / K) TCP connections;
// 1, the default, is one WebSocket per connection). K must stay within the server's
// SETTINGS_MAX_CONCURRENT_STREAMS (100 for duplex-echo).
//
// Each TLS connection offers only h2, sends its preface and SETTINGS (16 MiB stream and connection
// windows, so flow control never throttles the echo), waits for the server's SETTINGS to allow extended
// CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1), then opens its WebSockets (:method CONNECT, :protocol
// websocket) and requires :status 200. Once every WebSocket is open, each keeps `depth` messages in
// flight: received DATA is parsed only far enough to count the messages it completes (the server may
// fragment them), and that many frames, masked once at start-up, go back in the stream's next DATA.
// libnghttp2 does the framing, HPACK and windows; Asio and asio::ssl the I/O, one thread. Bounded: 30 s
// to open, then --warmup + --duration, and an alarm ends the process should a phase hang.
//
// Its last line is duplex-loadgen-tls's: `RESULT mode=echo protocol=h2 connections=N
// streams_per_connection=K tcp_connections=M ... msgs_per_s=... server_cpu_us_per_msg=...`.
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <nghttp2/nghttp2.h>

#include "measure.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

// Large enough that neither side's windows limit the echo (RFC 9113 allows up to 2^31 - 1).
constexpr std::int32_t window_size = 16 * 1024 * 1024;

struct options : loadgen::tls_options {
    int streams_per_connection = 1;  // WebSockets on each TLS connection
};

}  // namespace

[[noreturn]] void loadgen::usage(const char* why) {
    std::fprintf(stderr,
                 "duplex-loadgen-h2: %s\n"
                 "usage: duplex-loadgen-h2 --url wss://HOST:PORT/PATH [--connections N] [--streams-per-connection K]\n"
                 "       [--size BYTES] [--depth N] [--warmup S] [--duration S] [--text|--binary] [--server-pid PID]\n"
                 "       [--server-core N] [--loadgen-core N]\n",
                 why);
    std::exit(2);
}

namespace {

using namespace loadgen;

options parse_options(int argc, char** argv) {
    options o;
    parse_tls_options(argc, argv, o, {"wss://", "https://"}, [&](std::string_view arg, auto&& value) {
        if (arg != "--streams-per-connection") return false;
        o.streams_per_connection = number<int>(value(), "bad --streams-per-connection");
        return true;
    });
    if (o.streams_per_connection < 1) usage("counts must be >= 1");
    return o;
}

// ---------------------------------------------------------------- the run

struct shared_state {
    options o;
    std::string train;  // `depth` copies of the message's frame, back to back
    std::size_t frame_size = 0;
    std::uint64_t messages = 0;
    std::uint64_t errors = 0;
    int established = 0, failed = 0;
    bool measuring = false, stopping = false;
    std::vector<std::uint32_t> latencies_ns;  // of messages completed inside the window
};

// One WebSocket: its stream, and the bytes of frames it still has to send (whole frames of the train).
struct websocket {
    std::int32_t id = -1;
    std::string status;
    bool open = false, deferred = false;
    std::uint64_t pending = 0;
    std::size_t offset = 0;  // into the train, where the next byte to send starts
    frame_counter counter;
    std::deque<steady::time_point> sent_at;
};

// One TLS connection and its nghttp2 client session, carrying `sockets.size()` WebSockets.
class connection {
public:
    connection(shared_state& s, asio::ssl::context& tls, asio::io_context& io, int streams)
        : s_(s), stream_(io, tls), sockets_(static_cast<std::size_t>(streams)) {}
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection() {
        if (session_ != nullptr) nghttp2_session_del(session_);
    }

    asio::awaitable<void> run(tcp::endpoint endpoint) {
        auto [connect_ec] = co_await stream_.next_layer().async_connect(endpoint, nothrow);
        if (!connect_ec) stream_.next_layer().set_option(tcp::no_delay(true));
        std::error_code ec = connect_ec;
        if (!ec) {
            auto [handshake_ec] = co_await stream_.async_handshake(asio::ssl::stream_base::client, nothrow);
            ec = handshake_ec;
        }
        const unsigned char* alpn = nullptr;
        unsigned int alpn_size = 0;
        if (!ec) SSL_get0_alpn_selected(stream_.native_handle(), &alpn, &alpn_size);
        if (ec || std::string_view(reinterpret_cast<const char*>(alpn), alpn_size) != "h2" || !start_session()) {
            if (ec || alpn_size == 0) std::fprintf(stderr, "duplex-loadgen-h2: no TLS connection with ALPN h2\n");
            fail_unopened();
            co_return;
        }
        flush();
        std::vector<unsigned char> buffer(64 * 1024);
        while (!s_.stopping) {
            auto [read_ec, n] = co_await stream_.async_read_some(asio::buffer(buffer), nothrow);
            if (s_.stopping) break;
            if (read_ec || nghttp2_session_mem_recv(session_, buffer.data(), n) < 0) {
                fail_unopened();
                if (opened_ > 0) ++s_.errors;
                break;
            }
            flush();
        }
    }

    // Every WebSocket of the run is open: each sends its first `depth` messages.
    void go() {
        for (auto& ws : sockets_) {
            if (!ws.open) continue;
            ws.pending = s_.train.size();
            for (int i = 0; i < s_.o.depth; ++i) ws.sent_at.push_back(steady::now());
            resume(ws);
        }
        flush();
    }

private:
    bool start_session() {
        nghttp2_session_callbacks* callbacks = nullptr;
        if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
        nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
        const int made = nghttp2_session_client_new(&session_, callbacks, this);
        nghttp2_session_callbacks_del(callbacks);
        if (made != 0) return false;
        const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window_size}};
        // The preface goes out with the first mem_send; the connection window is raised past 65,535 too.
        return nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) == 0 &&
               nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, window_size) == 0;
    }

    // The server's first SETTINGS: open every WebSocket, if it allows extended CONNECT at all.
    void open_websockets() {
        requested_ = true;
        if (nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) != 1) {
            std::fprintf(stderr, "duplex-loadgen-h2: the server does not allow extended CONNECT\n");
            fail_unopened();
            return;
        }
        const auto authority = s_.o.host + ":" + s_.o.port;
        const auto field = [](std::string_view name, std::string_view value) {
            return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                              reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                              value.size(), NGHTTP2_NV_FLAG_NONE};
        };
        const nghttp2_nv request[] = {field(":method", "CONNECT"), field(":protocol", "websocket"),
                                      field(":scheme", "https"),   field(":path", s_.o.path),
                                      field(":authority", authority), field("sec-websocket-version", "13")};
        const auto most = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (sockets_.size() > most) {
            // nghttp2 would hold the extra requests back until a stream ends, which none does.
            std::fprintf(stderr, "duplex-loadgen-h2: %zu WebSockets on one connection, the server allows %u streams\n",
                         sockets_.size(), most);
            fail_unopened();
            return;
        }
        for (auto& ws : sockets_) {
            // The stream's DATA comes from the train as echoes arrive; until then the provider defers.
            nghttp2_data_provider body{};
            body.source.ptr = &ws;
            body.read_callback = read_body;
            ws.id = nghttp2_submit_request(session_, nullptr, request, std::size(request), &body, &ws);
            if (ws.id < 0) {
                ws.status = "failed";
                ++s_.failed;
            }
        }
    }

    // Counts every WebSocket not yet open as failed (once).
    void fail_unopened() {
        for (auto& ws : sockets_)
            if (!ws.open && ws.status != "failed") {
                ws.status = "failed";
                ++s_.failed;
            }
    }

    void resume(websocket& ws) {
        if (ws.deferred && ws.pending > 0) {
            ws.deferred = false;
            nghttp2_session_resume_data(session_, ws.id);
        }
    }

    // Writes whatever nghttp2 has ready, all frames in one write; one write at a time.
    void flush() {
        if (writing_ || session_ == nullptr || s_.stopping) return;
        out_.clear();
        for (;;) {
            const std::uint8_t* data = nullptr;
            const auto n = nghttp2_session_mem_send(session_, &data);
            if (n < 0) {
                ++s_.errors;
                return;
            }
            if (n == 0) break;
            out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
        }
        if (out_.empty()) return;
        writing_ = true;
        asio::async_write(stream_, asio::buffer(out_), [this](std::error_code ec, std::size_t) {
            writing_ = false;
            if (s_.stopping) return;
            if (ec) {
                ++s_.errors;
                return;
            }
            flush();
        });
    }

    static connection& self(void* user_data) { return *static_cast<connection*>(user_data); }

    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user_data) {
        auto* ws = static_cast<websocket*>(nghttp2_session_get_stream_user_data(self(user_data).session_,
                                                                                frame->hd.stream_id));
        if (ws != nullptr && std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status")
            ws->status.assign(reinterpret_cast<const char*>(value), valuelen);
        return 0;
    }

    static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
        auto& c = self(user_data);
        if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && !c.requested_) {
            c.open_websockets();
            return 0;
        }
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE) return 0;
        auto* ws = static_cast<websocket*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
        if (ws == nullptr || ws->open || ws->status == "failed") return 0;
        if (ws->status == "200" && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
            ws->open = true;
            ++c.opened_;
            ++c.s_.established;
        } else {
            std::fprintf(stderr, "duplex-loadgen-h2: extended CONNECT answered %s\n", ws->status.c_str());
            ws->status = "failed";
            ++c.s_.failed;
        }
        return 0;
    }

    // Echoed bytes: as many new messages go out as this chunk completes.
    static int on_data_chunk_recv(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                                  const std::uint8_t* data, std::size_t len, void* user_data) {
        auto& c = self(user_data);
        auto* ws = static_cast<websocket*>(nghttp2_session_get_stream_user_data(session, stream_id));
        if (ws == nullptr || !ws->open) return 0;
        const auto completed = ws->counter.feed(data, len);
        if (completed == 0) return 0;
        auto& s = c.s_;
        const auto now = steady::now();
        for (std::size_t i = 0; i < completed && !ws->sent_at.empty(); ++i) {
            if (s.measuring) {
                ++s.messages;
                s.latencies_ns.push_back(static_cast<std::uint32_t>(std::min<long long>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now - ws->sent_at.front()).count(),
                    0xFFFFFFFF)));
            }
            ws->sent_at.pop_front();
            ws->sent_at.push_back(now);
        }
        ws->pending += completed * s.frame_size;
        c.resume(*ws);
        return 0;
    }

    static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, std::uint32_t, void* user_data) {
        auto& c = self(user_data);
        auto* ws = static_cast<websocket*>(nghttp2_session_get_stream_user_data(session, stream_id));
        if (ws == nullptr || c.s_.stopping) return 0;
        if (ws->open) ++c.s_.errors;  // a WebSocket ended inside the run
        else if (ws->status != "failed") {
            ws->status = "failed";
            ++c.s_.failed;
        }
        ws->open = false;
        return 0;
    }

    // The stream's DATA: pending bytes of the train, from where the last DATA stopped, as many as fit.
    static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length, std::uint32_t*,
                             nghttp2_data_source* source, void* user_data) {
        auto& ws = *static_cast<websocket*>(source->ptr);
        const auto& train = self(user_data).s_.train;
        const auto frame_size = self(user_data).s_.frame_size;
        if (ws.pending == 0) {
            ws.deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        std::size_t copied = 0;
        while (copied < length && ws.pending > 0) {
            const auto n = static_cast<std::size_t>(
                std::min<std::uint64_t>({ws.pending, train.size() - ws.offset, length - copied}));
            std::memcpy(buf + copied, train.data() + ws.offset, n);
            copied += n;
            ws.pending -= n;
            ws.offset = (ws.offset + n) % frame_size;
        }
        return static_cast<ssize_t>(copied);
    }

    shared_state& s_;
    asio::ssl::stream<tcp::socket> stream_;
    nghttp2_session* session_ = nullptr;
    std::vector<websocket> sockets_;
    std::string out_;
    bool writing_ = false, requested_ = false;
    int opened_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    shared_state s;
    s.o = parse_options(argc, argv);
    const auto& o = s.o;
    std::signal(SIGPIPE, SIG_IGN);
    alarm(static_cast<unsigned>(o.warmup + o.duration + 60));  // a hung phase ends the process

    const auto frame = client_frame(o.text ? 0x1 : 0x2, letters(o.size));
    s.frame_size = frame.size();
    for (int i = 0; i < o.depth; ++i) s.train += frame;
    s.latencies_ns.reserve(1 << 22);

    asio::ssl::context tls(asio::ssl::context::tls_client);
    tls.set_verify_mode(asio::ssl::verify_none);
    static constexpr unsigned char alpn_h2[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(tls.native_handle(), alpn_h2, sizeof alpn_h2);
    asio::io_context io(1);
    tcp::resolver resolver(io);
    const auto endpoint = *resolver.resolve(o.host, o.port).begin();
    const int tcp_connections = (o.connections + o.streams_per_connection - 1) / o.streams_per_connection;
    std::printf("duplex-loadgen-h2: echo over HTTP/2 to https://%s:%s%s, %d WebSockets on %d TLS connection(s), "
                "%zu B %s, depth %d, warm-up %.1f s, %.1f s measured\n",
                o.host.c_str(), o.port.c_str(), o.path.c_str(), o.connections, tcp_connections, o.size,
                o.text ? "text" : "binary", o.depth, o.warmup, o.duration);
    std::fflush(stdout);
    std::vector<std::unique_ptr<connection>> connections;
    for (int i = 0, left = o.connections; i < tcp_connections; ++i, left -= o.streams_per_connection) {
        connections.push_back(std::make_unique<connection>(s, tls, io, std::min(left, o.streams_per_connection)));
        asio::co_spawn(io, connections.back()->run(endpoint), asio::detached);
    }

    sample first, last;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer timer(io);
            const auto give_up = steady::now() + std::chrono::seconds(30);
            while (s.established + s.failed < o.connections && steady::now() < give_up) {
                timer.expires_after(std::chrono::milliseconds(10));
                co_await timer.async_wait(nothrow);
            }
            for (auto& c : connections) c->go();
            timer.expires_after(std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup)));
            co_await timer.async_wait(nothrow);
            s.measuring = true;
            first = take_sample(s.messages, o.server_pid, o.server_core, o.loadgen_core);
            timer.expires_after(std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.duration)));
            co_await timer.async_wait(nothrow);
            last = take_sample(s.messages, o.server_pid, o.server_core, o.loadgen_core);
            s.measuring = false;
            s.stopping = true;
            io.stop();
        },
        asio::detached);
    io.run();

    const auto messages = last.messages - first.messages;
    if (s.failed > 0) std::printf("warning: %d WebSocket(s) failed to open\n", s.failed);
    const std::string result = "RESULT mode=echo protocol=h2 connections=" + std::to_string(o.connections) +
                               " streams_per_connection=" + std::to_string(o.streams_per_connection) +
                               " tcp_connections=" + std::to_string(tcp_connections) +
                               " established=" + std::to_string(s.established) + " failed=" + std::to_string(s.failed) +
                               " size=" + std::to_string(o.size) + " depth=" + std::to_string(o.depth) +
                               " payload=" + (o.text ? "text" : "binary") + " compression=off errors=" +
                               std::to_string(s.errors) + " " + window_figures(first, last, o.size, s.latencies_ns);
    std::printf("%s\n", result.c_str());
    return messages > 0 ? 0 : 1;
}
