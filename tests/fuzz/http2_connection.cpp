// The app host's HTTP/2 connection (app/detail/http2_connection.hpp) fed arbitrary client bytes over an
// in-memory transport, with a pipeline that answers plain requests, reads bodies, and accepts WebSockets
// (extended CONNECT) that echo until the close. nghttp2 parses; what is fuzzed is our side of it: the
// session's callbacks, the streams' pipelines, request bodies, the tunnels under ws::stream, the
// connection's end. Properties:
// - it finishes: the connection's run() ends, and the io_context then runs out of work (no hang, no
//   stream or pipeline left waiting);
// - what it wrote is a sequence of whole HTTP/2 frames no longer than the default SETTINGS_MAX_FRAME_SIZE,
//   starting with the server's SETTINGS when the client preface came first;
// - no handler sees anything but websocket_error or std::system_error, and the pipeline never fails.
//
// Input: one configuration byte (bit 0 set: the client preface and an empty SETTINGS are not prepended;
// bits 1-3: read chunk size), then the client's bytes.
#include <duplex/app/detail/http2_connection.hpp>
#include <duplex/app/pipeline.hpp>

#include "fuzz_support.hpp"
#include "http2_fuzz.hpp"
#include "memory_stream.hpp"

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace duplex;

namespace {

constexpr std::array<std::uint8_t, 9> empty_settings = {0, 0, 0, 4, 0, 0, 0, 0, 0};

awaitable<void> echo(websocket ws) {
    std::array<std::byte, 256> buffer;
    for (;;) {
        auto r = co_await ws.receive(asio::buffer(buffer));
        if (r.close_status) {
            co_await ws.close(*r.close_status, r.close_status_description);
            co_return;
        }
        co_await ws.send(asio::buffer(buffer.data(), r.count), r.message_type, r.end_of_message);
    }
}

// What a handler may see: the peer's doing, never anything else.
awaitable<void> guarded(http_context& ctx, const websocket_options& options) {
    ctx.websockets.enable(options);
    try {
        if (ctx.websockets.is_websocket_request()) {
            accept_context accept;
            accept.dangerous_enable_compression = ctx.request.path == "/deflate";
            co_await echo(co_await ctx.websockets.accept_websocket(accept));
        } else if (ctx.request.path == "/body") {
            ctx.response.body = std::string(co_await ctx.read_body());
        } else {
            ctx.response.body = "hello";
        }
    } catch (const websocket_error&) {
    } catch (const std::system_error&) {
    }
}

// The one middleware: everything goes to guarded(). (A named function: g++ 12 emits a lambda in an extern
// "C" function twice under one symbol.)
middleware pipeline_step(const websocket_options& options) {
    return [&options](http_context& ctx, next) { return guarded(ctx, options); };
}

// The connection's whole life; `finished` once run() has returned.
awaitable<void> serve(std::shared_ptr<detail::http2_connection<test::memory_stream>> connection, bool& finished) {
    co_await connection->run({}, asio::steady_timer::clock_type::now() + std::chrono::seconds(10));
    finished = true;
}

void check_no_exception(std::exception_ptr e) {
    if (e) fuzz::property_failed("the HTTP/2 connection's run() threw", __FILE__, __LINE__);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto input = fuzz::take_peer_input(data, size, {fuzz::client_magic, fuzz::as_text(empty_settings)});
    const auto& transport = input.transport;

    bool finished = false;
    {
        auto io = std::make_shared<asio::io_context>(1);
        detail::app_core core;
        core.io = io;
        core.options.max_request_body_size = 4096;
        core.options.http2_limits.max_concurrent_streams = 16;
        core.options.http2_limits.initial_stream_window_size = 1 << 16;
        core.options.http2_limits.connection_window_size = 1 << 17;
        core.options.http2_limits.max_header_list_size = 4096;
        core.options.websocket_limits.max_message_size = 64 * 1024;
        core.options.logging.minimum_level = log_level::none;
        websocket_options ws_options;
        ws_options.keep_alive_interval = std::chrono::steady_clock::duration::zero();
        core.pipeline.push_back(pipeline_step(ws_options));
        auto connection = std::make_shared<detail::http2_connection<test::memory_stream>>(
            test::memory_stream(io->get_executor(), transport), core, "fuzz");
        asio::co_spawn(*io, serve(connection, finished), check_no_exception);
        connection.reset();
        fuzz::run_to_end(*io);
        FUZZ_CHECK(finished);
        // The server's frames, its SETTINGS first.
        fuzz::check_http2_frames(transport->output, input.preface_sent);
    }
    return 0;
}
