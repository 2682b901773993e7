// duplex-tls-echo — the echo sample (examples/echo/echo.hpp) over TLS: every WebSocket message received
// on wss://HOST:PORT/ws goes straight back, and the peer's close is answered with its own status.
//
//   duplex-tls-echo --urls https://HOST:PORT[;https://HOST:PORT…] --cert FILE --key FILE [--chain FILE]
//                   [--handshake-timeout-ms N]                       (default https://localhost:5001)
//
// examples/tls_echo/make-certs.sh DIR makes a throwaway CA and a certificate for 127.0.0.1 and localhost.
#include <duplex/duplex.hpp>
#include <duplex/tls.hpp>

#include "../echo/echo.hpp"

#include <charconv>
#include <chrono>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::ip::tcp;
using tls_socket = duplex::tls::stream<tcp::socket>;

duplex::awaitable<void> serve(tcp::socket socket, duplex::tls::shared_context context,
                              std::chrono::milliseconds handshake_timeout) {
    socket.set_option(tcp::no_delay(true));
    tls_socket tls(std::move(socket), std::move(context));
    const auto tls_failure = co_await tls.accept(handshake_timeout);
    if (tls_failure) co_return;  // plain HTTP got its 400; a timeout or a failed handshake closed the connection
    duplex::ws::stream<tls_socket> stream(std::move(tls), duplex::ws::role::server);
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

duplex::awaitable<void> listen(tcp::acceptor acceptor, duplex::tls::shared_context context,
                               std::chrono::milliseconds handshake_timeout) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(duplex::detail::use_nothrow_awaitable);
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), context, handshake_timeout), asio::detached);
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
        if (!url.starts_with("https://")) throw std::invalid_argument("only https:// URLs are served: " + std::string(url));
        url.remove_prefix(8);
        if (url.ends_with('/')) url.remove_suffix(1);
        const auto colon = url.rfind(':');
        if (colon == std::string_view::npos) throw std::invalid_argument("a URL needs a port: " + std::string(url));
        auto host = url.substr(0, colon);
        if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
        out.push_back({std::string(host), std::string(url.substr(colon + 1))});
    }
    return out;
}

int usage() {
    std::cerr << "usage: duplex-tls-echo [--urls https://HOST:PORT[;https://HOST:PORT...]] --cert FILE --key FILE\n"
                 "                       [--chain FILE] [--handshake-timeout-ms N]\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string urls = "https://localhost:5001";
    duplex::tls::server_options tls_options;
    long long handshake_timeout_ms = 10000;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--urls" && has_value) urls = argv[++i];
        else if (arg == "--cert" && has_value) tls_options.certificate_file = argv[++i];
        else if (arg == "--key" && has_value) tls_options.private_key_file = argv[++i];
        else if (arg == "--chain" && has_value) tls_options.chain_file = argv[++i];
        else if (arg == "--handshake-timeout-ms" && has_value) {
            const std::string_view value = argv[++i];
            const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), handshake_timeout_ms);
            if (ec != std::errc{} || end != value.data() + value.size() || handshake_timeout_ms <= 0) return usage();
        } else {
            return usage();
        }
    }
    if (tls_options.certificate_file.empty() || tls_options.private_key_file.empty()) return usage();
    try {
        const auto context = duplex::tls::server_context(tls_options);
        const std::chrono::milliseconds handshake_timeout(handshake_timeout_ms);
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
                    std::cerr << "duplex-tls-echo: cannot listen on " << entry.endpoint() << ": " << ec.message() << "\n";
                    continue;
                }
                const auto local = acceptor.local_endpoint();
                const auto address = local.address().to_string();
                std::cout << "duplex-tls-echo listening on https://"
                          << (local.address().is_v6() ? "[" + address + "]" : address) << ":" << local.port()
                          << std::endl;
                asio::co_spawn(io, listen(std::move(acceptor), context, handshake_timeout), asio::detached);
                ++listening;
            }
        }
        if (listening == 0) {
            std::cerr << "duplex-tls-echo: no address to listen on\n";
            return 1;
        }
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code, int) { io.stop(); });
        io.run();
    } catch (const std::exception& e) {
        std::cerr << "duplex-tls-echo: " << e.what() << "\n";
        return 1;
    }
}
