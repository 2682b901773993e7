// The definition of duplex::connect (client/connect.hpp): inline in every translation unit by default,
// compiled once by <duplex/src.hpp> under DUPLEX_SEPARATE_COMPILATION.
#pragma once

#include <duplex/client/connect.hpp>
#include <duplex/client/proxy.hpp>
#include <duplex/client/tunnel.hpp>
#include <duplex/client/uri.hpp>
#include <duplex/tls.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/stream.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace duplex {

namespace detail {

template <class Transport>
awaitable<websocket> open_websocket(Transport transport, const client::websocket_uri& uri,
                                    const connect_options& options) {
    ws::stream<Transport> stream(std::move(transport), ws::role::client, options.stream);
    co_await stream.handshake(uri.host_header(), uri.target, options.sub_protocols, options.headers,
                              options.dangerous_deflate);
    stream.start_keep_alive(options.keep_alive_interval, options.keep_alive_timeout);
    co_return stream.as_websocket();
}

// The TLS handshake (SNI, certificate and host name checks), then the opening handshake over it.
inline awaitable<websocket> open_secure_websocket(asio::ip::tcp::socket socket, const client::websocket_uri& uri,
                                                  const connect_options& options, tls::shared_context context) {
    tls::stream<asio::ip::tcp::socket> secure(std::move(socket), std::move(context));
    const std::string server_name = options.tls.server_name.empty() ? uri.host : options.tls.server_name;
    const auto ec = co_await secure.handshake(server_name, options.stream.handshake_timeout, options.tls.verify_host_name);
    if (ec) {
        std::string what = "TLS handshake with " + uri.host + ":" + std::to_string(uri.port);
        if (server_name != uri.host) what += " as '" + server_name + "'";
        what += " failed";
        if (const auto reason = secure.verify_error(); !reason.empty()) what += " (" + reason + ")";
        throw websocket_error(ec, what);
    }
    co_return co_await open_websocket(std::move(secure), uri, options);
}

// options.proxy, else (when asked) the environment's proxy for this URI; nullopt for a direct connection.
inline std::optional<client::proxy_uri> chosen_proxy(const client::websocket_uri& uri, const connect_options& options) {
    std::string text = options.proxy;
    std::string_view source = "connect_options::proxy";
    if (text.empty() && options.use_environment_proxy) {
        text = client::proxy_from_environment(uri);
        source = "the environment's proxy";
    }
    if (text.empty()) return std::nullopt;
    auto proxy = client::parse_proxy_uri(text);
    if (!proxy)
        throw std::invalid_argument(std::string(source) + " is not an http://, socks5:// or socks5h:// URI: " + text);
    return proxy;
}

// The address to connect to without asking a resolver: connect_options::endpoint, or the URI's host
// when it is an IP literal ("127.0.0.1", "[::1]"). Asio's resolver runs getaddrinfo on a thread of its
// own, a hand-off that costs a connect futex calls and allocations for an answer known already.
inline std::optional<asio::ip::tcp::endpoint> known_endpoint(const client::websocket_uri& uri,
                                                             const connect_options& options) {
    if (options.endpoint) return options.endpoint;
    std::error_code ec;
    const auto address = asio::ip::make_address(uri.host, ec);
    if (ec) return std::nullopt;
    return asio::ip::tcp::endpoint(address, uri.port);
}

inline awaitable<void> connect_directly(asio::ip::tcp::socket& socket, const client::websocket_uri& uri,
                                        const connect_options& options) {
    if (const auto endpoint = known_endpoint(uri, options)) {
        co_await socket.async_connect(*endpoint, use_awaitable);
        co_return;
    }
    asio::ip::tcp::resolver resolver(socket.get_executor());
    const auto endpoints = co_await resolver.async_resolve(uri.host, std::to_string(uri.port), use_awaitable);
    co_await asio::async_connect(socket, endpoints, use_awaitable);
}

}  // namespace detail

DUPLEX_DECL awaitable<websocket> connect(std::string_view uri, connect_options options) {
    const auto parsed = client::parse_websocket_uri(uri);
    if (!parsed) throw std::invalid_argument("not a ws:// or wss:// URI: " + std::string(uri));
    auto context = options.tls.context;
    if (parsed->secure && !context) context = tls::client_context(options.tls);
    const auto proxy = detail::chosen_proxy(*parsed, options);
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    if (proxy) socket = co_await client::open_tunnel(*proxy, *parsed, options.stream.handshake_timeout);
    else co_await detail::connect_directly(socket, *parsed, options);
    socket.set_option(asio::ip::tcp::no_delay(true));
    websocket ws;
    if (parsed->secure) ws = co_await detail::open_secure_websocket(std::move(socket), *parsed, options, context);
    else ws = co_await detail::open_websocket(std::move(socket), *parsed, options);
    co_return ws;
}

DUPLEX_DECL awaitable<websocket> connect(std::string_view uri) { return connect(uri, connect_options()); }

}  // namespace duplex
