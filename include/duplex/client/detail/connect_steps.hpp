// The steps of duplex::connect (client/connect.hpp), shared with duplex::websocket_client: reaching the
// server (directly or through a proxy), TLS with the ALPN the HTTP version asks for, an HTTP/2 connection
// that takes extended CONNECT, and the HTTP/1.1 opening handshake. Inline: websocket_client uses them
// even when connect() itself is compiled separately.
#pragma once

#include <duplex/client/connect_options.hpp>
#include <duplex/client/http2_connection.hpp>
#include <duplex/client/proxy.hpp>
#include <duplex/client/tunnel.hpp>
#include <duplex/client/uri.hpp>
#include <duplex/tls.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/stream.hpp>

#include <memory>
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

// The TLS handshake (SNI, certificate and host name checks), offering `alpn` (ALPN wire format, empty
// for the context's own list).
inline awaitable<tls::stream<asio::ip::tcp::socket>> secure(asio::ip::tcp::socket socket, const client::websocket_uri& uri,
                                                           const connect_options& options, tls::shared_context context,
                                                           std::string_view alpn) {
    tls::stream<asio::ip::tcp::socket> secure(std::move(socket), std::move(context));
    if (!alpn.empty() && SSL_set_alpn_protos(secure.native_handle(), reinterpret_cast<const unsigned char*>(alpn.data()),
                                             static_cast<unsigned int>(alpn.size())) != 0)
        throw websocket_error(websocket_errc::handshake_failed, "cannot set the ALPN protocols");
    const std::string server_name = options.tls.server_name.empty() ? uri.host : options.tls.server_name;
    const auto ec = co_await secure.handshake(server_name, options.stream.handshake_timeout, options.tls.verify_host_name);
    if (ec) {
        std::string what = "TLS handshake with " + uri.host + ":" + std::to_string(uri.port);
        if (server_name != uri.host) what += " as '" + server_name + "'";
        what += " failed";
        if (const auto reason = secure.verify_error(); !reason.empty()) what += " (" + reason + ")";
        throw websocket_error(ec, what);
    }
    co_return secure;
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

// A TCP connection to the server, directly or through the proxy.
inline awaitable<asio::ip::tcp::socket> reach(const client::websocket_uri& uri, const connect_options& options,
                                              const std::optional<client::proxy_uri>& proxy) {
    asio::ip::tcp::socket socket(co_await asio::this_coro::executor);
    if (proxy) socket = co_await client::open_tunnel(*proxy, uri, options.stream.handshake_timeout);
    else co_await connect_directly(socket, uri, options);
    socket.set_option(asio::ip::tcp::no_delay(true));
    co_return socket;
}

// How the options ask for HTTP/2 on this URI (see http_version_policy).
enum class http2_use { no, preferred, required };
inline http2_use http2_wanted(const client::websocket_uri& uri, const connect_options& options) {
    const bool exact = options.http_version_policy == http_version_policy::request_version_exact;
    if (options.http_version == http_version::http2)
        return exact ? http2_use::required : uri.secure ? http2_use::preferred : http2_use::no;
    const bool higher = options.http_version_policy == http_version_policy::request_version_or_higher;
    return higher && uri.secure ? http2_use::preferred : http2_use::no;
}

inline std::string peer_name(const client::websocket_uri& uri) {
    return client::detail::bracketed_host(uri.host) + ":" + std::to_string(uri.port);
}

// An HTTP/2 connection ready for WebSockets over `transport`, or nullptr when the server's SETTINGS do not
// allow extended CONNECT (the connection is then ended). The caller holds it (http2_origin_connection).
template <class Transport>
awaitable<std::shared_ptr<client::detail::http2_origin_connection>> start_http2(Transport transport,
                                                                                const client::websocket_uri& uri,
                                                                                const connect_options& options) {
    auto connection = std::make_shared<client::detail::http2_connection<Transport>>(std::move(transport), options.http2,
                                                                                    peer_name(uri));
    if (co_await connection->start(options.stream.handshake_timeout)) co_return connection;
    connection->release();
    co_return nullptr;
}

inline std::string_view alpn_for(http2_use use) {
    using namespace std::string_view_literals;
    switch (use) {
    case http2_use::required: return "\x02h2"sv;
    case http2_use::preferred: return "\x02h2\x08http/1.1"sv;
    default: return {};
    }
}

// Releases an HTTP/2 connection on leaving the scope (its opener lets go once open() is over, whatever
// its outcome: the WebSocket holds the connection from then on), unless it is `kept` by a client.
struct release_when_done {
    client::detail::http2_origin_connection& connection;
    bool kept = false;
    ~release_when_done() {
        if (!kept) connection.release();
    }
};

[[noreturn]] inline void fail_http2_required(const client::websocket_uri& uri, std::string_view why) {
    throw websocket_error(websocket_errc::handshake_failed,
                          "HTTP/2 was required (http_version_policy::request_version_exact) but " + peer_name(uri) + " " +
                              std::string(why));
}

inline constexpr std::string_view no_extended_connect =
    "does not take WebSockets over HTTP/2 (its SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL = 1)";

// An HTTP/2 connection to the URI's origin whose server takes extended CONNECT, or nullptr when HTTP/2
// is only preferred and the server cannot (the WebSocket then goes over HTTP/1.1: `fallback` holds the
// TLS connection when the server picked http/1.1 through ALPN, else it is empty and a new connection is
// needed). Throws when HTTP/2 is required and cannot be had.
inline awaitable<std::shared_ptr<client::detail::http2_origin_connection>> open_http2(
    const client::websocket_uri& uri, const connect_options& options, const std::optional<client::proxy_uri>& proxy,
    const tls::shared_context& context, http2_use use, std::optional<tls::stream<asio::ip::tcp::socket>>& fallback) {
    auto socket = co_await reach(uri, options, proxy);
    std::shared_ptr<client::detail::http2_origin_connection> connection;
    if (!uri.secure) {
        connection = co_await start_http2(std::move(socket), uri, options);
    } else {
        auto secured = co_await secure(std::move(socket), uri, options, context, alpn_for(use));
        if (secured.alpn_protocol() != "h2") {
            if (use == http2_use::required) fail_http2_required(uri, "did not select h2 through ALPN");
            fallback.emplace(std::move(secured));
            co_return nullptr;
        }
        connection = co_await start_http2(std::move(secured), uri, options);
    }
    if (!connection && use == http2_use::required) fail_http2_required(uri, no_extended_connect);
    co_return connection;
}

// The WebSocket over HTTP/1.1: on `fallback` when there is one (a TLS connection that settled on
// http/1.1), else on a new connection offering only HTTP/1.1.
inline awaitable<websocket> open_http1(const client::websocket_uri& uri, const connect_options& options,
                                       const std::optional<client::proxy_uri>& proxy, const tls::shared_context& context,
                                       std::optional<tls::stream<asio::ip::tcp::socket>> fallback, bool after_http2) {
    if (fallback) co_return co_await open_websocket(std::move(*fallback), uri, options);
    auto socket = co_await reach(uri, options, proxy);
    if (!uri.secure) co_return co_await open_websocket(std::move(socket), uri, options);
    using namespace std::string_view_literals;
    auto secured = co_await secure(std::move(socket), uri, options, context, after_http2 ? "\x08http/1.1"sv : ""sv);
    co_return co_await open_websocket(std::move(secured), uri, options);
}

}  // namespace detail

}  // namespace duplex
