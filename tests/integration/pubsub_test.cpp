// Topics and publish with duplex::websocket (the ASP.NET-shaped API) through pubsub::subscriber, in
// an app host on loopback: each subscriber gets every message of its topic once and in each
// publisher's order, nothing of other topics, with and without permessage-deflate (several window
// sizes in one topic, the subscriber's own compressed messages in between); a subscriber that stops
// reading loses messages (counted) or is closed with 1008, and never holds the others up; on_drain;
// topics come and go with their subscribers. (The threads suite publishes from several threads at
// once; tests/app/chat_test.py drives the chat example with python3-websockets.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include "app_runner.hpp"

#include <atomic>
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// The message `publisher` publishes as its number `sequence` to `topic`: compressible text, 100 B or
// 5,000 B (below and above the size up to which shared frames are copied rather than referenced), or
// (publisher 0's every seventh) binary noise that deflate cannot shrink (sent uncompressed to everyone).
bool is_noise(int publisher, int sequence) { return publisher == 0 && sequence % 7 == 6; }

std::string published(const std::string& topic, int publisher, int sequence) {
    std::string text = "pub:" + topic + ":" + std::to_string(publisher) + ":" + std::to_string(sequence) + ":";
    const std::size_t size = sequence % 2 == 0 ? 100 : 5000;
    if (is_noise(publisher, sequence)) {
        std::uint32_t x = static_cast<std::uint32_t>(sequence * 2654435761u + publisher);
        while (text.size() < size) {
            x = x * 1664525u + 1013904223u;
            text.push_back(static_cast<char>(x >> 24));
        }
    } else {
        while (text.size() < size) text += "the quick brown fox jumps over the lazy dog " + std::to_string(sequence);
        text.resize(size);
    }
    return text;
}

// Publisher 0's message `sequence` to `topic`, from wherever this is called.
duplex::pubsub::publish_result publish(const duplex::pubsub::topic_registry& topics, const std::string& topic,
                                       int sequence) {
    const auto message = published(topic, 0, sequence);
    return topics.publish(topic, asio::buffer(message),
                          is_noise(0, sequence) ? duplex::message_type::binary : duplex::message_type::text);
}

struct parsed_publication {
    std::string topic;
    int publisher = -1, sequence = -1;
};
parsed_publication parse_publication(const std::string& text) {
    parsed_publication p;
    const auto a = text.find(':', 4), b = text.find(':', a + 1), c = text.find(':', b + 1);
    p.topic = text.substr(4, a - 4);
    p.publisher = std::stoi(text.substr(a + 1, b - a - 1));
    p.sequence = std::stoi(text.substr(b + 1, c - b - 1));
    return p;
}

// The test's app: at /sub?topic=T a handler that accepts (compression allowed), subscribes the socket
// to T with the given backpressure, and then, for each message it receives: "echo:…" is sent back
// (with the socket's own compressor, between the shared frames), "publish:…" is published to T by this
// socket (to everyone, itself included), "others:…" to everyone else in T.
struct pubsub_app {
    explicit pubsub_app(duplex::backpressure_options limit = {}, unsigned threads = 1) : app(make_options(threads)) {
        app.use_websockets();
        app.map("/sub", [this, limit](duplex::http_context& ctx) -> duplex::awaitable<void> {
            duplex::accept_context accept;
            accept.dangerous_enable_compression = true;
            auto ws = co_await ctx.websockets.accept_websocket(accept);
            const std::string topic(ctx.request.query("topic").value_or("none"));
            duplex::pubsub::subscriber_options options;
            options.backpressure = limit;
            options.on_drain = [this] { ++drains; };
            duplex::pubsub::subscriber member(app.topics(), ws, std::move(options));
            member.subscribe(topic);
            std::string text;
            try {
                for (;;) {
                    const auto r = co_await ws.receive_message(text, 1 << 20);
                    if (r.close_status) {
                        co_await ws.close(*r.close_status);
                        break;
                    }
                    if (text.starts_with("echo:")) co_await ws.send(text);
                    else if (text.starts_with("publish:")) app.topics().publish(topic, text.substr(8));
                    else if (text.starts_with("others:")) member.publish_to_others(topic, asio::buffer(text.substr(7)), duplex::message_type::text);
                }
            } catch (const duplex::websocket_error&) {
            }
            dropped_at_end += member.dropped();
        });
        runner.start();
    }

    static duplex::app_options make_options(unsigned threads) {
        duplex::app_options options;
        options.worker_threads = threads;
        options.logging.minimum_level = duplex::log_level::none;
        options.shutdown_timeout = 2s;
        return options;
    }

    std::string url(const std::string& topic) const { return "ws://127.0.0.1:" + std::to_string(runner.port()) + "/sub?topic=" + topic; }

