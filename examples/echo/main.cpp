// duplex-echo — the seed's sample app: its page at /, and at /ws a WebSocket that sends every message
// straight back.
//
//   duplex-echo [--urls http://HOST:PORT[;…]] [--wwwroot DIR]      (default http://localhost:5000)
#include <duplex/duplex.hpp>

#include "echo.hpp"

#include <chrono>
#include <string_view>

int main(int argc, char** argv) {
    std::string_view wwwroot = DUPLEX_ECHO_WWWROOT;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string_view(argv[i]) == "--wwwroot") wwwroot = argv[i + 1];

    duplex::app app(argc, argv);
    app.use_websockets({.keep_alive_interval = std::chrono::minutes(2)});
    app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        if (ctx.request.path == "/ws") {
            if (ctx.websockets.is_websocket_request()) {
                auto ws = co_await ctx.websockets.accept_websocket();
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
