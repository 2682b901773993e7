// The app host in-process: WebSocket handles that outlive run() and the app, the log (handler failures
// before and after the upgrade, start-up, shutdown, a sink of one's own, levels), and query parameters
// as a handler sees them. (tests/app/app_test.py drives the host as a separate process.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include "app_runner.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;

// Every line the app logged, with its level.
struct captured_log {
    std::mutex mutex;
    std::vector<std::pair<duplex::log_level, std::string>> lines;

    duplex::log_sink sink() {
        return [this](duplex::log_level level, std::string_view message) {
            std::lock_guard lock(mutex);
            lines.emplace_back(level, std::string(message));
        };
    }
    // The lines at `level` that contain `text`.
    std::vector<std::string> find(duplex::log_level level, std::string_view text) {
        std::lock_guard lock(mutex);
        std::vector<std::string> out;
        for (auto& [l, line] : lines)
            if (l == level && line.find(text) != std::string::npos) out.push_back(line);
        return out;
    }
};

using test::as_client;
using test::http_get;

// A handler's echo: every message back until the client's close, then the close completed; `note`
// (by value: it must live as long as the coroutine) runs before and after each receive.
duplex::awaitable<void> echo_until_close(duplex::websocket& ws, std::function<void()> note = {}) {
    std::string message;
    for (;;) {
        if (note) note();
        auto r = co_await ws.receive_message(message, 1024);
        if (note) note();
        if (r.close_status) break;
        co_await ws.send(message);
    }
    co_await ws.close(duplex::close_status::normal_closure);
}

}  // namespace

TEST_CASE("WebSocket handles kept beyond run() and the app fail their operations at once and are destroyed cleanly") {
    std::vector<duplex::websocket> kept;
    std::mutex kept_mutex;
    {
        duplex::app_options options;
        options.worker_threads = 2;
        options.shutdown_timeout = 300ms;
        options.logging.minimum_level = duplex::log_level::none;
        duplex::app app(options);
        app.use_websockets({.keep_alive_interval = 50ms});  // timers pending on the io_context at the end
        app.use([&](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
            auto ws = co_await ctx.websockets.accept_websocket();
            {
                std::lock_guard lock(kept_mutex);
                kept.push_back(ws);
            }
            // The request stays alive until the shutdown gives up on it; the handler never returns.
            duplex::task_completion_source<> never;
            co_await never.task();
        });
        test::app_runner runner(app);
        runner.start();
        as_client([&]() -> duplex::awaitable<void> {
                const auto url = "ws://127.0.0.1:" + std::to_string(runner.port()) + "/";
                auto a = co_await duplex::connect(url);
                auto b = co_await duplex::connect(url);
                asio::steady_timer wait(co_await asio::this_coro::executor);
                for (int i = 0; i < 200; ++i) {
                    {
                        std::lock_guard lock(kept_mutex);
                        if (kept.size() == 2) break;
                    }
                    wait.expires_after(10ms);
                    co_await wait.async_wait(duplex::use_awaitable);
                }
        });
        runner.stop();  // the handlers never finish: shutdown_timeout passes, run() returns
        REQUIRE(kept.size() == 2);
        CHECK(kept[0].state() == duplex::websocket_state::aborted);
        // An operation on a kept handle, from another io_context, fails at once with a clear error.
        as_client([&]() -> duplex::awaitable<void> {
                std::error_code ec;
                try {
                    co_await kept[0].send("anyone there?");
                } catch (const duplex::websocket_error& e) {
                    ec = e.code();
                }
                CHECK(ec == duplex::websocket_errc::request_ended);
        });
    }
    // The app is gone; the handles go now (ASan and valgrind: no invalid access, no leak).
    kept.clear();
}

TEST_CASE("worker threads: an io_context each; a connection stays on its thread, connections go round-robin") {
    std::mutex mutex;
    std::map<int, std::set<std::thread::id>> threads_of;  // connection number -> threads it ran on
    int accepted = 0;
    duplex::app_options options;
    options.worker_threads = 2;
    options.logging.minimum_level = duplex::log_level::none;
    duplex::app app(options);
    app.use_websockets();
    app.use([&](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        int number;
        {
            std::lock_guard lock(mutex);
            number = accepted++;
        }
        co_await echo_until_close(ws, [&, number] {
            std::lock_guard lock(mutex);
            threads_of[number].insert(std::this_thread::get_id());
        });
    });
    test::app_runner runner(app);
    runner.start();
    as_client([&]() -> duplex::awaitable<void> {
        const auto url = "ws://127.0.0.1:" + std::to_string(runner.port()) + "/";
        std::vector<duplex::websocket> clients;
        for (int i = 0; i < 4; ++i) clients.push_back(co_await duplex::connect(url));
        std::string reply;
        for (int round = 0; round < 20; ++round)
            for (auto& c : clients) {
                co_await c.send("round " + std::to_string(round));
                co_await c.receive_message(reply, 1024);
                CHECK(reply == "round " + std::to_string(round));
            }
        for (auto& c : clients) {
            co_await c.close(duplex::close_status::normal_closure);
        }
    });
    runner.stop();
    REQUIRE(threads_of.size() == 4);
    std::set<std::thread::id> all;
    for (auto& [number, threads] : threads_of) {
        CHECK_MESSAGE(threads.size() == 1, "connection " << number << " ran on " << threads.size() << " threads");
        all.insert(threads.begin(), threads.end());
    }
    CHECK(all.size() == 2);  // handed round-robin: both workers serve connections
}