    duplex::app app;
    test::app_runner runner{app};
    std::atomic<int> drains{0};
    std::atomic<std::uint64_t> dropped_at_end{0};
};

// The clients' side of a test, bounded.
template <class F>
void as_client(F body) {
    test::as_client(std::move(body), 60s);
}

duplex::awaitable<void> pause(std::chrono::milliseconds d) {
    asio::steady_timer wait(co_await asio::this_coro::executor, d);
    co_await wait.async_wait(duplex::use_awaitable);
}

// Waits (bounded) until `topic` has `count` subscribers.
duplex::awaitable<void> wait_for_subscribers(const duplex::pubsub::topic_registry& topics, const std::string& topic,
                                             std::size_t count) {
    for (int i = 0; i < 1000 && topics.subscriber_count(topic) != count; ++i) co_await pause(10ms);
    REQUIRE(topics.subscriber_count(topic) == count);
}

// Runs the coroutines side by side on the calling coroutine's executor and waits for all of them; the
// first failure is rethrown.
duplex::awaitable<void> run_all(std::vector<std::function<duplex::awaitable<void>()>> bodies) {
    auto state = std::make_shared<std::pair<std::size_t, std::exception_ptr>>(0, nullptr);
    // Not `co_spawn(co_await this_coro::executor, body(), …)`: with the awaitable temporary and the
    // co_await in one full expression (GCC 12), this wait hung in 3 of about 10 runs, never in 27 since.
    const auto executor = co_await asio::this_coro::executor;
    for (auto& body : bodies)
        asio::co_spawn(executor, body(), [state](std::exception_ptr e) {
            ++state->first;
            if (e && !state->second) state->second = e;
        });
    while (state->first != bodies.size()) co_await pause(2ms);
    if (state->second) std::rethrow_exception(state->second);
}

// Publishes messages 0 … count − 1 from the calling thread in rounds of `round`, each round once every
// reader has received the one before, so that a reader that keeps up never has more than a round
// queued: publish itself never waits for anyone, and a publisher far faster than its readers would
// find them at their backpressure limit. Gives up on readers that stop (the test then fails).
template <class Publish>
void publish_in_rounds(int count, int round, const std::vector<std::atomic<int>>& received, Publish publish) {
    const auto deadline = std::chrono::steady_clock::now() + 50s;
    for (int i = 0; i < count; i += round) {
        const int end = std::min(count, i + round);
        for (int j = i; j < end; ++j) publish(j);
        for (const auto& r : received)
            while (r.load() < end && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(200us);
    }
}

duplex::connect_options deflate_offer(int server_window, bool server_takeover) {
    duplex::connect_options options;
    duplex::deflate::options offer;
    offer.server_max_window_bits = server_window;
    offer.disable_server_context_takeover = !server_takeover;
    options.dangerous_deflate = offer;
    return options;
}

}  // namespace

