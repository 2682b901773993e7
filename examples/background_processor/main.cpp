// duplex-background-processor — the seed's BackgroundSocketProcessor: the request hands its WebSocket
// to a background service and awaits a task_completion_source, which keeps the request (and so the
// socket) alive until the service is done with it.
//
//   duplex-background-processor [--urls http://HOST:PORT]      WebSockets at /ws
#include <duplex/duplex.hpp>

#include <chrono>
#include <list>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

// Owns the sockets it is given: sends each a few status messages, then closes it and completes the
// request's task.
class background_socket_processor {
public:
    void add_socket(duplex::websocket socket, duplex::task_completion_source<> tcs) {
        const auto executor = socket.get_executor();  // before the socket moves into serve()
        asio::co_spawn(executor, serve(std::move(socket), std::move(tcs)), asio::detached);
    }

private:
    static duplex::awaitable<void> serve(duplex::websocket socket, duplex::task_completion_source<> tcs) {
        try {
            asio::steady_timer timer(socket.get_executor());
            for (int i = 1; i <= 5; ++i) {
                co_await socket.send("processing step " + std::to_string(i) + " of 5");
                timer.expires_after(200ms);
                co_await timer.async_wait(duplex::use_awaitable);
            }
            co_await socket.close(duplex::close_status::normal_closure, "processing complete");
            tcs.try_set_result();
        } catch (...) {
            tcs.try_set_exception(std::current_exception());
        }
    }
};

int main(int argc, char** argv) {
    background_socket_processor processor;
    duplex::app app(argc, argv);
    app.use_websockets();
    app.use([&processor](duplex::http_context& ctx, duplex::next next) -> duplex::awaitable<void> {
        if (ctx.request.path != "/ws") {
            co_await next();
            co_return;
        }
        if (!ctx.websockets.is_websocket_request()) {
            ctx.response.status_code = 400;
            co_return;
        }
        auto socket = co_await ctx.websockets.accept_websocket();
        duplex::task_completion_source<> socket_finished;
        processor.add_socket(socket, socket_finished);
        co_await socket_finished.task();
    });
    app.run("http://localhost:5000");
}
