// duplex::connect — opens a client WebSocket to a ws:// or wss:// URI, directly or through a proxy, and
// returns the type-erased handle.
//
// Header-only by default. With DUPLEX_SEPARATE_COMPILATION (see <duplex/separate_compilation.hpp>) this
// header only declares connect, whose definition (and the WebSocket and TLS streams behind it) is then
// compiled once, by the source file that includes <duplex/src.hpp>: a client's own translation units do
// not compile the streams at all.
#pragma once

#include <duplex/client/connect_options.hpp>
#include <duplex/config.hpp>
#include <duplex/separate_compilation.hpp>
#include <duplex/websocket/websocket.hpp>

#include <string_view>

namespace duplex {

// Resolves the host, connects over TCP (or through options.proxy, see connect_options), for wss:// runs
// the TLS handshake (verifying the server's certificate and host name unless options.tls says
// otherwise), and performs the opening handshake; options.stream.handshake_timeout bounds the proxy's
// handshake, the TLS handshake and the opening handshake each. Throws websocket_error: handshake_failed
// on a refused upgrade; for a failed TLS handshake a duplex::tls::errc (certificate_untrusted,
// host_name_mismatch, certificate_rejected, handshake_timeout) or Asio's SSL error, with the host and
// OpenSSL's reason in what(); for a proxy that refuses or fails, a duplex::client::proxy_errc (or the
// system's error when it cannot be reached) with the proxy in what(). Throws std::system_error on resolve
// or connect failures (and when options.tls.ca_file cannot be loaded), std::invalid_argument for a
// malformed URI or proxy URI.
DUPLEX_DECL awaitable<websocket> connect(std::string_view uri, connect_options options);

// The same with default options. An overload, not a default argument: g++ 12 corrupts a braced temporary
// holding strings that lives in a co_await expression, which `co_await connect(uri)` would create. (For
// the same reason, name the options rather than writing `co_await connect(uri, {...})`.)
DUPLEX_DECL awaitable<websocket> connect(std::string_view uri);

}  // namespace duplex

#if !defined(DUPLEX_SEPARATE_COMPILATION)
#include <duplex/client/impl/connect.ipp>
#endif
