// duplex-echo — the seed's sample app: its page at /, and at /ws a WebSocket that sends every message
// straight back.
//
//   duplex-echo [--urls http://HOST:PORT[;…]] [--wwwroot DIR] [--compression]   (default http://localhost:5000)
//
// --compression accepts permessage-deflate (RFC 7692) when a client offers it. It is off by default:
// compressing secrets next to attacker-chosen data leaks them (CRIME/BREACH); an echo has no secrets.
#include <duplex/duplex.hpp>

#include "echo.hpp"

#include <chrono>
#include <string_view>

int main(int argc, char** argv) {
    std::string_view wwwroot = DUPLEX_ECHO_WWWROOT;
    bool compression = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--wwwroot" && i + 1 < argc) wwwroot = argv[i + 1];
        if (arg == "--compression") compression = true;
    }

    duplex::app app(argc, argv);
    app.use_websockets({.keep_alive_interval = std::chrono::minutes(2)});
    app.use([compression](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        if (ctx.request.path == "/ws") {
            if (ctx.websockets.is_websocket_request()) {
                duplex::accept_context accept;  // named: g++ 12 destroys an aggregate temporary in co_await twice
                accept.dangerous_enable_compression = compression;
                auto ws = co_await ctx.websockets.accept_websocket(accept);
                co_await duplex::examples::echo(ws);
            } else {
                ctx.response.status_code = 400;
            }
        } else {
            co_await next(ctx);
        }
    });
    app.use_static_files(wwwroot);
    app.run("http://localhost:5000");
}
