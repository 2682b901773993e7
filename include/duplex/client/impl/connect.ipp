// The definition of duplex::connect (client/connect.hpp): inline in every translation unit by default,
// compiled once by <duplex/src.hpp> under DUPLEX_SEPARATE_COMPILATION.
#pragma once

#include <duplex/client/connect.hpp>
#include <duplex/client/detail/connect_steps.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace duplex {

DUPLEX_DECL awaitable<websocket> connect(std::string_view uri, connect_options options) {
    const auto parsed = client::parse_websocket_uri(uri);
    if (!parsed) throw std::invalid_argument("not a ws:// or wss:// URI: " + std::string(uri));
    auto context = options.tls.context;
    if (parsed->secure && !context) context = tls::client_context(options.tls);
    const auto proxy = detail::chosen_proxy(*parsed, options);
    const auto use = detail::http2_wanted(*parsed, options);
    std::optional<tls::stream<asio::ip::tcp::socket>> fallback;
    if (use != detail::http2_use::no) {
        if (const auto connection = co_await detail::open_http2(*parsed, options, proxy, context, use, fallback)) {
            // The WebSocket holds the connection from now on; it ends with the WebSocket's stream.
            detail::release_when_done release{*connection};
            co_return co_await connection->open(*parsed, options);
        }
    }
    co_return co_await detail::open_http1(*parsed, options, proxy, context, std::move(fallback), use != detail::http2_use::no);
}

DUPLEX_DECL awaitable<websocket> connect(std::string_view uri) { return connect(uri, connect_options()); }

}  // namespace duplex