TEST_CASE("publish: every subscriber gets its topic's messages once, in order, with and without permessage-deflate") {
    pubsub_app server;
    auto& topics = server.app.topics();
    // Subscribers of "a" with every kind of compression (none; windows 15, 10 and 8, with and without
    // the server's context takeover), and two of "b".
    std::vector<duplex::connect_options> a_offers{duplex::connect_options{}, deflate_offer(15, true),
                                                  deflate_offer(10, true), deflate_offer(8, false),
                                                  deflate_offer(15, false)};
    constexpr int foreign_messages = 200, own_messages = 20;
    as_client([&]() -> duplex::awaitable<void> {
        std::vector<duplex::websocket> a, b;
        for (const auto& offer : a_offers) a.push_back(co_await duplex::connect(server.url("a"), offer));
        b.push_back(co_await duplex::connect(server.url("b"), deflate_offer(15, true)));
        b.push_back(co_await duplex::connect(server.url("b")));
        co_await wait_for_subscribers(topics, "a", a.size());
        co_await wait_for_subscribers(topics, "b", b.size());
        CHECK(topics.topic_count() == 2);

        // Publisher 0 publishes from another thread to both topics; meanwhile every subscriber of "a"
        // asks for echoes of its own (compressed by its own compressor, between the shared frames),
        // one after the other, and subscriber a[1] has the server publish to "a" as publisher 1, on the
        // socket's executor.
        std::vector<std::atomic<int>> received(a.size() + b.size());  // publisher 0's messages, per reader
        std::atomic<std::size_t> foreign_queued{0}, foreign_skipped{0};
        std::jthread publisher([&] {
            publish_in_rounds(foreign_messages, 8, received, [&](int i) {
                for (const std::string topic : {"a", "b"}) {
                    const auto r = publish(topics, topic, i);
                    foreign_queued += r.queued;
                    foreign_skipped += r.skipped;
                }
            });
        });
        const auto echo = [](std::size_t client, int j) {
            std::string text = "echo:" + std::to_string(client) + ":" + std::to_string(j) + ":";
            while (text.size() < 3000) text += "the quick brown fox jumps over the lazy dog " + std::to_string(j);
            return text;
        };
        const auto ask = [&](std::size_t c, int j) -> duplex::awaitable<void> {
            co_await a[c].send(echo(c, j));
            if (c == 1) co_await a[1].send("publish:" + published("a", 1, j));
        };

        // Every subscriber of "a": publisher 0's 200 and publisher 1's 20, each publisher's in order,
        // and its own 20 echoes in order; the subscribers of "b": publisher 0's 200 of "b". All read at
        // once.
        std::vector<std::function<duplex::awaitable<void>()>> readers;
        for (std::size_t c = 0; c < a.size(); ++c) {
            readers.push_back([&, c]() -> duplex::awaitable<void> {
                std::string text;
                std::map<int, int> next;  // publisher -> next sequence number expected
                int echoes = 0;
                co_await ask(c, 0);
                while (next[0] < foreign_messages || next[1] < own_messages || echoes < own_messages) {
                    const auto r = co_await a[c].receive_message(text, 1 << 20);
                    REQUIRE_FALSE(r.close_status);
                    if (text.starts_with("echo:")) {
                        REQUIRE(text == echo(c, echoes));
                        if (++echoes < own_messages) co_await ask(c, echoes);
                        continue;
                    }
                    const auto p = parse_publication(text);
                    INFO("subscriber ", c, " of a, publisher ", p.publisher);
                    REQUIRE(p.topic == "a");
                    REQUIRE(p.sequence == next[p.publisher]);
                    REQUIRE(text == published("a", p.publisher, p.sequence));
                    CHECK(r.message_type == (is_noise(p.publisher, p.sequence) ? duplex::message_type::binary
                                                                                : duplex::message_type::text));
                    ++next[p.publisher];
                    if (p.publisher == 0) ++received[c];
                }
            });
        }
        for (std::size_t c = 0; c < b.size(); ++c) {
            readers.push_back([&, c]() -> duplex::awaitable<void> {
                std::string text;
                for (int i = 0; i < foreign_messages; ++i) {
                    co_await b[c].receive_message(text, 1 << 20);
                    const auto p = parse_publication(text);
                    REQUIRE(p.topic == "b");
                    REQUIRE(p.sequence == i);
                    REQUIRE(text == published("b", 0, i));
                    ++received[a.size() + c];
                }
            });
        }
        co_await run_all(std::move(readers));
        publisher.join();
        CHECK(foreign_queued == foreign_messages * (a.size() + b.size()));
        CHECK(foreign_skipped == 0);

        // Nothing else came: a round trip of an echo finds nothing before it.
        std::string text;
        for (std::size_t c = 0; c < a.size(); ++c) {
            co_await a[c].send(echo(c, own_messages));
            co_await a[c].receive_message(text, 1 << 20);
            CHECK(text == echo(c, own_messages));
        }
        for (auto& ws : a) co_await ws.close(duplex::close_status::normal_closure, "");
        for (auto& ws : b) co_await ws.close(duplex::close_status::normal_closure, "");
    });
    // Topics go with their last subscriber.
    for (int i = 0; i < 500 && topics.topic_count() != 0; ++i) std::this_thread::sleep_for(10ms);
    CHECK(topics.topic_count() == 0);
    CHECK(topics.subscriber_count("a") == 0);
    const auto nobody = topics.publish("a", "anyone?");
    CHECK(nobody.queued == 0);
    CHECK(nobody.skipped == 0);
}

TEST_CASE("publish_to_others: every subscriber but the publishing socket") {
    pubsub_app server;
    auto& topics = server.app.topics();
    as_client([&]() -> duplex::awaitable<void> {
        auto first = co_await duplex::connect(server.url("room"), deflate_offer(15, true));
        auto second = co_await duplex::connect(server.url("room"));
        co_await wait_for_subscribers(topics, "room", 2);
        co_await first.send("others:from first");
        co_await first.send("echo:marker");
        std::string text;
        co_await second.receive_message(text, 1024);
        CHECK(text == "from first");
        co_await first.receive_message(text, 1024);
        CHECK(text == "echo:marker");  // first did not get its own message
        co_await first.close(duplex::close_status::normal_closure, "");
        co_await second.close(duplex::close_status::normal_closure, "");
    });
}

using test::silent_client;

