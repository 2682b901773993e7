// pubsub::redis_backplane between nodes of one test process, through a real redis-server started here:
// routing by channel (a node subscribes only while it has a topic open), no echo of a node's own
// messages, each publisher's order across nodes, losses counted while Redis is down, clear start-up
// errors. (tests/cluster/cluster_test.py runs it end to end: three duplex-chat nodes behind nginx.)
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <duplex/pubsub/redis_backplane.hpp>

#include "redis_server.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using duplex::pubsub::redis_backplane;

namespace {

template <class Predicate>
bool eventually(Predicate p, std::chrono::milliseconds within = 5s) {
    const auto give_up = std::chrono::steady_clock::now() + within;
    while (!p()) {
        if (std::chrono::steady_clock::now() > give_up) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// Stands for a node's topic registry: records what the backplane delivers.
struct recorder final : duplex::pubsub::backplane_receiver {
    struct delivery {
        std::string topic, payload;
        duplex::message_type type;
        duplex::message_flags flags;
    };
    std::mutex mutex;
    std::vector<delivery> got;

    void deliver_from_backplane(std::string_view topic, std::span<const std::byte> payload, duplex::message_type type,
                                duplex::message_flags flags) override {
        std::lock_guard lock(mutex);
        got.push_back({std::string(topic), std::string(reinterpret_cast<const char*>(payload.data()), payload.size()), type, flags});
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return got.size();
    }
    std::vector<delivery> copy() {
        std::lock_guard lock(mutex);
        return got;
    }
};

struct node {
    std::shared_ptr<redis_backplane> backplane;
    std::shared_ptr<recorder> receiver = std::make_shared<recorder>();
    explicit node(const std::string& url) : backplane(redis_backplane::connect(url, quiet())) {
        backplane->attach(receiver);
    }
    static duplex::pubsub::redis_backplane_options quiet() {
        duplex::pubsub::redis_backplane_options o;
        o.redis.reconnect_wait_max = 200ms;
        o.redis.log = [](duplex::log_level, std::string_view) {};
        return o;
    }
    void publish(std::string_view topic, std::string_view text, duplex::message_type type = duplex::message_type::text,
                 duplex::message_flags flags = duplex::message_flags::none) {
        backplane->publish(topic, {reinterpret_cast<const std::byte*>(text.data()), text.size()}, type, flags);
    }
};

std::size_t numsub(const test::redis_server& server, const std::string& channel) {
    // *2 $len channel :N — the reply's last line holds N; read it through PUBSUB NUMSUB's first line only
    // would give "*2", so ask for the count with a command whose reply is an integer instead.
    const auto reply = server.command({"EVAL", "return redis.call('PUBSUB', 'NUMSUB', KEYS[1])[2]", "1", channel});
    return reply.starts_with(":") ? std::stoul(reply.substr(1)) : 9999;
}

}  // namespace

TEST_CASE("redis backplane: a node subscribes to a topic's channel only while it has the topic open") {
    test::redis_server server;
    node a(server.url()), b(server.url()), c(server.url());
    b.backplane->topic_opened("room:1");
    c.backplane->topic_opened("room:2");
    REQUIRE(eventually([&] { return numsub(server, "duplex:room:1") == 1 && numsub(server, "duplex:room:2") == 1; }));

    a.publish("room:1", "to b");
    a.publish("room:2", "to c", duplex::message_type::binary, duplex::message_flags::disable_compression);
    a.publish("room:3", "to nobody");
    REQUIRE(eventually([&] { return b.receiver->size() == 1 && c.receiver->size() == 1; }));
    std::this_thread::sleep_for(100ms);
    CHECK(b.receiver->size() == 1);
    CHECK(c.receiver->size() == 1);
    CHECK(a.receiver->size() == 0);
    const auto to_b = b.receiver->copy().at(0);
    CHECK(to_b.topic == "room:1");
    CHECK(to_b.payload == "to b");
    CHECK(to_b.type == duplex::message_type::text);
    const auto to_c = c.receiver->copy().at(0);
    CHECK(to_c.payload == "to c");
    CHECK(to_c.type == duplex::message_type::binary);
    CHECK(to_c.flags == duplex::message_flags::disable_compression);

    // A node's own message, echoed by Redis because it is subscribed too, is not delivered again.
    b.publish("room:1", "from b");
    a.backplane->topic_opened("room:1");
    REQUIRE(eventually([&] { return numsub(server, "duplex:room:1") == 2; }));
    b.publish("room:1", "from b again");
    // "from b" may reach a too: its PUBLISH and a's SUBSCRIBE travel on different connections.
    REQUIRE(eventually([&] { return !a.receiver->copy().empty() && a.receiver->copy().back().payload == "from b again"; }));
    std::this_thread::sleep_for(100ms);
    CHECK(b.receiver->size() == 1);  // "to b" only: neither of its own came back to it
    CHECK(a.receiver->size() <= 2);

    b.backplane->topic_closed("room:1");
    REQUIRE(eventually([&] { return numsub(server, "duplex:room:1") == 1; }));
    a.backplane->topic_closed("room:1");
    REQUIRE(eventually([&] { return numsub(server, "duplex:room:1") == 0; }));
}

TEST_CASE("redis backplane: each publisher's messages reach the other nodes in order, exactly once") {
    test::redis_server server;
    node a(server.url()), b(server.url()), c(server.url());
    b.backplane->topic_opened("t");
    c.backplane->topic_opened("t");
    REQUIRE(eventually([&] { return numsub(server, "duplex:t") == 2; }));
    constexpr int per_thread = 5000;
    std::vector<std::thread> publishers;
    for (int t = 0; t < 4; ++t)
        publishers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) a.publish("t", std::to_string(t) + ":" + std::to_string(i));
        });
    for (auto& p : publishers) p.join();
    for (auto* n : {&b, &c}) {
        REQUIRE(eventually([&] { return n->receiver->size() == 4 * per_thread; }, 10s));
        std::map<int, int> next;
        for (const auto& d : n->receiver->copy()) {
            const auto colon = d.payload.find(':');
            const int t = std::stoi(d.payload.substr(0, colon)), i = std::stoi(d.payload.substr(colon + 1));
            CHECK(i == next[t]);
            next[t] = i + 1;
        }
    }
    CHECK(a.backplane->lost() == 0);
}

