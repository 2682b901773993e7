// duplex::http_context — one request as the middleware pipeline sees it: the request, the response
// being built, and ctx.websockets to turn the request into a WebSocket (ASP.NET's HttpContext).
#pragma once

#include <duplex/app/accept_context.hpp>
#include <duplex/app/websocket_options.hpp>
#include <duplex/config.hpp>
#include <duplex/deflate/negotiation.hpp>
#include <duplex/http/file_body.hpp>
#include <duplex/http/request.hpp>
#include <duplex/websocket/handshake.hpp>
#include <duplex/websocket/websocket.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

// The response the pipeline builds; it is written when the pipeline unwinds, unless the request became
// a WebSocket.
struct http_response {
    int status_code = 200;
    http::headers headers;
    std::string body;
    // When set, the body is this file (or the range of it selected), sent a chunk at a time as the client
    // reads it, and `body` is not sent (static_files sets it).
    std::optional<http::file_body> file;
};

namespace detail {
// The connection under a request: what can turn into a WebSocket, and where its body comes from.
class request_connection {
public:
    virtual awaitable<websocket> upgrade(const http::request& request, const accept_context& context,
                                         const websocket_options& options) = 0;
    // The whole request body, read the first time it is asked for (see http_context::read_body).
    virtual awaitable<std::string_view> read_body() = 0;
    // The accepted WebSocket lives on without the request (the message-driven API's session owns it):
    // the connection lets go of it, and the request's end no longer ends it.
    virtual void hand_over_websocket() noexcept = 0;

protected:
    ~request_connection() = default;
};
}  // namespace detail

// ASP.NET's WebSocketManager (ctx.websockets).
class websocket_manager {
public:
    // True for an upgrade request (GET with Upgrade: websocket and Connection: Upgrade) or, over HTTP/2,
    // an extended CONNECT with :protocol websocket (RFC 8441), once app.use_websockets() has run for this
    // request. accept_websocket answers a malformed one (bad key, other version) with 400 or 426.
    bool is_websocket_request() const { return options_ != nullptr && ws::handshake::is_websocket_request(*request_); }

    // Sec-WebSocket-Protocol values the client offered, in its order of preference.
    std::vector<std::string_view> requested_protocols() const { return ws::handshake::requested_protocols(*request_); }

    // Answers 101 (over HTTP/2: 200 to the extended CONNECT) and returns the WebSocket. The request moves no further down the pipeline; when the
    // handler returns, the pipeline unwinds and the connection closes (keep the request alive, e.g. by
    // awaiting a task_completion_source, while a background service uses the socket). Throws, before
    // answering, when this is not a WebSocket request, the sub-protocol was not offered, or a compression
    // setting is out of range. With dangerous_enable_compression, a permessage-deflate offer is accepted.
    //
    // g++ 12 miscompiles an aggregate temporary inside a co_await expression: name the accept_context
    // (`duplex::accept_context options{...}; co_await ctx.websockets.accept_websocket(options);`) rather
    // than writing `accept_websocket({...})`.
    awaitable<websocket> accept_websocket() { return accept_websocket(accept_context{}); }
    awaitable<websocket> accept_websocket(std::string_view sub_protocol) {
        accept_context context;
        context.sub_protocol = std::string(sub_protocol);
        return accept_websocket(context);
    }
    awaitable<websocket> accept_websocket(const accept_context& context) {
        if (!is_websocket_request()) throw std::logic_error("Not a WebSocket request.");
        if (accepted_) throw std::logic_error("the WebSocket of this request was already accepted");
        if (!context.sub_protocol.empty()) {
            const auto offered = requested_protocols();
            if (std::find(offered.begin(), offered.end(), context.sub_protocol) == offered.end())
                throw std::invalid_argument("sub-protocol '" + context.sub_protocol + "' was not offered by the client");
        }
        if (context.dangerous_enable_compression && (context.server_max_window_bits < duplex::deflate::min_window_bits ||
                                                     context.server_max_window_bits > duplex::deflate::max_window_bits))
            throw std::invalid_argument("accept_context::server_max_window_bits must be between 8 and 15");
        accepted_ = true;
        context_ = context;  // the upgrade reads it after this call returns
        return target_->upgrade(*request_, context_, *options_);
    }

    // Whether accept_websocket took over the connection (the HTTP response is then not written).
    bool accepted() const noexcept { return accepted_; }

    // For app.map_websocket: the accepted WebSocket outlives this request (its session owns it).
    void hand_over() noexcept {
        if (accepted_) target_->hand_over_websocket();
    }

    websocket_manager(const http::request& request, detail::request_connection& target) noexcept
        : request_(&request), target_(&target) {}

    // Called by use_websockets(): WebSocket requests are recognised from here on.
    void enable(const websocket_options& options) noexcept { options_ = &options; }

private:
    const http::request* request_;
    detail::request_connection* target_;
    const websocket_options* options_ = nullptr;
    accept_context context_;
    bool accepted_ = false;
};

class http_context {
public:
    http_context(http::request r, detail::request_connection& target)
        : request(std::move(r)), websockets(request, target), target_(&target) {}
    http_context(const http_context&) = delete;
    http_context& operator=(const http_context&) = delete;

    // The request's body (Content-Length, up to app_options::max_request_body_size), read from the
    // connection when this is first awaited; later calls return the same bytes, which stay valid until
    // the response is written. A body no handler asks for is never held: it is read and dropped before
    // the response (or, when the client waits for `100 Continue`, the connection closes after it). A
    // client that sent `Expect: 100-continue` gets `100 Continue` here. Throws std::system_error when the
    // body does not arrive in full within request_timeout.
    awaitable<std::string_view> read_body() { return target_->read_body(); }

    http::request request;
    http_response response;
    websocket_manager websockets;

private:
    detail::request_connection* target_;
};

}  // namespace duplex
