// duplex-loadgen-tls — the echo load generator over wss:// (TLS through asio::ssl), for the wss benchmark:
// duplex-echo over https:// against Boost.Beast's ssl_stream echo.
//
//   duplex-loadgen-tls --url wss://127.0.0.1:PORT/ws [--connections N] [--size BYTES] [--depth N]
//                      [--warmup S] [--duration S] [--text|--binary] [--server-pid PID]
//                      [--server-core N] [--loadgen-core N]
//
// Echo mode only. Each connection connects, makes its TLS handshake (no certificate check: the servers
// are local and throwaway), upgrades, then keeps `depth` messages in flight: every read is parsed only
// far enough to count the complete messages it ends (the server may fragment them), and that many new
// frames go back in one write from a buffer built and masked once at start-up. One thread; the TLS work
// itself is why it is slower than duplex-loadgen, which is why the figure of merit is the server's CPU
// time per message, not the rate.
//
// Its last line is machine-readable, as duplex-loadgen's: `RESULT mode=echo protocol=wss ... msgs_per_s=...
// server_cpu_us_per_msg=...` (the keys benchmarks/run reads).
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>

#include "measure.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto nothrow = asio::experimental::as_tuple(asio::use_awaitable);

using options = loadgen::tls_options;

}  // namespace

[[noreturn]] void loadgen::usage(const char* why) {
    std::fprintf(stderr,
                 "duplex-loadgen-tls: %s\n"
                 "usage: duplex-loadgen-tls --url wss://HOST:PORT/PATH [--connections N] [--size BYTES] [--depth N]\n"
                 "       [--warmup S] [--duration S] [--text|--binary] [--server-pid PID] [--server-core N]\n"
                 "       [--loadgen-core N]\n",
                 why);
    std::exit(2);
}

namespace {

using namespace loadgen;

options parse_options(int argc, char** argv) {
    options o;
    parse_tls_options(argc, argv, o, {"wss://"}, [](std::string_view, auto&&) { return false; });
    return o;
}

// ---------------------------------------------------------------- the run

struct shared_state {
    options o;
    std::string train;       // `depth` copies of the message's frame, back to back
    std::size_t frame_size = 0;
    std::string request;
    std::uint64_t messages = 0;
    std::uint64_t errors = 0;
    int established = 0, failed = 0;
    bool measuring = false, stopping = false;
    std::vector<std::uint32_t> latencies_ns;  // of messages completed inside the window
};

asio::awaitable<void> run_connection(shared_state& s, asio::ssl::context& tls, tcp::endpoint endpoint,
                                     asio::steady_timer& start) {
    auto executor = co_await asio::this_coro::executor;
    asio::ssl::stream<tcp::socket> stream(executor, tls);
    auto [connect_ec] = co_await stream.next_layer().async_connect(endpoint, nothrow);
    if (!connect_ec) stream.next_layer().set_option(tcp::no_delay(true));
    std::error_code ec = connect_ec;
    if (!ec) {
        auto [handshake_ec] = co_await stream.async_handshake(asio::ssl::stream_base::client, nothrow);
        ec = handshake_ec;
    }
    if (!ec) {
        auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(s.request), nothrow);
        ec = write_ec;
    }
    std::string head;
    std::vector<unsigned char> buffer(64 * 1024);
    while (!ec && head.find("\r\n\r\n") == std::string::npos) {
        auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(buffer), nothrow);
        ec = read_ec;
        head.append(reinterpret_cast<const char*>(buffer.data()), n);
    }
    if (ec || !head.starts_with("HTTP/1.1 101")) {
        ++s.failed;
        co_return;
    }
    ++s.established;
    co_await start.async_wait(nothrow);  // cancelled once every connection is up
    frame_counter counter;
    std::deque<steady::time_point> sent_at;
    const auto depth = static_cast<std::size_t>(s.o.depth);
    for (std::size_t i = 0; i < depth; ++i) sent_at.push_back(steady::now());
    {
        auto [write_ec, written] = co_await asio::async_write(stream, asio::buffer(s.train), nothrow);
        ec = write_ec;
    }
    while (!ec && !s.stopping) {
        auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(buffer), nothrow);
        ec = read_ec;
        const auto completed = counter.feed(buffer.data(), n);
        if (completed == 0) continue;
        const auto now = steady::now();
        for (std::size_t i = 0; i < completed && !sent_at.empty(); ++i) {
            if (s.measuring) {
                ++s.messages;
                s.latencies_ns.push_back(static_cast<std::uint32_t>(
                    std::min<long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent_at.front()).count(),
                                        0xFFFFFFFF)));
            }
            sent_at.pop_front();
            sent_at.push_back(now);
        }
        if (ec || s.stopping) break;
        auto [write_ec, written] =
            co_await asio::async_write(stream, asio::buffer(s.train.data(), completed * s.frame_size), nothrow);
        ec = write_ec;
    }
    if (ec && !s.stopping) ++s.errors;
}

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
    s.request = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + o.port +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n";
    s.latencies_ns.reserve(1 << 22);

    asio::ssl::context tls(asio::ssl::context::tls_client);
    tls.set_verify_mode(asio::ssl::verify_none);
    asio::io_context io(1);
    tcp::resolver resolver(io);
    const auto endpoint = *resolver.resolve(o.host, o.port).begin();
    asio::steady_timer start(io, steady::time_point::max());
    std::printf("duplex-loadgen-tls: echo wss://%s:%s%s, %d connections, %zu B %s, depth %d, warm-up %.1f s, %.1f s "
                "measured\n",
                o.host.c_str(), o.port.c_str(), o.path.c_str(), o.connections, o.size, o.text ? "text" : "binary",
                o.depth, o.warmup, o.duration);
    std::fflush(stdout);
    for (int i = 0; i < o.connections; ++i)
        asio::co_spawn(io, run_connection(s, tls, endpoint, start), asio::detached);

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
            start.cancel();
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
    if (s.failed > 0) std::printf("warning: %d connection(s) failed to open\n", s.failed);
    const std::string result = "RESULT mode=echo protocol=wss connections=" + std::to_string(o.connections) +
                               " established=" + std::to_string(s.established) + " failed=" + std::to_string(s.failed) +
                               " size=" + std::to_string(o.size) + " depth=" + std::to_string(o.depth) +
                               " payload=" + (o.text ? "text" : "binary") + " compression=off errors=" +
                               std::to_string(s.errors) + " " + window_figures(first, last, o.size, s.latencies_ns);
    std::printf("%s\n", result.c_str());
    return messages > 0 ? 0 : 1;
}
