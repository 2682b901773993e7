// The app host exercised by tests/app/app_test.py: pipeline order, routes, WebSocket options and
// limits, the seed's request lifetime rule and the background-processor pattern. Small limits make
// each answer easy to provoke. Events the test cannot see on the wire are printed as "EVENT ..." lines.
#include <duplex/duplex.hpp>

#include "../../examples/echo/echo.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

void event(const std::string& text) {
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    std::cout << "EVENT " << text << std::endl;
}

// Tries the socket after its request has ended: the seed's "response has completed" case.
duplex::awaitable<void> use_after_request(duplex::websocket ws) {
    asio::steady_timer timer(ws.get_executor(), 100ms);
    co_await timer.async_wait(duplex::use_awaitable);
    try {
        co_await ws.send("too late");
        event("request_ended not detected");
    } catch (const duplex::websocket_error& e) {
        event(std::string("request_ended ") + (e.code() == duplex::websocket_errc::request_ended ? "ok" : "wrong code") +
              ": " + e.what());
    }
}

// The seed's BackgroundSocketProcessor: owns the socket, pushes messages, completes the request's tcs.
duplex::awaitable<void> background_processor(duplex::websocket ws, duplex::task_completion_source<> tcs) {
    try {
        asio::steady_timer timer(ws.get_executor());
        for (int i = 1; i <= 3; ++i) {
            timer.expires_after(20ms);
            co_await timer.async_wait(duplex::use_awaitable);
            co_await ws.send("tick " + std::to_string(i));
        }
        co_await ws.close(duplex::close_status::normal_closure, "background done");
        tcs.try_set_result();
    } catch (...) {
        tcs.try_set_exception(std::current_exception());
    }
}

// Many senders at once for a client that never reads: the send queue passes max_send_queue_bytes, the
// connection fails with 1008 and every sender sees send_queue_full.
duplex::awaitable<void> flood(duplex::websocket ws) {
    constexpr int senders = 64;
    struct shared_state {
        int running = senders;
        std::error_code first_error;
        duplex::task_completion_source<> all_ended;
    };
    auto state = std::make_shared<shared_state>();
    const auto send_until_failure = [](duplex::websocket ws, std::shared_ptr<shared_state> state) -> duplex::awaitable<void> {
        const std::string payload(4096, 'f');
        try {
            for (;;) co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
        } catch (const duplex::websocket_error& e) {
            if (!state->first_error) state->first_error = e.code();
        }
        if (--state->running == 0) state->all_ended.try_set_result();
    };
    for (int i = 0; i < senders; ++i) asio::co_spawn(ws.get_executor(), send_until_failure(ws, state), asio::detached);
    co_await state->all_ended.task();
    event(std::string("flood ") +
          (state->first_error == duplex::websocket_errc::send_queue_full ? "send_queue_full" : state->first_error.message()));
}

// Sends `total` bytes in 16 KiB binary messages, as fast as the peer takes them, then closes: a peer that
// reads slowly but steadily must get all of it, one that stops reading is cut off by the send timeout.
duplex::awaitable<void> download(duplex::websocket ws, std::size_t total) {
    const std::string piece(16 * 1024, 'd');
    try {
        for (std::size_t sent = 0; sent < total; sent += piece.size())
            co_await ws.send(asio::buffer(piece, std::min(piece.size(), total - sent)), duplex::message_type::binary);
        co_await ws.close(duplex::close_status::normal_closure, "download complete");
        event("download complete");
    } catch (const duplex::websocket_error& e) {
        event(std::string("download failed: ") +
              (e.code() == duplex::websocket_errc::send_timeout ? "send_timeout" : e.code().message()));
    }
}

// A positive number of the option `name` (`--name N`), or `fallback`.
long long number_option(int argc, char** argv, std::string_view name, long long fallback) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == name) return std::stoll(argv[i + 1]);
    return fallback;
}

