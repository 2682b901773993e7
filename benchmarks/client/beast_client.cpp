// beast-client-bench — Boost.Beast 1.81's client in the client benchmark (benchmarks/run --client), the
// yardstick for duplex-client-bench: the same modes, the same frame-blaster, the same RESULT line.
//
//   beast-client-bench --port P --mode sync|coro|latency|connect [--size N] [--text 0|1] [--warmup S] [--duration S]
//
// sync: websocket::stream::read(flat_buffer) on a blocking socket, the buffer consumed and reused;
// coro: co_await async_read(flat_buffer) in a C++20 coroutine on one io_context; latency: a 64 B write
// and a synchronous read of the reply, timed; connect: TCP connect to the endpoint (no resolver),
// handshake, close handshake.
#include "measure.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <iostream>
#include <string>

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

void sync_client(const bench::settings& s, bench::window& window, net::io_context& io) {
    const tcp::endpoint endpoint(net::ip::make_address(s.host), s.port);
    const auto host = s.host + ":" + std::to_string(s.port);
    if (s.mode == "connect") {
        do {
            websocket::stream<tcp::socket> ws(io);
            ws.next_layer().connect(endpoint);
            ws.next_layer().set_option(tcp::no_delay(true));
            ws.handshake(host, bench::target_of(s));
            ws.close(websocket::close_code::normal);
        } while (window.count());
        return;
    }
    websocket::stream<tcp::socket> ws(io);
    ws.next_layer().connect(endpoint);
    ws.next_layer().set_option(tcp::no_delay(true));
    ws.read_message_max(64 << 20);
    ws.handshake(host, bench::target_of(s));
    beast::flat_buffer buffer;
    if (s.mode == "latency") {
        ws.binary(true);
        const std::string request(64, 'x');
        for (;;) {
            const auto sent = std::chrono::steady_clock::now();
            ws.write(net::buffer(request));
            ws.read(buffer);
            buffer.consume(buffer.size());
            if (!window.count(std::chrono::steady_clock::now() - sent)) break;
        }
        ws.close(websocket::close_code::normal);
        return;
    }
    for (;;) {
        ws.read(buffer);
        buffer.consume(buffer.size());
        if (!window.count()) break;
    }
}

net::awaitable<void> coro_client(const bench::settings& s, bench::window& window) {
    const tcp::endpoint endpoint(net::ip::make_address(s.host), s.port);
    websocket::stream<tcp::socket> ws(co_await net::this_coro::executor);
    co_await ws.next_layer().async_connect(endpoint, net::use_awaitable);
    ws.next_layer().set_option(tcp::no_delay(true));
    ws.read_message_max(64 << 20);
    co_await ws.async_handshake(s.host + ":" + std::to_string(s.port), bench::target_of(s), net::use_awaitable);
    beast::flat_buffer buffer;
    for (;;) {
        co_await ws.async_read(buffer, net::use_awaitable);
        buffer.consume(buffer.size());
        if (!window.count()) break;
    }
}

}  // namespace

int main(int argc, char** argv) {
    const auto s = bench::parse(argc, argv);
    net::io_context io(1);
    bench::window window(s);
    try {
        if (s.mode == "coro") {
            std::exception_ptr failure;
            net::co_spawn(io, coro_client(s, window), [&](std::exception_ptr e) { failure = e; });
            io.run();
            if (failure) std::rethrow_exception(failure);
        } else {
            sync_client(s, window, io);
        }
    } catch (const std::exception& e) {
        std::cerr << "beast-client-bench: " << e.what() << "\n";
        return 1;
    }
    window.print("beast");
}