TEST_CASE("a subscriber that stops reading loses messages, counted, and never holds the others up; on_drain when it catches up") {
    duplex::backpressure_options limit;
    limit.max_backpressure_bytes = 32 * 1024;
    limit.policy = duplex::backpressure_policy::drop_message;
    pubsub_app server(limit);
    auto& topics = server.app.topics();
    // 1,000 messages of 5,000 B: more than the kernel's buffers and the limit hold for a silent one.
    constexpr int readers = 8, silent_count = 2, messages = 1000;
    as_client([&]() -> duplex::awaitable<void> {
        std::vector<duplex::websocket> reading;
        for (int i = 0; i < readers; ++i) reading.push_back(co_await duplex::connect(server.url("feed")));
        std::vector<silent_client> silent(silent_count);
        for (auto& s : silent) co_await s.connect(server.runner.port(), "/sub?topic=feed");
        co_await wait_for_subscribers(topics, "feed", readers + silent_count);

        // Published from another thread, while the readers read here, all at once.
        std::vector<std::atomic<int>> received(readers);
        std::atomic<std::size_t> skipped{0};
        std::jthread publisher([&] {
            publish_in_rounds(messages, 4, received, [&](int i) {  // 4 x 5,000 B a round: below the limit
                skipped += publish(topics, "feed", 2 * i + 1).skipped;
            });
        });
        std::vector<std::function<duplex::awaitable<void>()>> bodies;
        for (int r = 0; r < readers; ++r) {
            bodies.push_back([&, r]() -> duplex::awaitable<void> {
                std::string text;
                for (int i = 0; i < messages; ++i) {
                    co_await reading[r].receive_message(text, 1 << 20);
                    REQUIRE(parse_publication(text).sequence == 2 * i + 1);
                    ++received[r];
                }
            });
        }
        co_await run_all(std::move(bodies));
        publisher.join();
        // Every reader got every message; the silent ones were skipped.
        CHECK(skipped > 0);

        // A silent one reads again: what it gets is in order, with gaps, and once its queue has drained
        // (on_drain) it takes messages again.
        constexpr int after_drain = 2 * messages + 1;
        std::vector<int> got;
        bool caught_up = false;
        asio::co_spawn(co_await asio::this_coro::executor, [&]() -> duplex::awaitable<void> {
            std::string text;
            for (;;) {
                const auto r = co_await silent[0].ws->receive_message(text, 1 << 20);
                REQUIRE_FALSE(r.close_status);
                got.push_back(parse_publication(text).sequence);
                if (got.back() == after_drain) break;
            }
            caught_up = true;
        }, asio::detached);
        // The message after the drain: published until it arrives (while the silent one was still
        // catching up, a publish may find its queue full).
        for (int i = 0; i < 200 && !caught_up; ++i) {
            publish(topics, "feed", after_drain);
            co_await pause(50ms);
        }
        REQUIRE(caught_up);
        for (int i = 0; i < 1000 && server.drains == 0; ++i) co_await pause(10ms);
        CHECK(server.drains >= 1);
        CHECK(std::is_sorted(got.begin(), got.end()));
        CHECK(got.size() < static_cast<std::size_t>(messages));
        for (auto& ws : reading) co_await ws.close(duplex::close_status::normal_closure, "");
        for (auto& s : silent) s.ws->abort();
    });
    server.runner.stop();
    CHECK(server.dropped_at_end >= 2);
}

TEST_CASE("backpressure_policy::close_connection: a subscriber past its limit is closed with 1008") {
    duplex::backpressure_options limit;
    limit.max_backpressure_bytes = 16 * 1024;
    limit.policy = duplex::backpressure_policy::close_connection;
    pubsub_app server(limit);
    auto& topics = server.app.topics();
    as_client([&]() -> duplex::awaitable<void> {
        auto reader = co_await duplex::connect(server.url("feed"));
        silent_client silent;
        co_await silent.connect(server.runner.port(), "/sub?topic=feed");
        co_await wait_for_subscribers(topics, "feed", 2);
        constexpr int messages = 1000;
        std::vector<std::atomic<int>> received(1);
        std::jthread publisher([&] {
            publish_in_rounds(messages, 2, received, [&](int i) {  // 2 x 5,000 B a round: below the limit
                publish(topics, "feed", 2 * i + 1);
            });
        });
        std::string text;
        for (int i = 0; i < messages; ++i) {
            const auto r = co_await reader.receive_message(text, 1 << 20);
            REQUIRE_FALSE(r.close_status);
            REQUIRE(parse_publication(text).sequence == 2 * i + 1);
            ++received[0];
        }
        publisher.join();
        // The silent one, reading at last, finds messages in order and then the close 1008.
        int last = -1;
        for (;;) {
            const auto r = co_await silent.ws->receive_message(text, 1 << 20);
            if (r.close_status) {
                CHECK(*r.close_status == duplex::close_status::policy_violation);
                break;
            }
            const int sequence = parse_publication(text).sequence;
            CHECK(sequence > last);
            last = sequence;
        }
        CHECK(last < 2 * messages - 1);
        // It is gone from the topic; the reader stays.
        co_await wait_for_subscribers(topics, "feed", 1);
        co_await reader.close(duplex::close_status::normal_closure, "");
    });
}
