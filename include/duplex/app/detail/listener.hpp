// The listeners of duplex::app: an acceptor for every address a URL resolves to, and the accept loop
// that gives each connection its io_context (round-robin over the workers' io_pool), refuses
// connections past max_connections with 503, and starts an http_connection over TCP or TLS.
#pragma once

#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/http_connection.hpp>
#include <duplex/app/detail/listen_url.hpp>
#include <duplex/config.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/tls/stream.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::detail {

// Answers a connection the app has no room for, and closes it.
inline awaitable<void> refuse(asio::ip::tcp::socket socket) {
    static constexpr std::string_view answer =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 19\r\nConnection: close\r\n\r\nServer at capacity\n";
    co_await asio::async_write(socket, asio::buffer(answer), use_nothrow_awaitable);
    std::error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
}

template <class Transport>
void start_connection(Transport transport, app_core& core) {
    const auto executor = transport.get_executor();
    auto connection = std::make_shared<http_connection<Transport>>(std::move(transport), core);
    asio::co_spawn(executor, [connection]() -> awaitable<void> { co_await connection->run(); }, asio::detached);
}

// Accepts connections, for https:// with `tls_context`; each runs (and makes its TLS handshake) in a
// coroutine of its own. The acceptors live on the pool's first io_context; each accepted socket is
// registered with the next io_context of the pool (Asio accepts straight into a socket of another
// io_context), and its connection runs there alone: one thread per io_context, so no strands, and no
// completion takes a second trip through a scheduler.
inline awaitable<void> accept_loop(io_pool& pool, std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                   tls::shared_context tls_context, app_core& core) {
    for (;;) {
        auto [ec, socket] = co_await acceptor->async_accept(pool.next().get_executor(), use_nothrow_awaitable);
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        if (ec) continue;  // e.g. out of file descriptors: keep serving the connections we have
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        if (core.active_connections >= core.options.max_connections || core.stopping) {
            if (tls_context) {
                socket.close(ignored);  // a 503 would cost a TLS handshake, the work being refused
            } else {
                const auto socket_executor = socket.get_executor();
                asio::co_spawn(socket_executor, refuse(std::move(socket)), asio::detached);
            }
            continue;
        }
        // The socket comes typed with its io_context's executor; both transports hold a plain tcp::socket.
        asio::ip::tcp::socket connected(std::move(socket));
        if (tls_context)
            start_connection(tls::stream<asio::ip::tcp::socket>(std::move(connected), tls_context), core);
        else
            start_connection(std::move(connected), core);
    }
}

// Opens an acceptor on every address `url` resolves to and starts its accept loop; prints
// "<name> listening on <url>" for each and records it in core.listening_urls. An address that cannot
// be listened on is reported on stderr and skipped.
inline void listen(io_pool& pool, const listen_url& url, app_core& core,
                   std::vector<std::shared_ptr<asio::ip::tcp::acceptor>>& acceptors) {
    auto& io = pool[0];
    asio::ip::tcp::resolver resolver(io);
    for (const auto& entry : resolver.resolve(url.host, url.port, asio::ip::tcp::resolver::passive)) {
        auto acceptor = std::make_shared<asio::ip::tcp::acceptor>(io);
        std::error_code ec;
        acceptor->open(entry.endpoint().protocol(), ec);
        if (!ec) acceptor->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
        if (!ec && entry.endpoint().address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
        if (!ec) acceptor->bind(entry.endpoint(), ec);
        if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            std::cerr << core.options.name << ": cannot listen on " << entry.endpoint() << ": " << ec.message() << "\n";
            continue;
        }
        const auto local = acceptor->local_endpoint();
        const auto address = local.address().to_string();
        const auto shown = url.scheme + "://" + (local.address().is_v6() ? "[" + address + "]" : address) + ":" +
                           std::to_string(local.port());
        {
            std::lock_guard lock(core.urls_mutex);
            core.listening_urls.push_back(shown);
        }
        std::cout << core.options.name << " listening on " << shown << std::endl;
        auto tls_context = url.scheme == "https" ? core.https->context : nullptr;
        asio::co_spawn(io, accept_loop(pool, acceptor, std::move(tls_context), core), asio::detached);
        acceptors.push_back(std::move(acceptor));
    }
}

}  // namespace duplex::detail
