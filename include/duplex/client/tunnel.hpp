// duplex::client::open_tunnel — a TCP connection to a WebSocket server through a proxy: connects to the
// proxy and runs its handshake (http_connect.hpp, socks5.hpp), bounded by a timeout. The thin I/O shell
// around the sans-I/O handshakes; what comes back is a socket connected, in effect, to the server, on
// which connect() runs TLS (wss://) and the opening handshake as on a direct connection.
#pragma once

#include <duplex/client/http_connect.hpp>
#include <duplex/client/proxy.hpp>
#include <duplex/client/proxy_error.hpp>
#include <duplex/client/socks5.hpp>
#include <duplex/client/uri.hpp>
#include <duplex/config.hpp>
#include <duplex/websocket/error.hpp>

#include <asio/experimental/awaitable_operators.hpp>

#include <array>
#include <chrono>
#include <string>
#include <system_error>
#include <variant>

namespace duplex::client {

namespace detail {

// Writes what the handshake has to say and feeds it the proxy's answers until it is done or fails.
// The proxy's bytes past the handshake's end would be the server's, and neither a WebSocket nor a TLS
// server speaks first: such bytes are a malformed answer.
inline awaitable<std::error_code> run_proxy_handshake(asio::ip::tcp::socket& socket, proxy_handshake& handshake) {
    std::array<char, 1024> answer;
    for (;;) {
        if (const auto request = handshake.take_output(); !request.empty()) {
            const auto [ec, written] =
                co_await asio::async_write(socket, asio::buffer(request), duplex::detail::use_nothrow_awaitable);
            if (ec) co_return ec;
        }
        if (handshake.status() != proxy_handshake_status::need_more) co_return std::error_code{};
        const auto [ec, n] = co_await socket.async_read_some(asio::buffer(answer), duplex::detail::use_nothrow_awaitable);
        if (ec == asio::error::eof) co_return proxy_errc::closed;
        if (ec) co_return ec;
        const auto used = handshake.feed(std::string_view(answer.data(), n));
        if (handshake.status() == proxy_handshake_status::done && used < n) co_return proxy_errc::malformed_reply;
    }
}

// Connects to the proxy (`reached` says whether that worked), then runs the handshake.
inline awaitable<std::error_code> reach_and_run(asio::ip::tcp::socket& socket,
                                                const asio::ip::tcp::resolver::results_type& endpoints,
                                                proxy_handshake& handshake, bool& reached) {
    const auto [ec, endpoint] = co_await asio::async_connect(socket, endpoints, duplex::detail::use_nothrow_awaitable);
    if (ec) co_return ec;
    reached = true;
    co_return co_await run_proxy_handshake(socket, handshake);
}

inline awaitable<void> close_after(asio::ip::tcp::socket& socket, std::chrono::steady_clock::duration timeout) {
    asio::steady_timer timer(socket.get_executor(), timeout);
    const auto [ec] = co_await timer.async_wait(duplex::detail::use_nothrow_awaitable);
    if (!ec) {
        std::error_code ignored;
        socket.close(ignored);
    }
}

// Connects to the proxy and runs the handshake, both within `timeout`; throws websocket_error naming the
// proxy.
inline awaitable<asio::ip::tcp::socket> tunnel_through(const proxy_uri& proxy, std::string_view proxy_name,
                                                       proxy_handshake& handshake,
                                                       std::chrono::steady_clock::duration timeout) {
    using namespace asio::experimental::awaitable_operators;
    auto executor = co_await asio::this_coro::executor;
    const auto fail = [&](std::error_code ec, const std::string& detail) {
        const auto separator = detail.starts_with(',') ? "" : " ";
        return websocket_error(ec, std::string(proxy_name) + " " + proxy.authority() + separator + detail);
    };
    asio::ip::tcp::resolver resolver(executor);
    const auto [resolve_ec, endpoints] = co_await resolver.async_resolve(proxy.host, std::to_string(proxy.port),
                                                                        duplex::detail::use_nothrow_awaitable);
    if (resolve_ec) throw fail(resolve_ec, "cannot be resolved");
    asio::ip::tcp::socket socket(executor);
    bool reached = false;
    auto outcome = co_await (reach_and_run(socket, endpoints, handshake, reached) || close_after(socket, timeout));
    std::error_code ec = proxy_errc::timeout;
    if (outcome.index() == 0) ec = std::get<0>(outcome);
    if (ec && !reached && ec != proxy_errc::timeout) throw fail(ec, "cannot be reached");
    if (!ec && handshake.status() == proxy_handshake_status::failed) throw fail(handshake.error(), handshake.detail());
    const auto tunnel = ", tunnel to " + handshake.target();
    if (ec == proxy_errc::timeout)
        throw fail(ec, tunnel + ", after " +
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) + " ms");
    if (ec == proxy_errc::malformed_reply) throw fail(ec, "sent bytes past its answer" + tunnel);
    if (ec) throw fail(ec, tunnel);
    co_return socket;
}

}  // namespace detail

// A TCP connection to target's host and port through `proxy`, which has set its tunnel up within
// `timeout` (connecting to it included). socks5:// resolves the target's host here and passes the proxy
// its first address; socks5h:// and http:// pass the name. Throws websocket_error whose code() is a
// proxy_errc (the proxy's refusal, a malformed answer, its timeout) or the system's error (the proxy
// cannot be resolved or reached), and whose what() names the proxy, e.g. "proxy 127.0.0.1:8888 refused
// CONNECT to example.com:443 (407 Proxy Authentication Required): the proxy requires authentication".
inline awaitable<asio::ip::tcp::socket> open_tunnel(const proxy_uri& proxy, const websocket_uri& target,
                                                    std::chrono::steady_clock::duration timeout) {
    if (proxy.kind == proxy_kind::http_connect) {
        http_connect_handshake handshake(proxy, target.host, target.port);
        co_return co_await detail::tunnel_through(proxy, "proxy", handshake, timeout);
    }
    std::string host = target.host;
    if (proxy.kind == proxy_kind::socks5) {
        asio::ip::tcp::resolver resolver(co_await asio::this_coro::executor);
        const auto [ec, endpoints] =
            co_await resolver.async_resolve(target.host, std::to_string(target.port), duplex::detail::use_nothrow_awaitable);
        if (ec || endpoints.empty())
            throw websocket_error(ec ? ec : asio::error::host_not_found,
                                  "cannot resolve " + target.host + " for SOCKS5 proxy " + proxy.authority() +
                                      " (socks5h:// lets the proxy resolve it)");
        host = endpoints.begin()->endpoint().address().to_string();
    }
    socks5_handshake handshake(host, target.port, proxy);
    co_return co_await detail::tunnel_through(proxy, "SOCKS5 proxy", handshake, timeout);
}

}  // namespace duplex::client
