// duplex-background-processor — the seed's BackgroundSocketProcessor: the request hands its WebSocket
// to a background service and awaits a task_completion_source, which keeps the request (and so the
// socket) alive until the service is done with it.
//
//   duplex-background-processor [--urls http://HOST:PORT] [--steps N] [--step-ms MS]
//                               [--keep-alive-interval-ms MS --keep-alive-timeout-ms MS]      WebSockets at /ws
//
// The service only sends, never receives: with a keep-alive timeout, the socket still learns that its
// peer stopped answering pings (the keep-alive reads the answers itself), and the service's next send
// fails with keep_alive_timeout, which it reports on stderr.
#include <duplex/duplex.hpp>

#include <charconv>
#include <chrono>
#include <iostream>
#include <list>
#include <mutex>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

// Owns the sockets it is given: sends each a few status messages, then closes it and completes the
// request's task.
class background_socket_processor {
public:
    background_socket_processor(int steps, std::chrono::milliseconds step) : steps_(steps), step_(step) {}

    void add_socket(duplex::websocket socket, duplex::task_completion_source<> tcs) {
        const auto executor = socket.get_executor();  // before the socket moves into serve()
        asio::co_spawn(executor, serve(std::move(socket), std::move(tcs), steps_, step_), asio::detached);
    }

private:
    static duplex::awaitable<void> serve(duplex::websocket socket, duplex::task_completion_source<> tcs, int steps,
                                         std::chrono::milliseconds step) {
        try {
            asio::steady_timer timer(socket.get_executor());
            for (int i = 1; i <= steps; ++i) {
                co_await socket.send("processing step " + std::to_string(i) + " of " + std::to_string(steps));
                timer.expires_after(step);
                co_await timer.async_wait(duplex::use_awaitable);
            }
            co_await socket.close(duplex::close_status::normal_closure, "processing complete");
            tcs.try_set_result();
        } catch (const std::exception& e) {
            std::cerr << "background processor: a socket ended: " << e.what() << std::endl;
            tcs.try_set_exception(std::current_exception());
        }
    }

    int steps_;
    std::chrono::milliseconds step_;
};

int main(int argc, char** argv) {
    int steps = 5;
    long long step_ms = 200;
    duplex::websocket_options websockets;
    for (int i = 1; i + 1 < argc; ++i) {
        const std::string_view arg = argv[i];
        long long value = 0;
        const std::string_view text = argv[i + 1];
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        const bool number = ec == std::errc{} && end == text.data() + text.size() && value > 0;
        if (arg != "--steps" && arg != "--step-ms" && arg != "--keep-alive-interval-ms" && arg != "--keep-alive-timeout-ms")
            continue;
        if (!number) {
            std::cerr << "duplex-background-processor: " << arg << " needs a positive number\n";
            return 2;
        }
        ++i;
        if (arg == "--steps") steps = static_cast<int>(value);
        else if (arg == "--step-ms") step_ms = value;
        else if (arg == "--keep-alive-interval-ms") websockets.keep_alive_interval = std::chrono::milliseconds(value);
        else websockets.keep_alive_timeout = std::chrono::milliseconds(value);
    }
    background_socket_processor processor(steps, std::chrono::milliseconds(step_ms));
    duplex::app app(argc, argv);
    app.use_websockets(websockets);
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
