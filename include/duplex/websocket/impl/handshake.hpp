// The opening handshake of ws::stream, both roles: the server reads the upgrade request and answers it
// (101, or the RFC's 400/426, or any status for a request that will not be upgraded); the client sends
// its request and checks the 101. The rules themselves are sans-I/O, in websocket/handshake.hpp and
// deflate/negotiation.hpp; this is the I/O around them.
#pragma once

#include <duplex/websocket/detail/stream_core.hpp>

namespace duplex::ws::detail {

template <class Next>
inline awaitable<http::request> stream_core<Next>::read_request() {
    const auto keep_alive = this->shared_from_this();  // see "Lifetime" in stream_core
    state_ = websocket_state::connecting;
    http::request_parser parser(options_.http_limits);
    arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
    const auto ec = co_await read_head(parser);
    disarm_deadline();
    if (ec) {
        state_ = websocket_state::aborted;
        close_now();
        throw websocket_error(map_transport_error(ec), "while reading the upgrade request");
    }
    if (parser.status() == http::parse_status::error) {
        co_await reject(parser.error_status(), parser.error_message());
        throw websocket_error(websocket_errc::handshake_failed, std::string(parser.error_message()));
    }
    co_return std::move(parser.get());
}

// Answers the upgrade request with 101 Switching Protocols, or with the RFC's error (400, or 426 for
// another protocol version) and throws. `sub_protocol` must be one the client offered. With
// `compression`, the client's first acceptable permessage-deflate offer is accepted on those terms.
template <class Next>
inline awaitable<void> stream_core<Next>::accept(const http::request& request, std::string_view sub_protocol,
                                          const http::headers& extra_headers,
                                          std::optional<duplex::deflate::options> compression) {
    const auto keep_alive = this->shared_from_this();
    state_ = websocket_state::connecting;
    if (auto check = handshake::validate_request(request); !check) {
        co_await write_and_close(handshake::make_error_response(check));
        throw websocket_error(websocket_errc::handshake_failed, check.message);
    }
    if (!sub_protocol.empty()) {
        const auto offered = handshake::requested_protocols(request);
        if (std::find(offered.begin(), offered.end(), sub_protocol) == offered.end())
            throw std::invalid_argument("sub-protocol '" + std::string(sub_protocol) + "' was not offered by the client");
    }
    std::optional<duplex::deflate::agreement> agreed;
    if (compression) agreed = duplex::deflate::select_offer(request.headers, *compression);
    std::unique_ptr<duplex::deflate::permessage> codec;
    std::string response;
    const auto key = request.headers.get("Sec-WebSocket-Key").value_or("");
    if (agreed) {
        codec = std::make_unique<duplex::deflate::permessage>(role_, agreed->parameters);
        http::headers headers = extra_headers;
        headers.add("Sec-WebSocket-Extensions", agreed->response);
        response = handshake::make_accept_response(key, sub_protocol, headers);
    } else {
        response = handshake::make_accept_response(key, sub_protocol, extra_headers);
    }
    arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
    auto [ec, n] = co_await asio::async_write(next_, asio::buffer(response), duplex::detail::use_nothrow_awaitable);
    disarm_deadline();
    if (ec) {
        state_ = websocket_state::aborted;
        close_now();
        throw websocket_error(map_transport_error(ec), "while answering the upgrade request");
    }
    sub_protocol_ = sub_protocol;
    compression_ = std::move(codec);
    state_ = websocket_state::open;
}

// Server, over an HTTP/2 extended CONNECT (RFC 8441): the connection sends the 200, so nothing is
// written here. Checks the sub-protocol and negotiates permessage-deflate exactly as accept() does, opens
// the stream and returns the Sec-WebSocket-Extensions value to answer with (empty for none).
template <class Next>
inline std::string stream_core<Next>::accept_tunneled(const http::request& request, std::string_view sub_protocol,
                                                      std::optional<duplex::deflate::options> compression) {
    if (!sub_protocol.empty()) {
        const auto offered = handshake::requested_protocols(request);
        if (std::find(offered.begin(), offered.end(), sub_protocol) == offered.end())
            throw std::invalid_argument("sub-protocol '" + std::string(sub_protocol) + "' was not offered by the client");
    }
    std::optional<duplex::deflate::agreement> agreed;
    if (compression) agreed = duplex::deflate::select_offer(request.headers, *compression);
    std::string extensions;
    if (agreed) {
        compression_ = std::make_unique<duplex::deflate::permessage>(role_, agreed->parameters);
        extensions = agreed->response;
    }
    sub_protocol_ = sub_protocol;
    state_ = websocket_state::open;
    return extensions;
}

// Answers an HTTP request that will not become a WebSocket and closes the connection.
template <class Next>
inline awaitable<void> stream_core<Next>::reject(int status_code, std::string_view message) {
    const auto keep_alive = this->shared_from_this();
    http::headers headers;
    headers.add("Content-Type", "text/plain; charset=utf-8");
    headers.add("Content-Length", std::to_string(message.size()));
    headers.add("Connection", "close");
    std::string response;
    http::write_response_head(response, status_code, headers);
    response.append(message);
    co_await write_and_close(std::move(response));
}

template <class Next>
inline awaitable<void> stream_core<Next>::write_and_close(std::string bytes) {
    arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
    co_await asio::async_write(next_, asio::buffer(bytes), duplex::detail::use_nothrow_awaitable);
    disarm_deadline();
    state_ = websocket_state::aborted;
    co_await linger_and_close(true);
}

// The client's side. With `compression`, permessage-deflate is offered on those terms; the server may
// decline it.
template <class Next>
inline awaitable<void> stream_core<Next>::handshake(std::string_view host, std::string_view target,
                                             std::span<const std::string> sub_protocols,
                                             const http::headers& extra_headers,
                                             std::optional<duplex::deflate::options> compression) {
    const auto keep_alive = this->shared_from_this();
    state_ = websocket_state::connecting;
    const auto key = handshake::generate_key();
    std::string request;
    if (compression) {
        http::headers headers = extra_headers;
        headers.add("Sec-WebSocket-Extensions", duplex::deflate::make_offer(*compression));
        request = handshake::make_request(host, target, key, sub_protocols, headers);
    } else {
        request = handshake::make_request(host, target, key, sub_protocols, extra_headers);
    }
    arm_deadline(options_.handshake_timeout, websocket_errc::handshake_failed);
    auto [write_ec, written] = co_await asio::async_write(next_, asio::buffer(request), duplex::detail::use_nothrow_awaitable);
    if (write_ec) {
        disarm_deadline();
        fail_handshake("could not send the upgrade request: " + write_ec.message());
    }
    http::response_parser parser(options_.http_limits);
    const auto ec = co_await read_head(parser);
    disarm_deadline();
    if (ec)
        fail_handshake("connection ended during the opening handshake: " +
                       make_error_code(map_transport_error(ec)).message());
    if (parser.status() == http::parse_status::error)
        fail_handshake("malformed upgrade response: " + std::string(parser.error_message()));
    const auto& response = parser.get();
    if (auto check = handshake::validate_response(response, key, sub_protocols, compression.has_value()); !check)
        fail_handshake(check.error);
    adopt_answer(response, compression);
}

// Client, over an HTTP/2 extended CONNECT (RFC 8441): the connection sent the request (with
// `sub_protocols` and, with `compression`, the permessage-deflate offer) and received `response`; this
// checks it as handshake() checks a 101 and opens the stream, or fails it with handshake_failed.
template <class Next>
inline void stream_core<Next>::open_tunneled(const http::response& response, std::span<const std::string> sub_protocols,
                                             std::optional<duplex::deflate::options> compression) {
    state_ = websocket_state::connecting;
    if (auto check = handshake::validate_tunneled_response(response, sub_protocols, compression.has_value()); !check)
        fail_handshake(check.error);
    adopt_answer(response, compression);
}

// The end of the client's handshake, either way: the server's permessage-deflate answer (when it was
// offered) checked and its codec built, the sub-protocol kept, the stream open.
template <class Next>
inline void stream_core<Next>::adopt_answer(const http::response& response,
                                            const std::optional<duplex::deflate::options>& compression) {
    if (compression) {
        const auto answer = duplex::deflate::validate_response(response.headers, *compression);
        if (!answer) fail_handshake(answer.error);
        if (answer.parameters) compression_ = std::make_unique<duplex::deflate::permessage>(role_, *answer.parameters);
    }
    sub_protocol_ = std::string(response.headers.get("Sec-WebSocket-Protocol").value_or(""));
    state_ = websocket_state::open;
}

template <class Next>
[[noreturn]] inline void stream_core<Next>::fail_handshake(const std::string& detail) {
    failure_ = make_error_code(websocket_errc::handshake_failed);
    state_ = websocket_state::aborted;
    close_now();
    throw websocket_error(websocket_errc::handshake_failed, detail);
}

// Feeds the HTTP head parser until it is done or fails; what follows the head stays buffered for the
// WebSocket. The parser copies what it keeps and enforces its own size limits, so it consumes every
// byte it is given until the head ends.
template <class Next>
template <class Parser>
inline awaitable<std::error_code> stream_core<Next>::read_head(Parser& parser) {
    for (;;) {
        rx_begin_ += parser.feed(buffered_text());
        if (parser.status() != http::parse_status::need_more) co_return std::error_code{};
        const auto ec = co_await read_more();
        if (ec) co_return ec;
    }
}

}  // namespace duplex::ws::detail
