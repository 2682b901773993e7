// duplex-routes — the seed's controller shape: a WebSocket endpoint mapped to a route, next to plain
// HTTP routes, instead of one middleware testing paths.
//
//   duplex-routes [--urls http://HOST:PORT]
//   GET /api/time            the server's time, as text
//   /ws/uppercase            a WebSocket that answers each text message in upper case: a GET upgrade
//                            over HTTP/1.1, an extended CONNECT over HTTP/2 (RFC 8441). app.map routes
//                            every method, so both reach it (the seed's advice to use [Route] rather
//                            than [HttpGet] for WebSocket endpoints).
#include <duplex/duplex.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>

class uppercase_controller {
public:
    static duplex::awaitable<void> get(duplex::http_context& ctx) {
        if (!ctx.websockets.is_websocket_request()) {
            ctx.response.status_code = 400;
            co_return;
        }
        auto ws = co_await ctx.websockets.accept_websocket();
        std::string message;
        auto result = co_await ws.receive_message(message, 64 * 1024);
        while (!result.close_status) {
            std::transform(message.begin(), message.end(), message.begin(),
                           [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
            co_await ws.send(asio::buffer(message), result.message_type);
            result = co_await ws.receive_message(message, 64 * 1024);
        }
        co_await ws.close(*result.close_status, result.close_status_description);
    }
};

int main(int argc, char** argv) {
    duplex::app app(argc, argv);
    app.use_websockets();
    app.map("/api/time", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        ctx.response.body = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "\n";
        co_return;
    });
    app.map("/ws/uppercase", &uppercase_controller::get);
    app.run("http://localhost:5000");
}
