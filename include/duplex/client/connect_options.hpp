// duplex::connect_options — what a client connection offers and how it gets there: sub-protocols,
// headers, limits, TLS, permessage-deflate, keep-alive pings, proxies and the HTTP version.
#pragma once

#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/http/request.hpp>
#include <duplex/http2/limits.hpp>
#include <duplex/tls/context.hpp>
#include <duplex/websocket/options.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace duplex {

// The HTTP version of the opening handshake, as .NET's ClientWebSocketOptions.HttpVersion and
// HttpVersionPolicy have it: HTTP/1.1's Upgrade, or RFC 8441's extended CONNECT on an HTTP/2 stream.
enum class http_version { http1_1, http2 };
enum class http_version_policy {
    // The requested version or an older one: for wss:// with http2, ALPN offers h2 and http/1.1, and a
    // server that picks HTTP/1.1 or does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL gets an HTTP/1.1
    // handshake (on a new connection after such SETTINGS). ws:// has no ALPN: HTTP/1.1 (as in .NET).
    request_version_or_lower,
    // The requested version or a newer one: http1_1 then behaves as http2 or lower does.
    request_version_or_higher,
    // Exactly the requested version. ws:// with http2 is HTTP/2 with prior knowledge (h2c, RFC 9113
    // §3.3); a server that cannot take a WebSocket over HTTP/2 fails the connect with handshake_failed.
    request_version_exact,
};

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
    // HTTP/1.1 by default. With HTTP/2, one connection carries one WebSocket unless it is opened through
    // a duplex::websocket_client, whose WebSockets to one origin share their connections.
    duplex::http_version http_version = duplex::http_version::http1_1;
    duplex::http_version_policy http_version_policy = duplex::http_version_policy::request_version_or_lower;
    // Over HTTP/2: our SETTINGS (initial_stream_window_size: what the server may send a WebSocket before
    // it has received it; connection_window_size, max_header_list_size) and nghttp2's protections
    // (max_settings, max_continuations). The server-side fields do not apply.
    http2_limits http2{};
};

}  // namespace duplex
