// The message-driven API (app.map_websocket with websocket_handlers) in-process: on_open with the
// request's context, messages whole and in order through plain and coroutine handlers (larger than the
// receive buffer, and empty), on_message_piece, max_message_size (1009), a throwing handler (1011),
// on_close, on_drain after the backpressure limit, topics, the graceful shutdown (1001), and a plain
// GET (400). (duplex-echo --api handlers runs the conformance, interop and storm suites on this API.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include "app_runner.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

struct member {
    std::string name;
    int handled = 0;
};

// What the server's handlers saw, for the test to check once they are done.
struct seen {
    std::mutex mutex;
    std::vector<std::string> closes;  // "name:status:description"
    std::atomic<int> drains{0};
    void closed(const std::string& name, duplex::close_status status, std::string_view description) {
        std::lock_guard lock(mutex);
        closes.push_back(name + ":" + std::to_string(static_cast<int>(status)) + ":" + std::string(description));
    }
    std::vector<std::string> all() {
        std::lock_guard lock(mutex);
        return closes;
    }
};

duplex::app_options quiet_options() {
    duplex::app_options options;
    options.worker_threads = 1;
    options.logging.minimum_level = duplex::log_level::none;
    options.shutdown_timeout = 2s;
    return options;
}

duplex::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer wait(co_await asio::this_coro::executor, d);
    co_await wait.async_wait(duplex::use_awaitable);
}

// The status code of a plain GET (no upgrade).
int http_status_of_plain_get(unsigned short port, const std::string& target) {
    const auto response = test::http_get(port, target);
    return response.size() > 12 ? std::stoi(response.substr(9, 3)) : 0;
}

std::string url(test::app_runner& runner, const std::string& target) {
    return "ws://127.0.0.1:" + std::to_string(runner.port()) + target;
}

}  // namespace

TEST_CASE("map_websocket: on_open with the request, whole messages in order through a coroutine handler, on_close") {
    seen server_saw;
    duplex::app app(quiet_options());
    app.use_websockets();
    duplex::websocket_handlers<member> handlers;
    handlers.on_open = [](duplex::websocket_session<member>& socket, duplex::http_context& ctx) {
        socket.data().name = std::string(ctx.request.query("name").value_or("?"));
        socket.send("hello " + socket.data().name);
    };
    // A coroutine that waits before answering: the next message waits for it, so answers stay in order.
    handlers.on_message = [](duplex::websocket_session<member>& socket, std::string_view data,
                             duplex::message_type type) -> duplex::awaitable<void> {
        const std::string copy(data);  // `data` is valid until the coroutine finishes; so is `socket`
        co_await pause(1ms);
        const auto reply = std::to_string(socket.data().handled++) + ":" + copy;
        socket.send(asio::buffer(reply), type);
    };
    // on_close runs on the connection's own thread like every handler (it once ran on Asio's system pool
    // when the close was the answer to the peer's, beside the connection's thread).
    std::atomic<bool> on_close_on_socket_thread{false};
    handlers.on_close = [&](duplex::websocket_session<member>& socket, duplex::close_status status,
                            std::string_view description) {
        on_close_on_socket_thread = duplex::detail::running_in(socket.get_executor());
        server_saw.closed(socket.data().name, status, description);
    };
    app.map_websocket("/chat", handlers);
    test::app_runner runner(app);
    runner.start();

    test::as_client([&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url(runner, "/chat?name=Ada%20L%C3%A9"));
        std::string text;
        co_await ws.receive_message(text, 1 << 20);
        CHECK(text == "hello Ada Lé");
        // Pipelined: small, empty, binary, and 200 KiB (50 receive buffers' worth) messages.
        std::vector<std::string> sent;
        for (int i = 0; i < 30; ++i) {
            std::string message = i == 3 ? "" : "message " + std::to_string(i);
            if (i == 7) message.resize(200 * 1024, 'x');
            const auto type = i % 5 == 4 ? duplex::message_type::binary : duplex::message_type::text;
            co_await ws.send(asio::buffer(message), type, true);
            sent.push_back(message);
        }
        for (int i = 0; i < 30; ++i) {
            const auto r = co_await ws.receive_message(text, 1 << 20);
            REQUIRE_FALSE(r.close_status);
            CHECK(r.message_type == (i % 5 == 4 ? duplex::message_type::binary : duplex::message_type::text));
            CHECK(text == std::to_string(i) + ":" + sent[static_cast<std::size_t>(i)]);
        }
        // The session answers the peer's close in kind.
        co_await ws.close_output(static_cast<duplex::close_status>(4000), "bye");
        const auto r = co_await ws.receive_message(text, 1024);
        REQUIRE(r.close_status);
        CHECK(*r.close_status == static_cast<duplex::close_status>(4000));
        CHECK(r.close_status_description == "bye");
    });
    for (int i = 0; i < 200 && server_saw.all().empty(); ++i) std::this_thread::sleep_for(10ms);
    CHECK(server_saw.all() == std::vector<std::string>{"Ada Lé:4000:bye"});
    CHECK(on_close_on_socket_thread);
    CHECK(http_status_of_plain_get(runner.port(), "/chat") == 400);
}

