// A minimal app-host server: a WebSocket echo at /ws, over http:// and (with --cert/--key) https://.
#include <duplex/duplex.hpp>

int main(int argc, char** argv) {
    duplex::app app(argc, argv);
    app.use_websockets();
    app.use([](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        if (ctx.request.path != "/ws" || !ctx.websockets.is_websocket_request()) co_return co_await next(ctx);
        auto ws = co_await ctx.websockets.accept_websocket();
        std::string message;
        auto result = co_await ws.receive_message(message, 1 << 20);
        while (!result.close_status) {
            co_await ws.send(message);
            result = co_await ws.receive_message(message, 1 << 20);
        }
        co_await ws.close(*result.close_status, result.close_status_description);
    });
    app.run("http://localhost:5000");
}
