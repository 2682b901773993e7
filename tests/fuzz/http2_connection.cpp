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
#include "memory_stream.hpp"

#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace duplex;

namespace {

constexpr std::string_view client_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
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
    co_await connection->run({});
    finished = true;
}

void check_no_exception(std::exception_ptr e) {
    if (e) fuzz::property_failed("the HTTP/2 connection's run() threw", __FILE__, __LINE__);
}

// The server's frames: whole, each at most 16,384 bytes of payload (we never raise SETTINGS_MAX_FRAME_SIZE).
void check_frames(const std::vector<std::byte>& out, bool preface_sent) {
    std::size_t at = 0;
    bool first = true;
    while (at + 9 <= out.size()) {
        const auto* h = reinterpret_cast<const std::uint8_t*>(out.data() + at);
        const std::size_t length = (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
        FUZZ_CHECK(length <= 16384);
        FUZZ_CHECK(h[3] <= 0x9);  // DATA … CONTINUATION: no frame type of ours beyond RFC 9113's
        if (first && preface_sent) FUZZ_CHECK(h[3] == 0x4 && (h[4] & 1) == 0);  // the server's SETTINGS first
        first = false;
        at += 9 + length;
    }
    FUZZ_CHECK(at == out.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::size_t read_chunks[] = {SIZE_MAX, 1, 2, 9, 24, 100, 1000, 16384};
    fuzz::input_reader in(data, size);
    const auto config = in.byte();
    const bool add_preface = (config & 1) == 0;
    const auto client_bytes = in.rest();

    auto transport = std::make_shared<test::memory_stream::state>();
    if (add_preface) {
        const auto* p = reinterpret_cast<const std::byte*>(client_preface.data());
        transport->input.assign(p, p + client_preface.size());
        const auto* s = reinterpret_cast<const std::byte*>(empty_settings.data());
        transport->input.insert(transport->input.end(), s, s + empty_settings.size());
    }
    const auto* c = fuzz::as_bytes(client_bytes.data());
    transport->input.insert(transport->input.end(), c, c + client_bytes.size());
    transport->read_chunk = read_chunks[(config >> 1) & 7];

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
        // Bounded by steps, not time: the transport completes at once, so running out of work before the
        // connection ended means it waits for something that never comes.
        for (std::size_t steps = 0; io->poll_one() != 0; ++steps) FUZZ_CHECK(steps < 10'000'000);
        FUZZ_CHECK(finished);
        check_frames(transport->output, add_preface);
    }
    return 0;
}