TEST_CASE("map_websocket: on_message_piece, max_message_size (1009), and a throwing handler (1011)") {
    duplex::app_options options = quiet_options();
    options.websocket_limits.max_message_size = 64 * 1024;
    duplex::app app(options);
    app.use_websockets();
    duplex::websocket_handlers<> whole;
    whole.on_message = [](duplex::websocket_session<>& socket, std::string_view data, duplex::message_type) {
        if (data == "throw") throw std::runtime_error("handler bug");
        socket.send(std::to_string(data.size()));
    };
    app.map_websocket("/whole", whole);
    duplex::websocket_handlers<std::size_t> pieces;  // the bytes of the message so far
    pieces.receive_buffer_size = 1024;
    pieces.on_message_piece = [](duplex::websocket_session<std::size_t>& socket, std::string_view piece,
                                 duplex::message_type, bool end_of_message) {
        CHECK(piece.size() <= 1024);
        CHECK(piece.find_first_not_of('p') == std::string_view::npos);
        socket.data() += piece.size();
        if (!end_of_message) return;
        socket.send(std::to_string(socket.data()));
        socket.data() = 0;
    };
    app.map_websocket("/pieces", pieces);
    test::app_runner runner(app);
    runner.start();
    test::as_client([&]() -> duplex::awaitable<void> {
        std::string text;
        // Pieces of at most the receive buffer (1 KiB); an empty message is one empty last piece.
        auto p = co_await duplex::connect(url(runner, "/pieces"));
        const std::string large(60 * 1024, 'p');
        co_await p.send(large);
        co_await p.send("");
        co_await p.receive_message(text, 1024);
        CHECK(text == std::to_string(large.size()));
        co_await p.receive_message(text, 1024);
        CHECK(text == "0");
        co_await p.close(duplex::close_status::normal_closure);

        auto w = co_await duplex::connect(url(runner, "/whole"));
        const std::string at_limit(64 * 1024, 'w');
        co_await w.send(at_limit);
        co_await w.receive_message(text, 1024);
        CHECK(text == std::to_string(at_limit.size()));
        const std::string past_limit(64 * 1024 + 1, 'w');
        co_await w.send(past_limit);
        auto r = co_await w.receive_message(text, 1024);
        REQUIRE(r.close_status);
        CHECK(*r.close_status == duplex::close_status::message_too_big);

        auto t = co_await duplex::connect(url(runner, "/whole"));
        co_await t.send("throw");
        r = co_await t.receive_message(text, 1024);
        REQUIRE(r.close_status);
        CHECK(*r.close_status == duplex::close_status::internal_server_error);
    });
}

using test::silent_client;

