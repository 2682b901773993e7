// duplex-client-bench — duplex's client in the client benchmark (benchmarks/run --client), against
// frame-blaster (benchmarks/client/blaster.cpp). One thread; prints one RESULT line (measure.hpp).
//
//   duplex-client-bench --port P --mode receive|receive_message|tokens_message|latency|connect
//                       [--size N] [--text 0|1] [--warmup S] [--duration S]
//
// receive: ws.receive() into a 64 KiB buffer, pieces counted to the message's end; receive_message:
// ws.receive_message() into one std::string reused for every message; latency: a 64 B message sent
// and a reply of --size read with receive_message, timed; connect: duplex::connect() to the IP literal,
// close handshake, per connection.
#include "measure.hpp"

#include <duplex/duplex.hpp>

#include <array>
#include <iostream>
#include <memory>

namespace {

duplex::awaitable<void> run(const bench::settings& s, bench::window& window) {
    const auto url = "ws://" + s.host + ":" + std::to_string(s.port) + bench::target_of(s);
    if (s.mode == "connect") {
        do {
            auto ws = co_await duplex::connect(url);
            co_await ws.close(duplex::close_status::normal_closure);
        } while (window.count());
        co_return;
    }
    auto ws = co_await duplex::connect(url);
    if (s.mode == "receive") {
        auto buffer = std::make_unique<std::array<std::byte, 64 * 1024>>();
        for (;;) {
            auto r = co_await ws.receive(asio::buffer(*buffer));
            if (r.close_status) co_return;
            if (r.end_of_message && !window.count()) break;
        }
    } else if (s.mode == "receive_message") {
        std::string message;
        for (;;) {
            auto r = co_await ws.receive_message(message, 64 << 20);
            if (r.close_status) co_return;
            if (!window.count()) break;
        }
    } else if (s.mode == "latency") {
        const std::string request(64, 'x');
        std::string reply;
        for (;;) {
            const auto sent = std::chrono::steady_clock::now();
            co_await ws.send(asio::buffer(request), duplex::message_type::binary);
            co_await ws.receive_message(reply, 64 << 20);
            if (!window.count(std::chrono::steady_clock::now() - sent)) break;
        }
        co_await ws.close(duplex::close_status::normal_closure);
        co_return;
    } else {
        std::cerr << "duplex-client-bench: unknown --mode " << s.mode << "\n";
        std::exit(2);
    }
    ws.abort();  // the blaster never stops sending: no close handshake to wait for
}

}  // namespace

int main(int argc, char** argv) {
    const auto s = bench::parse(argc, argv);
    asio::io_context io(1);
    bench::window window(s);
    bool failed = false;
    asio::co_spawn(io, run(s, window), [&](std::exception_ptr e) {
        if (!e) return;
        failed = true;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            std::cerr << "duplex-client-bench: " << x.what() << "\n";
        }
    });
    io.run();
    if (failed) return 1;
    window.print("duplex");
}
