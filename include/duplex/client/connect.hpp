// duplex::connect — opens a client WebSocket to a ws:// URI and returns the type-erased handle.
#pragma once

#include <duplex/client/uri.hpp>
#include <duplex/config.hpp>
#include <duplex/http/request.hpp>
#include <duplex/websocket/error.hpp>
#include <duplex/websocket/options.hpp>
#include <duplex/websocket/stream.hpp>
#include <duplex/websocket/websocket.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace duplex {

struct connect_options {
    // Offered in Sec-WebSocket-Protocol, in order of preference; the server picks one or none.
    std::vector<std::string> sub_protocols;
    // Extra request headers (e.g. Origin, Authorization).
    http::headers headers;
    ws::stream_options stream{};
};

// Resolves the host, connects over TCP and performs the opening handshake, all bounded by
// options.stream.handshake_timeout for the handshake itself. Throws websocket_error
// (handshake_failed) on a refused upgrade, std::system_error on resolve or connect failures, and
// std::invalid_argument for a malformed URI.
inline awaitable<websocket> connect(std::string_view uri, connect_options options = {}) {
    const auto parsed = client::parse_websocket_uri(uri);
    if (!parsed) throw std::invalid_argument("not a ws:// or wss:// URI: " + std::string(uri));
    if (parsed->secure)
        throw websocket_error(websocket_errc::handshake_failed,
                              "wss:// needs the TLS layer, which this build of duplex does not have yet");
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::resolver resolver(executor);
    const auto endpoints = co_await resolver.async_resolve(parsed->host, std::to_string(parsed->port), use_awaitable);
    asio::ip::tcp::socket socket(executor);
    co_await asio::async_connect(socket, endpoints, use_awaitable);
    socket.set_option(asio::ip::tcp::no_delay(true));
    ws::stream<asio::ip::tcp::socket> stream(std::move(socket), ws::role::client, options.stream);
    co_await stream.handshake(parsed->host_header(), parsed->target, options.sub_protocols, options.headers);
    co_return stream.as_websocket();
}

}  // namespace duplex
