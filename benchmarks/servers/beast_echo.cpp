// beast-echo — the Boost.Beast echo duplex is compared with: Beast's own C++20 coroutine WebSocket server
// example (websocket_server_awaitable.cpp) on one thread, with its suggested server timeouts.
//
//   beast-echo [--urls http://HOST:PORT] [--compression] [--buffer-per-message]
//
// Prints "beast-echo listening on http://HOST:PORT" (port 0 picks one). Two departures from the example,
// both in Beast's favour and both what duplex-echo does too: TCP_NODELAY is set on every connection, and
// one flat_buffer is reused for the whole connection (--buffer-per-message restores the example's fresh
// flat_buffer per message). permessage-deflate is offered only with --compression.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

using executor = net::use_awaitable_t<>::executor_with_default<net::any_io_executor>;
using ws_stream = websocket::stream<beast::tcp_stream::rebind_executor<executor>::other>;

struct settings {
    bool compression = false;
    bool buffer_per_message = false;
};

net::awaitable<void> echo(ws_stream& ws, bool buffer_per_message) {
    beast::flat_buffer buffer;
    for (;;) {
        if (buffer_per_message) buffer = beast::flat_buffer();
        co_await ws.async_read(buffer);
        ws.text(ws.got_text());
        co_await ws.async_write(buffer.data());
        buffer.consume(buffer.size());
    }
}

net::awaitable<void> session(ws_stream ws, settings options) {
    try {
        beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
        ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        if (options.compression) {
            websocket::permessage_deflate deflate;
            deflate.server_enable = true;
            deflate.client_enable = true;
            ws.set_option(deflate);
        }
        co_await ws.async_accept();
        co_await echo(ws, options.buffer_per_message);
    } catch (const boost::system::system_error&) {
        // websocket::error::closed after the peer's close, or a transport error: the session is over.
    }
}

net::awaitable<void> listen(tcp::acceptor acceptor, settings options) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (ec == net::error::operation_aborted) co_return;
        if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
        net::co_spawn(acceptor.get_executor(), session(ws_stream(std::move(socket)), options), net::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string url = "http://127.0.0.1:5002";
    settings options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--urls" && i + 1 < argc) url = argv[++i];
        else if (arg.starts_with("--urls=")) url = std::string(arg.substr(7));
        else if (arg == "--compression") options.compression = true;
        else if (arg == "--buffer-per-message") options.buffer_per_message = true;
        else {
            std::cerr << "usage: beast-echo [--urls http://HOST:PORT] [--compression] [--buffer-per-message]\n";
            return 2;
        }
    }
    std::string_view rest = url;
    if (rest.starts_with("http://")) rest.remove_prefix(7);
    if (rest.ends_with('/')) rest.remove_suffix(1);
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
        std::cerr << "beast-echo: a URL needs a port: " << url << "\n";
        return 2;
    }
    std::string host(rest.substr(0, colon));
    if (host == "localhost") host = "127.0.0.1";
    try {
        net::io_context io(1);
        const tcp::endpoint endpoint(net::ip::make_address(host),
                                     static_cast<unsigned short>(std::stoi(std::string(rest.substr(colon + 1)))));
        tcp::acceptor acceptor(io);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(net::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen(net::socket_base::max_listen_connections);
        const auto local = acceptor.local_endpoint();
        std::cout << "beast-echo listening on http://" << local.address().to_string() << ":" << local.port()
                  << std::endl;
        net::co_spawn(io, listen(std::move(acceptor), options), net::detached);
        net::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "beast-echo: " << e.what() << "\n";
        return 1;
    }
}
