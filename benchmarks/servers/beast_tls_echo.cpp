// beast-tls-echo — the Boost.Beast echo of beast_echo.cpp over TLS (beast::ssl_stream), the yardstick of
// the wss benchmark: Beast's C++20 coroutine WebSocket server example on one thread, its suggested
// server timeouts, TCP_NODELAY and one flat_buffer per connection, with the TLS handshake first.
//
//   beast-tls-echo --urls https://HOST:PORT --cert FILE --key FILE
//
// Prints "beast-tls-echo listening on https://HOST:PORT" (port 0 picks one). The context speaks TLS 1.2
// and newer, as duplex's does; examples/tls_echo/make-certs.sh makes a throwaway certificate.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <string_view>

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

using executor = net::use_awaitable_t<>::executor_with_default<net::any_io_executor>;
using tcp_stream = beast::tcp_stream::rebind_executor<executor>::other;
using ws_stream = websocket::stream<beast::ssl_stream<tcp_stream>>;

net::awaitable<void> echo(ws_stream& ws) {
    beast::flat_buffer buffer;
    for (;;) {
        co_await ws.async_read(buffer);
        ws.text(ws.got_text());
        co_await ws.async_write(buffer.data());
        buffer.consume(buffer.size());
    }
}

net::awaitable<void> session(ws_stream ws) {
    try {
        auto& lowest = beast::get_lowest_layer(ws);
        lowest.socket().set_option(tcp::no_delay(true));
        lowest.expires_after(std::chrono::seconds(30));
        co_await ws.next_layer().async_handshake(ssl::stream_base::server);
        lowest.expires_never();  // the WebSocket's own timeouts take over
        ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        co_await ws.async_accept();
        co_await echo(ws);
    } catch (const boost::system::system_error&) {
        // websocket::error::closed after the peer's close, or a transport/TLS error: the session is over.
    }
}

net::awaitable<void> listen(tcp::acceptor acceptor, ssl::context& context) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (ec == net::error::operation_aborted) co_return;
        if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
        net::co_spawn(acceptor.get_executor(), session(ws_stream(std::move(socket), context)), net::detached);
    }
}

int usage() {
    std::cerr << "usage: beast-tls-echo --urls https://HOST:PORT --cert FILE --key FILE\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string url = "https://127.0.0.1:5003", cert, key;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--urls" && i + 1 < argc) url = argv[++i];
        else if (arg.starts_with("--urls=")) url = std::string(arg.substr(7));
        else if (arg == "--cert" && i + 1 < argc) cert = argv[++i];
        else if (arg == "--key" && i + 1 < argc) key = argv[++i];
        else return usage();
    }
    if (cert.empty() || key.empty()) return usage();
    std::string_view rest = url;
    if (rest.starts_with("https://")) rest.remove_prefix(8);
    if (rest.ends_with('/')) rest.remove_suffix(1);
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
        std::cerr << "beast-tls-echo: a URL needs a port: " << url << "\n";
        return 2;
    }
    std::string host(rest.substr(0, colon));
    if (host == "localhost") host = "127.0.0.1";
    try {
        ssl::context context(ssl::context::tls_server);
        context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        context.use_certificate_chain_file(cert);
        context.use_private_key_file(key, ssl::context::pem);
        net::io_context io(1);
        const tcp::endpoint endpoint(net::ip::make_address(host),
                                     static_cast<unsigned short>(std::stoi(std::string(rest.substr(colon + 1)))));
        tcp::acceptor acceptor(io);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(net::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen(net::socket_base::max_listen_connections);
        const auto local = acceptor.local_endpoint();
        std::cout << "beast-tls-echo listening on https://" << local.address().to_string() << ":" << local.port()
                  << std::endl;
        net::co_spawn(io, listen(std::move(acceptor), context), net::detached);
        net::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code, int) { io.stop(); });
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "beast-tls-echo: " << e.what() << "\n";
        return 1;
    }
}