TEST_CASE("redis backplane: Redis killed and restarted — lost publishes are counted, then delivery resumes") {
    test::redis_server server;
    node a(server.url()), b(server.url());
    b.backplane->topic_opened("t");
    REQUIRE(eventually([&] { return numsub(server, "duplex:t") == 1; }));
    server.kill_now();
    REQUIRE(eventually([&] { return !a.backplane->publisher().connected(); }));
    for (int i = 0; i < 20; ++i) a.publish("t", "lost");
    CHECK(a.backplane->lost() == 20);
    server.start();
    REQUIRE(eventually([&] { return numsub(server, "duplex:t") == 1 && a.backplane->publisher().connected(); }));
    a.publish("t", "after");
    REQUIRE(eventually([&] { return b.receiver->size() == 1; }));
    CHECK(b.receiver->copy().at(0).payload == "after");
}

TEST_CASE("redis backplane: a wrong password or an unreachable server is a clear error at start-up") {
    test::redis_server server({"--requirepass", "sesame"});
    try {
        node n("redis://:wrong@127.0.0.1:" + std::to_string(server.port()));
        FAIL("connected with a wrong password");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK_MESSAGE(what.find("WRONGPASS") != std::string::npos, what);
        CHECK_MESSAGE(what.find("authentication failed") != std::string::npos, what);
        CHECK_MESSAGE(what.find("wrong") == std::string::npos, what);  // the password is not repeated
    }
    const auto closed = test::free_port();
    try {
        node n("redis://127.0.0.1:" + std::to_string(closed));
        FAIL("connected to a closed port");
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        CHECK_MESSAGE(what.find("cannot connect to 127.0.0.1:" + std::to_string(closed)) != std::string::npos, what);
        CHECK_MESSAGE(what.find("refused") != std::string::npos, what);
    }
    node ok("redis://:sesame@127.0.0.1:" + std::to_string(server.port()));
    CHECK(ok.backplane->publisher().connected());
}
