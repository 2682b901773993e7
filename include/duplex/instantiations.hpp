// The common instantiations of duplex's templates — the WebSocket stream over TCP and over TLS, TLS over
// TCP, and the app host's connections over each — declared `extern template` under
// DUPLEX_SEPARATE_COMPILATION (see <duplex/separate_compilation.hpp>) and defined by <duplex/src.hpp>.
// <duplex/duplex.hpp> includes it.
#pragma once

#include <duplex/app/app.hpp>
#include <duplex/separate_compilation.hpp>
#include <duplex/tls/stream.hpp>
#include <duplex/websocket/stream.hpp>

#include <asio/ip/tcp.hpp>

#define DUPLEX_STREAM_INSTANTIATIONS(declared_as)                                                  \
    declared_as class duplex::tls::stream<asio::ip::tcp::socket>;                                  \
    declared_as class duplex::ws::detail::stream_core<asio::ip::tcp::socket>;                      \
    declared_as class duplex::ws::detail::stream_core<duplex::tls::stream<asio::ip::tcp::socket>>; \
    declared_as class duplex::ws::stream<asio::ip::tcp::socket>;                                   \
    declared_as class duplex::ws::stream<duplex::tls::stream<asio::ip::tcp::socket>>;

// The app host's connections: over TLS the whole class; over TCP member by member, because a whole-class
// instantiation would also compile the TLS handshake, which only TLS connections call. run(), upgrade()
// and begin_shutdown() reach every other member.
#define DUPLEX_APP_INSTANTIATIONS(declared_as)                                                                          \
    declared_as class duplex::detail::http_connection<duplex::tls::stream<asio::ip::tcp::socket>>;                     \
    declared_as duplex::awaitable<void> duplex::detail::http_connection<asio::ip::tcp::socket>::run();                 \
    declared_as void duplex::detail::http_connection<asio::ip::tcp::socket>::begin_shutdown();                         \
    declared_as duplex::awaitable<duplex::websocket> duplex::detail::http_connection<asio::ip::tcp::socket>::upgrade( \
        const duplex::http::request&, const duplex::accept_context&, const duplex::websocket_options&);

#if defined(DUPLEX_SEPARATE_COMPILATION)
DUPLEX_STREAM_INSTANTIATIONS(extern template)
DUPLEX_APP_INSTANTIATIONS(extern template)
#endif
