// Publish from many threads at once: three threads of the test and every subscriber's own handler (on
// its strand of the app's 2 worker threads) publish to one topic while other connections subscribe and
// leave. Every subscriber gets every publisher's messages once, in that publisher's order. Part of the
// threads suite, which scripts/sanitizers.sh runs under ThreadSanitizer.
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include "../support/app_runner.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

std::string numbered(int publisher, int sequence) {
    return std::to_string(publisher) + ":" + std::to_string(sequence) + ":padding-padding-padding";
}

std::pair<int, int> publisher_and_sequence(const std::string& text) {
    const auto colon = text.find(':');
    return {std::stoi(text.substr(0, colon)), std::stoi(text.substr(colon + 1, text.find(':', colon + 1) - colon - 1))};
}

}  // namespace

TEST_CASE("threads: publish from 3 threads and from 6 handlers on 2 worker threads while others subscribe and leave") {
    constexpr int subscribers = 6, foreign_publishers = 3, foreign_messages = 200, own_messages = 100;
    // At most 1,200 messages of ~30 B per subscriber: below the default backpressure limit whatever the
    // scheduling, so nothing may be dropped.
    duplex::app_options options;
    options.worker_threads = 2;
    options.logging.minimum_level = duplex::log_level::none;
    duplex::app app(options);
    app.use_websockets();
    // Dropped at a steady subscriber's backpressure limit: must stay 0. (publish()'s own `skipped` from a
    // handler cannot be asked to be 0 here: for subscribers on the publisher's thread it also counts
    // churning members that are closing, which is right.)
    std::atomic<std::uint64_t> steady_dropped{0};
    app.use([&](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        const bool churn = ctx.request.path == "/churn";
        const int id = std::stoi(std::string(ctx.request.query("id").value_or("0")));
        duplex::pubsub::subscriber member(app.topics(), ws);
        // From another thread: carried to the socket's executor.
        std::thread([&member] { member.subscribe("t"); }).join();
        std::string text;
        try {
            for (;;) {
                const auto r = co_await ws.receive_message(text, 1 << 16);
                if (r.close_status) {
                    co_await ws.close(*r.close_status);
                    break;
                }
                if (!churn && text == "go")
                    for (int i = 0; i < own_messages; ++i) app.topics().publish("t", numbered(10 + id, i));
            }
        } catch (const duplex::websocket_error&) {
        }
        if (!churn) steady_dropped += member.dropped();
    });
    test::app_runner runner(app);
    runner.start();
    const auto base = "ws://127.0.0.1:" + std::to_string(runner.port());
    auto& topics = app.topics();

    asio::io_context clients(1);
    std::vector<std::map<int, std::vector<int>>> received(subscribers);
    std::atomic<int> connected{0}, finished{0};
    std::exception_ptr failure;
    const auto fail = [&](std::exception_ptr e) {
        if (e && !failure) failure = e;
    };
    // The steady subscribers are all subscribed (before any churn, so the count is theirs alone).
    std::atomic<bool> steady_ready{false}, stop_churn{false};
    for (int s = 0; s < subscribers; ++s) {
        asio::co_spawn(clients, [&, s]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(base + "/steady?id=" + std::to_string(s));
            ++connected;
            asio::steady_timer wait(clients);
            while (!steady_ready) {
                wait.expires_after(5ms);
                co_await wait.async_wait(duplex::use_awaitable);
            }
            co_await ws.send("go");
            std::string text;
            const int total = foreign_publishers * foreign_messages + subscribers * own_messages;
            for (int got = 0; got < total; ++got) {
                const auto r = co_await ws.receive_message(text, 1 << 16);
                REQUIRE_FALSE(r.close_status);
                const auto [publisher, sequence] = publisher_and_sequence(text);
                received[s][publisher].push_back(sequence);
            }
            co_await ws.close(duplex::close_status::normal_closure, "");
            ++finished;
        }, fail);
    }
    // Connections that subscribe and leave again and again meanwhile.
    asio::co_spawn(clients, [&]() -> duplex::awaitable<void> {
        asio::steady_timer wait(clients);
        while (topics.subscriber_count("t") < subscribers) {
            wait.expires_after(5ms);
            co_await wait.async_wait(duplex::use_awaitable);
        }
        steady_ready = true;
        for (int i = 0; !stop_churn; ++i) {
            auto ws = co_await duplex::connect(base + "/churn?id=" + std::to_string(100 + i));
            co_await ws.close(duplex::close_status::normal_closure, "");
        }
    }, fail);

    std::vector<std::jthread> publishers;
    std::atomic<std::size_t> foreign_skipped{0};
    std::thread client_thread([&] { clients.run_for(120s); });
    while (!steady_ready && !failure) std::this_thread::sleep_for(5ms);
    for (int p = 0; p < foreign_publishers; ++p)
        publishers.emplace_back([&, p] {
            for (int i = 0; i < foreign_messages; ++i) foreign_skipped += topics.publish("t", numbered(p, i)).skipped;
        });
    publishers.clear();  // joined
    while (finished < subscribers && !failure) std::this_thread::sleep_for(10ms);
    stop_churn = true;
    client_thread.join();
    if (failure) std::rethrow_exception(failure);
    runner.stop();

    // From other threads a subscriber counts as skipped only at its backpressure limit.
    CHECK(foreign_skipped == 0);
    CHECK(steady_dropped == 0);
    for (int s = 0; s < subscribers; ++s) {
        CHECK(received[s].size() == foreign_publishers + subscribers);
        for (const auto& [publisher, sequences] : received[s]) {
            INFO("subscriber ", s, ", publisher ", publisher);
            const int expected = publisher < 10 ? foreign_messages : own_messages;
            REQUIRE(sequences.size() == static_cast<std::size_t>(expected));
            for (int i = 0; i < expected; ++i) REQUIRE(sequences[static_cast<std::size_t>(i)] == i);
        }
    }
    CHECK(topics.topic_count() == 0);
}