TEST_CASE("connect_options::endpoint: no name is resolved, and the URI's host is still the Host") {
    std::mutex mutex;
    std::vector<std::string> hosts_seen;
    duplex::app_options options;
    options.worker_threads = 1;
    options.logging.minimum_level = duplex::log_level::none;
    duplex::app app(options);
    app.use_websockets();
    app.use([&](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
        {
            std::lock_guard lock(mutex);
            hosts_seen.emplace_back(ctx.request.headers.get("Host").value_or(""));
        }
        auto ws = co_await ctx.websockets.accept_websocket();
        co_await echo_until_close(ws);
    });
    test::app_runner runner(app);
    runner.start();
    as_client([&]() -> duplex::awaitable<void> {
        duplex::connect_options connect;
        connect.endpoint = tcp::endpoint(asio::ip::address_v4::loopback(), runner.port());
        // .invalid never resolves (RFC 6761): only the endpoint can have been used.
        auto ws = co_await duplex::connect("ws://service.invalid:8080/feed", connect);
        co_await ws.send("hi");
        std::string reply;
        co_await ws.receive_message(reply, 1024);
        CHECK(reply == "hi");
        co_await ws.close(duplex::close_status::normal_closure);
        // An IP literal needs no resolver either (and no endpoint).
        auto direct = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(runner.port()) + "/");
        co_await direct.send("there");
        co_await direct.receive_message(reply, 1024);
        CHECK(reply == "there");
        co_await direct.close(duplex::close_status::normal_closure);
    });
    runner.stop();
    REQUIRE(hosts_seen.size() == 2);
    CHECK(hosts_seen[0] == "service.invalid:8080");
    CHECK(hosts_seen[1] == "127.0.0.1:" + std::to_string(runner.port()));
}

TEST_CASE("at shutdown, a member that never answers the 1001 is dropped after close_timeout, not shutdown_timeout") {
    captured_log log;
    duplex::app_options options;
    options.worker_threads = 1;
    options.shutdown_timeout = 60s;  // longer than as_client waits: holding up the shutdown fails the test
    options.websocket_limits.close_timeout = 200ms;
    options.logging.sink = log.sink();
    duplex::app app(options);
    app.use_websockets();
    std::mutex seen_mutex;
    std::error_code seen;  // what the handler's receive failed with
    app.use([&](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        std::array<char, 256> buffer;
        try {
            for (;;) co_await ws.receive(asio::buffer(buffer));
        } catch (const duplex::websocket_error& e) {
            std::lock_guard lock(seen_mutex);
            seen = e.code();
        }
    });
    test::app_runner runner(app);
    runner.start();
    std::atomic<bool> stopped{false};
    std::thread stopper;
    try {
        as_client([&]() -> duplex::awaitable<void> {
            // Connected and never reading: the server's 1001 is never answered.
            auto silent = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(runner.port()) + "/");
            stopper = std::thread([&] {
                runner.stop();
                stopped = true;
            });
            asio::steady_timer wait(co_await asio::this_coro::executor);
            while (!stopped) {
                wait.expires_after(10ms);
                co_await wait.async_wait(duplex::use_awaitable);
            }
        });
    } catch (...) {
        if (stopper.joinable()) stopper.join();
        throw;
    }
    stopper.join();
    std::lock_guard lock(seen_mutex);
    CHECK(seen == duplex::websocket_errc::close_timeout);
    CHECK(log.find(duplex::log_level::warning, "shutdown_timeout passed").empty());
}

