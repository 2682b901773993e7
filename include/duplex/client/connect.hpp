// duplex::connect — opens a client WebSocket to a ws:// or wss:// URI and returns the type-erased handle.
#pragma once

#include <duplex/client/uri.hpp>
#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/http/request.hpp>
#include <duplex/tls.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/options.hpp>
#include <duplex/websocket/stream.hpp>
#include <duplex/websocket/websocket.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

struct connect_options {
    // Offered in Sec-WebSocket-Protocol, in order of preference; the server picks one or none.
    std::vector<std::string> sub_protocols{};
    // Extra request headers (e.g. Origin, Authorization).
    http::headers headers{};
    ws::stream_options stream{};
    // wss:// only: the CA file to trust instead of the system store, verification on or off, the SNI
    // name (and the name checked) when it is not the URI's host, ALPN, or a context to reuse.
    tls::client_options tls{};
    // permessage-deflate (RFC 7692), offered on these terms when set; the server may decline it.
    // DANGEROUS: compressing secrets together with data an attacker can influence lets an attacker who
    // sees the (even encrypted) message sizes recover the secrets (CRIME/BREACH). Send such messages with
    // message_flags::disable_compression, or leave compression off. `client_*` bind our compressor,
    // `server_*` are asked of the server (which must honour them or decline).
    std::optional<deflate::options> dangerous_deflate{};
};

namespace detail {

template <class Transport>
awaitable<websocket> open_websocket(Transport transport, const client::websocket_uri& uri,
                                    const connect_options& options) {
    ws::stream<Transport> stream(std::move(transport), ws::role::client, options.stream);
    co_await stream.handshake(uri.host_header(), uri.target, options.sub_protocols, options.headers,
                              options.dangerous_deflate);
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

}  // namespace detail

// Resolves the host, connects over TCP, for wss:// runs the TLS handshake (verifying the server's
// certificate and host name unless options.tls says otherwise), and performs the opening handshake;
// options.stream.handshake_timeout bounds the TLS handshake and the opening handshake each. Throws
// websocket_error: handshake_failed on a refused upgrade, and for a failed TLS handshake a
// duplex::tls::errc (certificate_untrusted, host_name_mismatch, certificate_rejected, handshake_timeout)
// or Asio's SSL error, with the host and OpenSSL's reason in what(). Throws std::system_error on resolve
// or connect failures (and when options.tls.ca_file cannot be loaded), std::invalid_argument for a
// malformed URI.
inline awaitable<websocket> connect(std::string_view uri, connect_options options) {
    const auto parsed = client::parse_websocket_uri(uri);
    if (!parsed) throw std::invalid_argument("not a ws:// or wss:// URI: " + std::string(uri));
    auto context = options.tls.context;
    if (parsed->secure && !context) context = tls::client_context(options.tls);
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(executor);
    const auto endpoints = co_await resolver.async_resolve(parsed->host, std::to_string(parsed->port), use_awaitable);
    asio::ip::tcp::socket socket(executor);
    co_await asio::async_connect(socket, endpoints, use_awaitable);
    socket.set_option(asio::ip::tcp::no_delay(true));
    websocket ws;
    if (parsed->secure) ws = co_await detail::open_secure_websocket(std::move(socket), *parsed, options, context);
    else ws = co_await detail::open_websocket(std::move(socket), *parsed, options);
    co_return ws;
}

// The same with default options. An overload, not a default argument: g++ 12 corrupts a braced temporary
// holding strings that lives in a co_await expression, which `co_await connect(uri)` would create. (For
// the same reason, name the options rather than writing `co_await connect(uri, {...})`.)
inline awaitable<websocket> connect(std::string_view uri) { return connect(uri, connect_options()); }

}  // namespace duplex
