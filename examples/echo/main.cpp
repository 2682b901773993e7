// duplex-echo — the seed's echo sample: every WebSocket message received on /ws is sent straight back
// with the same type and end-of-message flag, and the peer's close is answered with its own status.
//
//   duplex-echo [--urls http://HOST:PORT[;http://HOST:PORT…]]     (default http://localhost:5000)
#include <duplex/duplex.hpp>

#include "echo.hpp"

#include <array>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::ip::tcp;

duplex::awaitable<void> serve(tcp::socket socket) {
    socket.set_option(tcp::no_delay(true));
    duplex::ws::stream<tcp::socket> stream(std::move(socket), duplex::ws::role::server);
    try {
        auto request = co_await stream.read_request();
        if (request.path != "/ws") {
            co_await stream.reject(404, "Not Found");
            co_return;
        }
        if (!duplex::ws::handshake::is_upgrade_request(request)) {
            co_await stream.reject(400, "This endpoint only accepts WebSocket requests");
            co_return;
        }
        co_await stream.accept(request);
        auto ws = stream.as_websocket();
        co_await duplex::examples::echo(ws);
    } catch (const duplex::websocket_error&) {
        // The library already answered the peer (close code or HTTP status); this connection is over.
    }
}

duplex::awaitable<void> listen(tcp::acceptor acceptor) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(duplex::detail::use_nothrow_awaitable);
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
}

struct listen_url {
    std::string host;
    std::string port;
};

std::vector<listen_url> parse_urls(std::string_view urls) {
    std::vector<listen_url> out;
    while (!urls.empty()) {
        const auto end = urls.find(';');
        auto url = urls.substr(0, end);
        urls = end == std::string_view::npos ? std::string_view{} : urls.substr(end + 1);
        if (!url.starts_with("http://")) throw std::invalid_argument("only http:// URLs are served: " + std::string(url));
        url.remove_prefix(7);
        if (url.ends_with('/')) url.remove_suffix(1);
        const auto colon = url.rfind(':');
        if (colon == std::string_view::npos) throw std::invalid_argument("a URL needs a port: " + std::string(url));
        auto host = url.substr(0, colon);
        if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
        out.push_back({std::string(host), std::string(url.substr(colon + 1))});
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    std::string urls = "http://localhost:5000";
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--urls" && i + 1 < argc) urls = argv[++i];
        else if (arg.starts_with("--urls=")) urls = std::string(arg.substr(7));
        else {
            std::cerr << "usage: duplex-echo [--urls http://HOST:PORT[;http://HOST:PORT...]]\n";
            return 2;
        }
    }
    try {
        asio::io_context io(1);
        tcp::resolver resolver(io);
        std::size_t listening = 0;
        for (const auto& url : parse_urls(urls)) {
            for (const auto& entry : resolver.resolve(url.host, url.port, tcp::resolver::passive)) {
                tcp::acceptor acceptor(io);
                std::error_code ec;
                acceptor.open(entry.endpoint().protocol(), ec);
                if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
                if (!ec && entry.endpoint().address().is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
                if (!ec) acceptor.bind(entry.endpoint(), ec);
                if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
                if (ec) {
                    std::cerr << "duplex-echo: cannot listen on " << entry.endpoint() << ": " << ec.message() << "\n";
                    continue;
                }
                const auto local = acceptor.local_endpoint();
                const auto address = local.address().to_string();
                std::cout << "duplex-echo listening on http://"
                          << (local.address().is_v6() ? "[" + address + "]" : address) << ":" << local.port()
                          << std::endl;
                asio::co_spawn(io, listen(std::move(acceptor)), asio::detached);
                ++listening;
            }
        }
        if (listening == 0) {
            std::cerr << "duplex-echo: no address to listen on\n";
            return 1;
        }
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code, int) { io.stop(); });
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "duplex-echo: " << e.what() << "\n";
        return 1;
    }
}
