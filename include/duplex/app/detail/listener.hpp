// The listeners of duplex::app: an acceptor for every address a URL resolves to, and the accept loop
// that gives each connection its executor (a strand with several threads), refuses connections past
// max_connections with 503 (and, out of file descriptors, the ones it has no descriptor for), and
// starts an http_connection over TCP or TLS.
#pragma once

#include <duplex/app/detail/app_core.hpp>
#include <duplex/app/detail/descriptors.hpp>
#include <duplex/app/detail/http_connection.hpp>
#include <duplex/app/detail/listen_url.hpp>
#include <duplex/config.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/tls/stream.hpp>

#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace duplex::detail {

inline constexpr std::string_view server_at_capacity =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 19\r\nConnection: close\r\n\r\nServer at capacity\n";

// Answers a connection the app has no room for, and closes it.
inline awaitable<void> refuse(asio::ip::tcp::socket socket) {
    co_await asio::async_write(socket, asio::buffer(server_at_capacity), use_nothrow_awaitable);
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
// coroutine of its own. With several threads each connection gets a strand, so its coroutines never
// run on two threads at once. One thread needs none: a strand would cost every completion a second trip
// through the scheduler.
inline awaitable<void> accept_loop(asio::io_context& io, std::shared_ptr<asio::ip::tcp::acceptor> acceptor,
                                   tls::shared_context tls_context, app_core& core, bool use_strands,
                                   std::string url) {
    descriptor_shortage shortage(core, url);
    // Said once when max_connections starts refusing and once when it stops, not once per connection.
    std::size_t refused_at_capacity = 0;
    for (;;) {
        const auto executor =
            use_strands ? asio::any_io_executor(asio::make_strand(io)) : asio::any_io_executor(io.get_executor());
        auto [ec, socket] = co_await acceptor->async_accept(executor, use_nothrow_awaitable);
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
        if (is_out_of_descriptors(ec)) {
            co_await shortage.relieve(*acceptor, tls_context ? std::string_view{} : server_at_capacity);
            continue;
        }
        if (ec) continue;  // the client left before we took its connection: keep serving the others
        shortage.end();
        std::error_code ignored;
        socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        if (core.active_connections >= core.options.max_connections || core.stopping) {
            if (refused_at_capacity++ == 0 && !core.stopping)
                core.log(log_level::warning, "max_connections (" + std::to_string(core.options.max_connections) +
                                                 ") reached: refusing new connections on " + url + " until some close");
            if (tls_context) {
                socket.close(ignored);  // a 503 would cost a TLS handshake, the work being refused
            } else {
                const auto socket_executor = socket.get_executor();
                asio::co_spawn(socket_executor, refuse(std::move(socket)), asio::detached);
            }
            continue;
        }
        if (refused_at_capacity != 0) {
            core.log(log_level::information, "accepting on " + url + " again (" + std::to_string(refused_at_capacity) +
                                                 (refused_at_capacity == 1 ? " connection" : " connections") +
                                                 " refused at max_connections)");
            refused_at_capacity = 0;
        }
        // The socket comes typed with its strand; both transports hold it as a plain tcp::socket.
        asio::ip::tcp::socket connected(std::move(socket));
        if (tls_context)
            start_connection(tls::stream<asio::ip::tcp::socket>(std::move(connected), tls_context), core);
        else
            start_connection(std::move(connected), core);
    }
}

// Raises the process's descriptor limit to its hard limit, once, and returns what it is now: every
// connection takes a descriptor, so the limit, not max_connections, may be what refuses connections.
inline const std::optional<descriptor_limit>& process_descriptor_limit() {
    static const auto limit = raise_descriptor_limit();
    return limit;
}

// Says what the descriptor limit is, once, after the "listening on" lines (scripts wait for those
// first), with a warning when it is below max_connections.
inline void report_descriptor_limit(const app_core& core) {
    static std::once_flag once;
    std::call_once(once, [&core] {
        const auto& limit = process_descriptor_limit();
        if (!limit) return;
        auto line = "file descriptor limit " + std::to_string(limit->effective);
        if (limit->effective != limit->before) line += " (raised from " + std::to_string(limit->before) + ")";
        core.log(log_level::information, line);
        if (limit->effective < core.options.max_connections)
            core.log(log_level::warning, "max_connections is " + std::to_string(core.options.max_connections) +
                                             ", but the hard file descriptor limit allows fewer connections: past it "
                                             "new ones get 503 (raise it with ulimit -Hn, or LimitNOFILE= under systemd)");
    });
}

// Opens an acceptor on every address `url` resolves to and starts its accept loop; prints
// "<name> listening on <url>" for each and records it in core.listening_urls. An address that cannot
// be listened on is reported on stderr and skipped.
inline void listen(asio::io_context& io, const listen_url& url, app_core& core, bool use_strands,
                   std::vector<std::shared_ptr<asio::ip::tcp::acceptor>>& acceptors) {
    process_descriptor_limit();
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
            std::ostringstream endpoint;
            endpoint << entry.endpoint();
            core.log(log_level::error, "cannot listen on " + endpoint.str() + ": " + ec.message());
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
        asio::co_spawn(io, accept_loop(io, acceptor, std::move(tls_context), core, use_strands, shown), asio::detached);
        acceptors.push_back(std::move(acceptor));
    }
}

}  // namespace duplex::detail
