// A connected pair of WebSocket streams over loopback TCP, or TLS over loopback TCP: the server's
// ws::stream and the client's, both past the opening handshake, on one io_context. For the tests of
// behaviour that must hold over both transports (cancellation, completion tokens, the keep-alive).
#pragma once

#include <duplex/duplex.hpp>
#include <duplex/tls.hpp>

#include <doctest/doctest.h>

#include <asio/experimental/awaitable_operators.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace test {

using tcp_socket = asio::ip::tcp::socket;
using tls_socket = duplex::tls::stream<asio::ip::tcp::socket>;

// Where the TLS certificates are (made by examples/tls_echo/make-certs.sh); set by the test's main.
inline std::string& certificate_directory() {
    static std::string directory;
    return directory;
}

template <class Transport>
struct loopback_pair {
    std::optional<duplex::ws::stream<Transport>> server, client;
    // The client's TCP socket, to shrink its buffers or shut it down underneath the WebSocket.
    tcp_socket& client_tcp() { return client->next_layer().lowest_layer(); }
    tcp_socket& server_tcp() { return server->next_layer().lowest_layer(); }
};

// Kernel buffers small enough that a peer which stops reading holds a sender up after a few KiB.
inline void shrink_buffers(tcp_socket& socket) {
    socket.set_option(asio::socket_base::send_buffer_size(8 * 1024));
    socket.set_option(asio::socket_base::receive_buffer_size(8 * 1024));
}

template <class Transport>
duplex::awaitable<loopback_pair<Transport>> open_loopback(asio::io_context& io, duplex::ws::stream_options server_options,
                                                          duplex::ws::stream_options client_options,
                                                          bool small_buffers) {
    using namespace asio::experimental::awaitable_operators;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    tcp_socket client_socket(io);
    tcp_socket server_socket(io);
    co_await (acceptor.async_accept(server_socket, duplex::use_awaitable) &&
              client_socket.async_connect(acceptor.local_endpoint(), duplex::use_awaitable));
    if (small_buffers) {
        shrink_buffers(client_socket);
        shrink_buffers(server_socket);
    }
    loopback_pair<Transport> pair;
    if constexpr (std::is_same_v<Transport, tls_socket>) {
        const auto& dir = certificate_directory();
        REQUIRE_MESSAGE(!dir.empty(), "no certificate directory (--certs)");
        tls_socket server_tls(std::move(server_socket), duplex::tls::server_context({.certificate_file = dir + "/server.pem",
                                                                                     .private_key_file = dir + "/server.key"}));
        tls_socket client_tls(std::move(client_socket), duplex::tls::client_context({.ca_file = dir + "/ca.pem"}));
        const auto [server_ec, client_ec] = co_await (server_tls.accept(std::chrono::seconds(10)) &&
                                                      client_tls.handshake("localhost", std::chrono::seconds(10), true));
        REQUIRE_FALSE(server_ec);
        REQUIRE_FALSE(client_ec);
        pair.server.emplace(std::move(server_tls), duplex::ws::role::server, server_options);
        pair.client.emplace(std::move(client_tls), duplex::ws::role::client, client_options);
    } else {
        pair.server.emplace(std::move(server_socket), duplex::ws::role::server, server_options);
        pair.client.emplace(std::move(client_socket), duplex::ws::role::client, client_options);
    }
    co_await (pair.server->accept() && pair.client->handshake("localhost", "/ws"));
    REQUIRE(pair.server->state() == duplex::websocket_state::open);
    REQUIRE(pair.client->state() == duplex::websocket_state::open);
    co_return pair;
}

// Certificates for the TLS cases: `--make-certs SCRIPT --certs DIR` on the command line (the rest goes
// to doctest), as tests/tls does.
inline int run_doctest_with_certificates(int argc, char** argv) {
    std::string make_certs;
    std::vector<char*> doctest_args{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--make-certs" && i + 1 < argc) make_certs = argv[++i];
        else if (arg == "--certs" && i + 1 < argc) certificate_directory() = argv[++i];
        else doctest_args.push_back(argv[i]);
    }
    if (certificate_directory().empty()) {
        std::fprintf(stderr, "usage: %s --make-certs make-certs.sh --certs DIR [doctest options...]\n", argv[0]);
        return 2;
    }
    if (!make_certs.empty()) {
        const std::string command = "bash '" + make_certs + "' '" + certificate_directory() + "' >/dev/null";
        if (std::system(command.c_str()) != 0) {
            std::fprintf(stderr, "could not make the test certificates with %s\n", make_certs.c_str());
            return 1;
        }
    }
    doctest::Context context(static_cast<int>(doctest_args.size()), doctest_args.data());
    return context.run();
}

}  // namespace test