std::string text_option(int argc, char** argv, std::string_view name) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == name) return argv[i + 1];
    return {};
}

}  // namespace

// Options for the checks that need a server of their own (tests/app/pressure_test.py): --max-connections,
// --max-body-bytes, --request-timeout-ms, --max-message-size, --max-fragments, --send-timeout-ms,
// --shutdown-timeout-ms, --cert and --key (for https:// URLs), --h2c (HTTP/2 with prior knowledge on
// http:// URLs), --h2-stream-window and --h2-connection-window (http2_limits' windows), and the app's own
// --threads and --urls.
int main(int argc, char** argv) {
    const std::string wwwroot = text_option(argc, argv, "--wwwroot");

    duplex::app_options options;
    options.worker_threads = 2;
    options.max_connections = static_cast<std::size_t>(number_option(argc, argv, "--max-connections", 20));
    options.request_timeout = std::chrono::milliseconds(number_option(argc, argv, "--request-timeout-ms", 500));
    options.idle_timeout = 3s;
    options.max_request_body_size = static_cast<std::size_t>(number_option(argc, argv, "--max-body-bytes", 1024));
    options.shutdown_timeout = std::chrono::milliseconds(number_option(argc, argv, "--shutdown-timeout-ms", 3000));
    options.http_limits.max_target_bytes = 256;
    options.http_limits.max_head_bytes = 2048;
    options.websocket_limits.max_message_size =
        static_cast<std::size_t>(number_option(argc, argv, "--max-message-size", 128 * 1024));
    options.websocket_limits.max_fragments_per_message =
        static_cast<std::size_t>(number_option(argc, argv, "--max-fragments", 100));
    options.websocket_limits.max_send_queue_bytes = 128 * 1024;
    options.websocket_limits.send_timeout = std::chrono::milliseconds(number_option(argc, argv, "--send-timeout-ms", 60'000));
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--h2c") options.http2_prior_knowledge = true;
    options.http2_limits.initial_stream_window_size = static_cast<std::uint32_t>(
        number_option(argc, argv, "--h2-stream-window", options.http2_limits.initial_stream_window_size));
    options.http2_limits.connection_window_size = static_cast<std::uint32_t>(
        number_option(argc, argv, "--h2-connection-window", options.http2_limits.connection_window_size));
    duplex::app app(argc, argv, options);
    if (const auto cert = text_option(argc, argv, "--cert"); !cert.empty()) {
        duplex::https_options https;
        https.certificate_chain_file = cert;
        https.private_key_file = text_option(argc, argv, "--key");
        app.use_https(https);
    }

    // Pipeline order: each middleware marks the way in and the way out.
    app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        ctx.response.headers.set("X-Trace", "A>");
        co_await next();
        ctx.response.headers.set("X-Trace", std::string(ctx.response.headers.get("X-Trace").value_or("")) + "<A");
    });
    app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        ctx.response.headers.set("X-Trace", std::string(ctx.response.headers.get("X-Trace").value_or("")) + "B>");
        co_await next(ctx);
        ctx.response.headers.set("X-Trace", std::string(ctx.response.headers.get("X-Trace").value_or("")) + "<B");
    });
    app.map("/hello", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        ctx.response.body = "hello " + ctx.request.query.raw();
        co_return;
    });
    app.map("/echo-body", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        ctx.response.body = std::string(co_await ctx.read_body());
    });
    // Answers without reading the body: the connection drops it (or closes, for a client that waits for
    // 100 Continue).
    app.map("/ignore-body", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        ctx.response.body = "ignored";
        co_return;
    });
    // Large enough that its response is still being written when a client that reads slowly sends SIGTERM.
    app.map("/big", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        ctx.response.body.assign(32 * 1024 * 1024, 'b');
        co_return;
    });
    app.map("/throw", [](duplex::http_context&) -> duplex::awaitable<void> {
        throw std::runtime_error("handler failed on purpose");
        co_return;
    });

    duplex::websocket_options ws_options;
    ws_options.keep_alive_interval = 150ms;
    ws_options.allowed_origins = {"https://allowed.example"};
    app.use_websockets(ws_options);

    app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        const auto& path = ctx.request.path;
        if (!path.starts_with("/ws")) {
            co_await next();
            co_return;
        }
        if (!ctx.websockets.is_websocket_request()) {
            ctx.response.status_code = 400;
            co_return;
        }
        if (path == "/ws") {
            auto ws = co_await ctx.websockets.accept_websocket();
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/echo-reporting") {  // the echo, saying how it ended
            auto ws = co_await ctx.websockets.accept_websocket();
            try {
                co_await duplex::examples::echo(ws);
                event("echo ended normally");
            } catch (const duplex::websocket_error& e) {
                event(std::string("echo ended: ") + e.what());
            }
        } else if (path == "/ws/stall") {  // receives nothing for 2 s, then echoes
            auto ws = co_await ctx.websockets.accept_websocket();
            asio::steady_timer pause(co_await asio::this_coro::executor, 2s);
            co_await pause.async_wait(asio::use_awaitable);
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/subprotocol") {
            const auto offered = ctx.websockets.requested_protocols();
            const bool has_v2 = std::find(offered.begin(), offered.end(), "chat.v2") != offered.end();
            auto ws = co_await ctx.websockets.accept_websocket(has_v2 ? "chat.v2" : "");
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/unoffered-subprotocol") {
            auto ws = co_await ctx.websockets.accept_websocket("never-offered");
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/compressed") {
            duplex::accept_context accept;
            accept.dangerous_enable_compression = true;
            accept.server_max_window_bits = 10;
            accept.disable_server_context_takeover = true;
            auto ws = co_await ctx.websockets.accept_websocket(accept);
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/compressed-bad-window") {
            duplex::accept_context accept;
            accept.dangerous_enable_compression = true;
            accept.server_max_window_bits = 16;
            auto ws = co_await ctx.websockets.accept_websocket(accept);
            co_await duplex::examples::echo(ws);
        } else if (path == "/ws/keepalive-timeout") {
            duplex::accept_context accept;
            accept.keep_alive_interval = 100ms;
            accept.keep_alive_timeout = 300ms;
            auto ws = co_await ctx.websockets.accept_websocket(accept);
            std::array<std::byte, 256> buffer;
            try {
                for (;;) {
                    auto r = co_await ws.receive(asio::buffer(buffer));
                    if (r.close_status) {
                        co_await ws.close(*r.close_status);
                        break;
                    }
                }
            } catch (const duplex::websocket_error& e) {
                event(std::string("keepalive ") +
                      (e.code() == duplex::websocket_errc::keep_alive_timeout ? "timeout" : e.code().message()));
            }
        } else if (path.starts_with("/ws/download/")) {  // /ws/download/BYTES
            const auto bytes = std::stoull(path.substr(std::string_view("/ws/download/").size()));
            auto ws = co_await ctx.websockets.accept_websocket();
            co_await download(ws, bytes);
        } else if (path == "/ws/flood") {
            auto ws = co_await ctx.websockets.accept_websocket();
            co_await flood(ws);
        } else if (path == "/ws/after-end") {
            auto ws = co_await ctx.websockets.accept_websocket();
            asio::co_spawn(ws.get_executor(), use_after_request(ws), asio::detached);
        } else if (path == "/ws/background") {
            auto ws = co_await ctx.websockets.accept_websocket();
            duplex::task_completion_source<> tcs;
            asio::co_spawn(ws.get_executor(), background_processor(ws, tcs), asio::detached);
            co_await tcs.task();
            event("background finished");
        } else {
            co_await next();
        }
    });
    if (!wwwroot.empty()) app.use_static_files(wwwroot);
    app.run("http://127.0.0.1:0");
    event("stopped");
}