TEST_CASE("the log: handler failures before and after the upgrade, with the connection and the request") {
    captured_log log;
    duplex::app_options options;
    options.worker_threads = 1;
    options.logging.minimum_level = duplex::log_level::debug;
    options.logging.sink = log.sink();
    duplex::app app(options);
    app.use_websockets();
    app.map("/broken", [](duplex::http_context&) -> duplex::awaitable<void> {
        throw std::runtime_error("the database is down");
        co_return;
    });
    app.map("/ws-broken", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        std::string text;
        co_await ws.receive_message(text, 1024);
        throw std::logic_error("handler bug after the upgrade");
    });
    app.map("/ws-echo", [](duplex::http_context& ctx) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        std::string text;
        for (;;) {  // no try: a client that vanishes ends this handler with a websocket_error
            const auto r = co_await ws.receive_message(text, 1024);
            if (r.close_status) break;
        }
    });
    test::app_runner runner(app);
    runner.start();
    const auto port = runner.port();

    const auto response = http_get(port, "/broken?x=1");
    CHECK(response.starts_with("HTTP/1.1 500"));
    as_client([&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(port) + "/ws-broken");
        co_await ws.send("go");
        std::string text;
        std::error_code ended;
        try {
            co_await ws.receive_message(text, 1024);
        } catch (const duplex::websocket_error& e) {
            ended = e.code();
        }
        CHECK(ended == duplex::websocket_errc::connection_closed_prematurely);
        auto vanishing = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(port) + "/ws-echo");
        vanishing.abort();  // the peer leaves without a close handshake
        asio::steady_timer wait(co_await asio::this_coro::executor, 200ms);
        co_await wait.async_wait(duplex::use_awaitable);
    });
    runner.stop();

    const auto before_upgrade = log.find(duplex::log_level::error, "the database is down");
    REQUIRE(before_upgrade.size() == 1);
    CHECK(before_upgrade[0].find("request GET /broken?x=1 from 127.0.0.1:") != std::string::npos);
    CHECK(before_upgrade[0].find("(500)") != std::string::npos);
    const auto after_upgrade = log.find(duplex::log_level::error, "handler bug after the upgrade");
    REQUIRE(after_upgrade.size() == 1);
    CHECK(after_upgrade[0].find("WebSocket handler for GET /ws-broken from 127.0.0.1:") != std::string::npos);
    // A peer that vanished is the peer's doing: debug, not error.
    const auto vanished = log.find(duplex::log_level::debug, "WebSocket handler for GET /ws-echo");
    REQUIRE(vanished.size() == 1);
    CHECK(vanished[0].find("without completing the close handshake") != std::string::npos);
    CHECK(log.find(duplex::log_level::error, "/ws-echo").empty());
    CHECK(log.find(duplex::log_level::information, "1 worker thread").size() == 1);
}

TEST_CASE("the log: the default minimum level leaves debug out, and none silences the host") {
    for (const auto minimum : {duplex::log_level::information, duplex::log_level::none}) {
        captured_log log;
        duplex::app_options options;
        options.worker_threads = 1;
        options.logging.minimum_level = minimum;
        options.logging.sink = log.sink();
        options.shutdown_timeout = 200ms;
        duplex::app app(options);
        app.use_websockets();
        app.run([](duplex::http_context& ctx) -> duplex::awaitable<void> {
            auto ws = co_await ctx.websockets.accept_websocket();
            duplex::task_completion_source<> never;
            co_await never.task();  // holds the shutdown up until shutdown_timeout
        });
        test::app_runner runner(app);
        runner.start();
        as_client([&]() -> duplex::awaitable<void> {
                auto ws = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(runner.port()) + "/");
                auto vanished = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(runner.port()) + "/");
                vanished.abort();
        });
        runner.stop();
        if (minimum == duplex::log_level::none) {
            CHECK(log.lines.empty());
        } else {
            for (auto& [level, line] : log.lines) CHECK(level >= duplex::log_level::information);
            CHECK(log.find(duplex::log_level::warning, "shutdown_timeout passed with").size() == 1);
        }
    }
}

TEST_CASE("query parameters as a handler sees them: decoded, repeated, iterated") {
    duplex::app_options options;
    options.worker_threads = 1;
    options.logging.minimum_level = duplex::log_level::none;
    duplex::app app(options);
    app.run([](duplex::http_context& ctx) -> duplex::awaitable<void> {
        std::string body = "room=" + ctx.request.query("room").value_or("(none)") + "\n";
        for (const auto& tag : ctx.request.query.all("tag")) body += "tag=" + tag + "\n";
        for (const auto& [name, value] : ctx.request.query) body += "[" + name + "]=[" + value + "]\n";
        ctx.response.body = body;
        co_return;
    });
    test::app_runner runner(app);
    runner.start();
    const auto response = http_get(runner.port(), "/chat?room=caf%C3%A9+au+lait&tag=a&Tag=b%26c&bad=%zz");
    CHECK(response.find("room=caf\xC3\xA9 au lait\n") != std::string::npos);
    CHECK(response.find("tag=a\ntag=b&c\n") != std::string::npos);
    CHECK(response.find("[bad]=[%zz]\n") != std::string::npos);
    const auto none = http_get(runner.port(), "/chat");
    CHECK(none.find("room=(none)\n") != std::string::npos);
}
