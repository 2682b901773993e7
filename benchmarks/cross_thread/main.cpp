// duplex-cross-thread-bench — what a send costs when it comes from another thread, beside one from the
// socket's own thread, in the same run.
//
//   duplex-cross-thread-bench [--messages N] [--size BYTES]
//
// A server-role ws::stream lives on io_context A (one thread); a plain TCP reader on its own thread
// drains what it sends. Each mode sends N messages one after the other (each awaited before the next):
//   own thread     a coroutine on A sends (the hot path: a check, then the send)
//   other thread   a coroutine on io_context B (another thread) sends through the same handle: every
//                  send is carried to A and its completion back to B
//   tokens         a coroutine on A sends with as_tuple(use_awaitable) (co_spawn on A per send)
// Reported per message: the process's CPU time (user + system, every thread, the reader's included: it
// is the same for every mode) and the wall time. Lines starting with CROSS are for scripts.
#include <duplex/duplex.hpp>

#include <asio/experimental/as_tuple.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

enum class mode { own_thread, other_thread, tokens };

duplex::awaitable<void> send_all(duplex::websocket ws, std::string payload, std::size_t messages, mode how) {
    for (std::size_t i = 0; i < messages; ++i) {
        if (how == mode::tokens) {
            auto [ec] = co_await ws.async_send(asio::buffer(payload), duplex::message_type::binary, true,
                                               duplex::message_flags::none,
                                               asio::experimental::as_tuple(duplex::use_awaitable));
            if (ec) throw duplex::websocket_error(ec);
        } else {
            co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t messages = 200'000, size = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view arg = argv[i], value = argv[i + 1];
        auto& target = arg == "--messages" ? messages : size;
        if (arg != "--messages" && arg != "--size") {
            std::fprintf(stderr, "usage: %s [--messages N] [--size BYTES]\n", argv[0]);
            return 2;
        }
        std::from_chars(value.data(), value.data() + value.size(), target);
    }

    asio::io_context socket_context(1), other_context(1);
    tcp::acceptor acceptor(socket_context, {asio::ip::address_v4::loopback(), 0});
    tcp::socket reader_socket(other_context);
    reader_socket.connect(acceptor.local_endpoint());
    tcp::socket accepted = acceptor.accept();
    // The reader drains until the end, so that no send waits on the peer.
    std::thread reader([&reader_socket] {
        std::vector<char> chunk(1 << 20);
        std::error_code ec;
        while (!ec) reader_socket.read_some(asio::buffer(chunk), ec);
    });
    duplex::ws::stream<tcp::socket> stream(std::move(accepted), duplex::ws::role::server);
    // Past the handshake without one: the bench measures sends, and the reader ignores what it reads.
    duplex::websocket ws;
    {
        // A server stream accepts an upgrade request; hand it one through prime().
        const std::string_view request =
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        stream.prime(std::as_bytes(std::span(request.data(), request.size())));
        asio::co_spawn(socket_context, stream.accept(), asio::detached);
        socket_context.run();
        socket_context.restart();
        ws = stream.as_websocket();
    }
    const std::string payload(size, 'x');
    auto work = asio::make_work_guard(other_context);
    std::thread other([&other_context] { other_context.run(); });
    auto socket_work = asio::make_work_guard(socket_context);
    std::thread own([&socket_context] { socket_context.run(); });

    std::printf("%zu sends of %zu B, each awaited before the next\n", messages, size);
    for (const auto how : {mode::own_thread, mode::other_thread, mode::tokens, mode::own_thread}) {
        auto& where = how == mode::other_thread ? other_context : socket_context;
        std::promise<void> done;
        const auto cpu0 = process_cpu_seconds();
        const auto wall0 = clock_type::now();
        asio::co_spawn(where, send_all(ws, payload, messages, how), [&done](std::exception_ptr e) {
            if (e) done.set_exception(e);
            else done.set_value();
        });
        done.get_future().get();
        const double cpu = process_cpu_seconds() - cpu0;
        const double wall = std::chrono::duration<double>(clock_type::now() - wall0).count();
        const char* name = how == mode::own_thread ? "own_thread" : how == mode::other_thread ? "other_thread" : "tokens";
        std::printf("  %-13s %8.3f us CPU/msg  %8.3f us wall/msg\n", name, cpu * 1e6 / static_cast<double>(messages),
                    wall * 1e6 / static_cast<double>(messages));
        std::printf("CROSS mode=%s cpu_us=%.4f wall_us=%.4f\n", name, cpu * 1e6 / static_cast<double>(messages),
                    wall * 1e6 / static_cast<double>(messages));
    }
    ws.abort();
    socket_work.reset();
    work.reset();
    own.join();
    other.join();
    reader.join();
}
