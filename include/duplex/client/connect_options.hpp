// duplex::connect_options — what a client connection offers and how it gets there: sub-protocols,
// headers, limits, TLS, permessage-deflate, keep-alive pings and proxies.
#pragma once

#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/http/request.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/websocket/options.hpp>

#include <chrono>
#include <optional>
#include <string>
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
    // A ping every keep_alive_interval (ClientWebSocketOptions.KeepAliveInterval; zero: none), and with a
    // keep_alive_timeout, a server that sends nothing within it after a ping fails the pending receive
    // with websocket_errc::keep_alive_timeout. As on the server, bytes are read only while a receive is
    // pending: keep one pending.
    std::chrono::steady_clock::duration keep_alive_interval{};
    std::chrono::steady_clock::duration keep_alive_timeout{};
    // The proxy to connect through (ClientWebSocketOptions.Proxy): "http://[user:password@]host[:port]"
    // for an HTTP CONNECT tunnel with Basic authentication (port 80 by default), "socks5://…" for SOCKS5
    // with the server's name resolved here, "socks5h://…" with it resolved by the proxy (port 1080 by
    // default; RFC 1929 username and password). Credentials are percent-decoded. ws:// and wss:// both go
    // through the tunnel; TLS runs end to end with the server. Empty: no proxy, unless
    // use_environment_proxy.
    std::string proxy{};
    // With an empty `proxy`, take it from the environment as .NET's default proxy and curl do:
    // https_proxy for wss://, http_proxy for ws://, else all_proxy (upper-case names too), none for a host
    // that no_proxy lists. Off by default: a library should not change where it connects because of the
    // environment unless asked.
    bool use_environment_proxy = false;
    // Where to connect, resolved by you (e.g. once for many connections): no name is resolved, and the
    // URI's host still goes into Host (and SNI for wss://). Ignored through a proxy. Without it, an IP
    // literal host ("127.0.0.1", "[::1]") is connected to directly, and a name goes through Asio's resolver.
    std::optional<asio::ip::tcp::endpoint> endpoint{};
};

}  // namespace duplex