TEST_CASE("map_websocket: sends never wait: dropped past the backpressure limit, on_drain when the peer catches up") {
    std::atomic<int> queued{0}, dropped{0};
    seen server_saw;
    duplex::app app(quiet_options());
    app.use_websockets();
    duplex::websocket_handlers<> handlers;
    handlers.backpressure.max_backpressure_bytes = 16 * 1024;
    // On open: 1,000 messages of 4 KiB at once; far more than the peer's buffers and the limit hold.
    handlers.on_open = [&](duplex::websocket_session<>& socket, duplex::http_context&) {
        const std::string block(4096, 'b');
        for (int i = 0; i < 1000; ++i) {
            const auto text = std::to_string(i) + ":" + block;
            if (socket.send(text) == duplex::send_status::queued) ++queued;
            else ++dropped;
        }
    };
    handlers.on_drain = [&](duplex::websocket_session<>& socket) {
        ++server_saw.drains;
        socket.send("drained");
    };
    app.map_websocket("/flood", handlers);
    test::app_runner runner(app);
    runner.start();
    test::as_client([&]() -> duplex::awaitable<void> {
        silent_client silent;
        co_await silent.connect(runner.port(), "/flood");
        for (int i = 0; i < 500 && queued + dropped < 1000; ++i) co_await pause(10ms);
        REQUIRE(queued + dropped == 1000);
        CHECK(dropped > 0);
        // Reading now: the queued ones in order, then the drain's message.
        std::string text;
        int last = -1, count = 0;
        for (;;) {
            const auto r = co_await silent.ws->receive_message(text, 1 << 20);
            REQUIRE_FALSE(r.close_status);
            if (text == "drained") break;
            const int i = std::stoi(text.substr(0, text.find(':')));
            CHECK(i > last);
            last = i;
            ++count;
        }
        CHECK(count == queued);
        CHECK(server_saw.drains == 1);
        co_await silent.ws->close(duplex::close_status::normal_closure);
    });
}

TEST_CASE("map_websocket: topics, publish_to_others, and the graceful shutdown closes sessions with 1001") {
    duplex::app app(quiet_options());
    app.use_websockets();
    duplex::websocket_handlers<std::string> handlers;  // the room
    handlers.on_open = [](duplex::websocket_session<std::string>& socket, duplex::http_context& ctx) {
        socket.data() = std::string(ctx.request.query("room").value_or("lobby"));
        CHECK(socket.subscribe(socket.data()));
        CHECK_FALSE(socket.subscribe(socket.data()));
        CHECK(socket.is_subscribed(socket.data()));
    };
    handlers.on_message = [](duplex::websocket_session<std::string>& socket, std::string_view data, duplex::message_type) {
        if (data.starts_with("others:")) socket.publish_to_others(socket.data(), asio::buffer(data.substr(7)), duplex::message_type::text);
        else socket.publish(socket.data(), data);
    };
    app.map_websocket("/room", handlers);
    test::app_runner runner(app);
    runner.start();
    test::as_client([&]() -> duplex::awaitable<void> {
        auto a1 = co_await duplex::connect(url(runner, "/room?room=a"));
        auto a2 = co_await duplex::connect(url(runner, "/room?room=a"));
        auto b1 = co_await duplex::connect(url(runner, "/room?room=b"));
        // on_open runs just after the 101 has gone out.
        for (int i = 0; i < 500 && app.topics().subscriber_count("a") + app.topics().subscriber_count("b") != 3; ++i)
            co_await pause(10ms);
        REQUIRE(app.topics().subscriber_count("a") == 2);
        REQUIRE(app.topics().subscriber_count("b") == 1);
        co_await a1.send("to all of a");
        co_await a1.send("others:to the others in a");
        co_await b1.send("to all of b");
        std::string text;
        co_await a1.receive_message(text, 1024);
        CHECK(text == "to all of a");
        co_await a2.receive_message(text, 1024);
        CHECK(text == "to all of a");
        co_await a2.receive_message(text, 1024);
        CHECK(text == "to the others in a");
        co_await b1.receive_message(text, 1024);
        CHECK(text == "to all of b");
        // The app stops: every session gets 1001.
        std::thread stopper([&] { runner.stop(); });
        const std::array<duplex::websocket*, 3> everyone{&a1, &a2, &b1};
        for (auto* ws : everyone) {
            const auto r = co_await ws->receive_message(text, 1024);
            REQUIRE(r.close_status);
            CHECK(*r.close_status == duplex::close_status::endpoint_unavailable);
            co_await ws->close(*r.close_status);
        }
        stopper.join();
    });
    CHECK(app.topics().topic_count() == 0);
}
