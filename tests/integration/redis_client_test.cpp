// duplex::redis's publisher and subscriber against a real redis-server started here: delivery in
// order, AUTH (password and ACL user) and SELECT, clear errors at the first attempt, reconnection and
// resubscription after CLIENT KILL and after a SIGKILL and restart, and the health check under CLIENT PAUSE.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <duplex/redis/publisher.hpp>
#include <duplex/redis/subscriber.hpp>

#include "redis_server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace redis = duplex::redis;

namespace {

// An io_context on its own thread, as the Redis backplane runs it.
struct loop {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::thread thread{[this] { io.run(); }};
    ~loop() {
        guard.reset();
        thread.join();
    }
};

template <class Predicate>
bool eventually(Predicate p, std::chrono::milliseconds within = 5s) {
    const auto give_up = std::chrono::steady_clock::now() + within;
    while (!p()) {
        if (std::chrono::steady_clock::now() > give_up) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

struct first_attempt {
    std::promise<std::pair<std::error_code, std::string>> promise;
    redis::detail::link::first_attempt_handler handler() {
        return [this](std::error_code ec, const std::string& detail) { promise.set_value({ec, detail}); };
    }
    std::pair<std::error_code, std::string> get() {
        auto f = promise.get_future();
        REQUIRE(f.wait_for(10s) == std::future_status::ready);
        return f.get();
    }
};

struct inbox {
    std::mutex mutex;
    std::vector<std::string> messages;
    redis::subscriber::message_handler handler(std::string expected_channel) {
        return [this, expected_channel](std::string_view channel, std::string_view payload) {
            std::lock_guard lock(mutex);
            if (channel == expected_channel) messages.emplace_back(payload);
        };
    }
    std::size_t size() {
        std::lock_guard lock(mutex);
        return messages.size();
    }
    std::vector<std::string> copy() {
        std::lock_guard lock(mutex);
        return messages;
    }
};

redis::options quiet(std::vector<std::string>* log = nullptr, std::mutex* m = nullptr) {
    redis::options o;
    o.reconnect_wait_max = 200ms;
    o.log = [log, m](duplex::log_level, std::string_view line) {
        if (!log) return;
        std::lock_guard lock(*m);
        log->emplace_back(line);
    };
    return o;
}

// Publishes a numbered probe until one arrives (the subscription is live), then returns its number.
int probe_until_delivered(redis::publisher& p, inbox& in, const std::string& channel) {
    for (int i = 0; i < 400; ++i) {
        const auto before = in.size();
        p.publish(channel, "probe " + std::to_string(i));
        if (eventually([&] { return in.size() > before; }, 25ms)) return i;
    }
    FAIL("no probe arrived");
    return -1;
}

}  // namespace

TEST_CASE("redis: every message published arrives once, in order, as sent (binary, empty, 3 MB)") {
    test::redis_server server;
    loop l;
    inbox in;
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(server.url()), quiet(), in.handler("c1"));
    auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(server.url()), quiet());
    first_attempt fs, fp;
    s->subscribe("c1");
    s->subscribe("c2");
    s->start(fs.handler());
    p->start(fp.handler());
    CHECK_FALSE(fs.get().first);
    CHECK_FALSE(fp.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 2; }));
    s->unsubscribe("c2");
    REQUIRE(eventually([&] { return s->confirmed_count() == 1; }));

    std::vector<std::string> sent;
    const std::string large(3'000'000, 'x');  // grows the read buffer past what it keeps (1 MiB)
    for (int i = 0; i < 3000; ++i) {
        std::string m = "m" + std::to_string(i);
        if (i == 10) m = std::string("\0\r\n\xff", 4);
        if (i == 11) m.clear();
        if (i == 12) m = large;
        const std::string_view parts[] = {"h:", m};
        REQUIRE(p->publish("c1", parts));
        sent.push_back("h:" + m);
        p->publish("c2", "not subscribed");
    }
    REQUIRE(eventually([&] { return in.size() == sent.size(); }));
    CHECK(in.copy() == sent);
    CHECK(p->lost() == 0);
    CHECK(p->published() == 6000);
    p->stop();
    s->stop();
}

TEST_CASE("redis: AUTH with a password or an ACL user, SELECT, and clear errors at the first attempt") {
    test::redis_server server({"--requirepass", "right horse", "--user", "alice", "on", ">wonder", "~*", "&*", "+@all"});
    loop l;
    const auto attempt = [&](const std::string& url) {
        first_attempt f;
        auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(url), quiet());
        p->start(f.handler());
        auto outcome = f.get();
        p->stop();
        return outcome;
    };
    const auto base = "127.0.0.1:" + std::to_string(server.port());
    CHECK_FALSE(attempt("redis://:right%20horse@" + base).first);
    CHECK_FALSE(attempt("redis://alice:wonder@" + base + "/3").first);

    auto [ec, detail] = attempt("redis://:wrong@" + base);
    CHECK(ec == redis::errc::authentication_failed);
    CHECK_MESSAGE(detail.find("WRONGPASS") != std::string::npos, detail);
    std::tie(ec, detail) = attempt("redis://alice:nope@" + base);
    CHECK(ec == redis::errc::authentication_failed);
    std::tie(ec, detail) = attempt("redis://" + base);
    CHECK(ec == redis::errc::authentication_failed);
    CHECK_MESSAGE(detail.find("NOAUTH") != std::string::npos, detail);
    std::tie(ec, detail) = attempt("redis://alice:wonder@" + base + "/99");
    CHECK(ec == redis::errc::select_failed);
    CHECK_MESSAGE(detail.find("DB index") != std::string::npos, detail);

    const auto closed = test::free_port();
    std::tie(ec, detail) = attempt("redis://127.0.0.1:" + std::to_string(closed));
    CHECK(ec == asio::error::connection_refused);
    CHECK_MESSAGE(detail.find("cannot connect to 127.0.0.1:" + std::to_string(closed)) != std::string::npos, detail);
}

TEST_CASE("redis: CLIENT KILL TYPE pubsub — the subscriber reconnects and subscribes to every channel again") {
    test::redis_server server;
    loop l;
    inbox in;
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(server.url()), quiet(), in.handler("a"));
    auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(server.url()), quiet());
    for (const char* c : {"a", "b", "c"}) s->subscribe(c);
    first_attempt fs, fp;
    s->start(fs.handler());
    p->start(fp.handler());
    REQUIRE_FALSE(fs.get().first);
    REQUIRE_FALSE(fp.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 3; }));
    CHECK(server.command({"CLIENT", "KILL", "TYPE", "pubsub"}) == ":1");
    REQUIRE(eventually([&] { return s->connections() == 2 && s->confirmed_count() == 3; }));
    CHECK(server.command({"PUBSUB", "NUMSUB", "b"}).starts_with("*2"));
    const int probe = probe_until_delivered(*p, in, "a");
    CHECK(probe >= 0);
    // Everything after the probe arrives, in order.
    const auto before = in.size();
    for (int i = 0; i < 100; ++i) p->publish("a", "after " + std::to_string(i));
    REQUIRE(eventually([&] { return in.size() == before + 100; }));
    CHECK(in.copy().back() == "after 99");
    p->stop();
    s->stop();
}

TEST_CASE("redis: killed with SIGKILL and restarted — both connections come back, losses are counted") {
    test::redis_server server;
    loop l;
    inbox in;
    std::vector<std::string> log;
    std::mutex log_mutex;
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(server.url()), quiet(), in.handler("t"));
    auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(server.url()), quiet(&log, &log_mutex));
    s->subscribe("t");
    first_attempt fs, fp;
    s->start(fs.handler());
    p->start(fp.handler());
    REQUIRE_FALSE(fs.get().first);
    REQUIRE_FALSE(fp.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 1; }));

    server.kill_now();
    REQUIRE(eventually([&] { return !p->connected() && !s->connected(); }));
    for (int i = 0; i < 50; ++i) CHECK_FALSE(p->publish("t", "while down"));
    CHECK(p->lost() >= 50);
    const auto down_at = std::chrono::steady_clock::now();
    server.start();
    REQUIRE(eventually([&] { return p->connected() && s->confirmed_count() == 1; }));
    const auto back_after = std::chrono::steady_clock::now() - down_at;
    MESSAGE("reconnected and resubscribed "
            << std::chrono::duration_cast<std::chrono::milliseconds>(back_after).count() << " ms after the restart");
    CHECK(back_after < 3s);
    probe_until_delivered(*p, in, "t");
    const auto before = in.size();
    for (int i = 0; i < 100; ++i) CHECK(p->publish("t", std::to_string(i)));
    REQUIRE(eventually([&] { return in.size() == before + 100; }));
    for (const auto& m : in.copy()) CHECK(m != "while down");
    // Logged from the connection's executor, within a health check interval.
    CHECK(eventually([&] {
        std::lock_guard lock(log_mutex);
        for (const auto& line : log)
            if (line.find("messages lost (no connection to Redis)") != std::string::npos) return true;
        return false;
    }));
    p->stop();
    s->stop();
}

TEST_CASE("redis: the health check declares a silent server dead after twice the interval (CLIENT PAUSE)") {
    test::redis_server server;
    loop l;
    inbox in;
    auto o = quiet();
    o.health_check_interval = 200ms;
    o.connect_timeout = 500ms;
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(server.url()), o, in.handler("h"));
    s->subscribe("h");
    first_attempt fs;
    s->start(fs.handler());
    REQUIRE_FALSE(fs.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 1; }));
    // Idle: the PINGs keep it up.
    std::this_thread::sleep_for(1s);
    CHECK(s->connections() == 1);
    CHECK(server.command({"CLIENT", "PAUSE", "1500", "ALL"}) == "+OK");
    const auto paused_at = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return !s->connected(); }, 2s));
    const auto noticed = std::chrono::steady_clock::now() - paused_at;
    CHECK(noticed >= 300ms);
    CHECK(noticed < 1200ms);
    REQUIRE(eventually([&] { return s->connected() && s->confirmed_count() == 1; }, 5s));
    CHECK(s->connections() >= 2);
    s->stop();
}

TEST_CASE("redis: rediss:// over duplex::tls — verified against the CA, refused without it") {
    char folder[] = "/tmp/duplex-rediss-XXXXXX";
    REQUIRE(::mkdtemp(folder));
    const std::string dir = folder;
    const std::string make_certs = std::string(DUPLEX_SOURCE_DIR) + "/examples/tls_echo/make-certs.sh " + dir + " >/dev/null 2>&1";
    REQUIRE(std::system(make_certs.c_str()) == 0);
    const auto port = test::free_port();
    test::redis_server server(test::redis_server::tls_only(dir, port), port);
    const auto url = "rediss://127.0.0.1:" + std::to_string(port);
    loop l;
    inbox in;
    auto trusting = quiet();
    trusting.tls.ca_file = dir + "/ca.pem";
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(url), trusting, in.handler("secure"));
    auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(url), trusting);
    s->subscribe("secure");
    first_attempt fs, fp;
    s->start(fs.handler());
    p->start(fp.handler());
    CHECK_FALSE(fs.get().first);
    CHECK_FALSE(fp.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 1; }));
    for (int i = 0; i < 200; ++i) p->publish("secure", std::to_string(i));
    REQUIRE(eventually([&] { return in.size() == 200; }));
    CHECK(in.copy().back() == "199");
    p->stop();
    s->stop();

    first_attempt untrusted;
    auto stranger = redis::publisher::create(l.io.get_executor(), redis::parse_url(url), quiet());
    stranger->start(untrusted.handler());
    const auto [ec, detail] = untrusted.get();
    CHECK(ec == duplex::tls::errc::certificate_untrusted);
    CHECK_MESSAGE(detail.find("TLS handshake with 127.0.0.1:" + std::to_string(port) + " failed") != std::string::npos, detail);
    stranger->stop();
    std::system(("rm -rf " + dir).c_str());
}

TEST_CASE("redis: max_queued_bytes — a publisher whose server stopped reading drops and counts, never waits") {
    test::redis_server server;
    loop l;
    inbox in;
    std::vector<std::string> log;
    std::mutex log_mutex;
    auto o = quiet(&log, &log_mutex);
    o.max_queued_bytes = 64 * 1024;
    o.health_check_interval = 4s;  // the stop below (well under 8 s) is not to end the connection
    auto s = redis::subscriber::create(l.io.get_executor(), redis::parse_url(server.url()), quiet(), in.handler("q"));
    auto p = redis::publisher::create(l.io.get_executor(), redis::parse_url(server.url()), o);
    s->subscribe("q");
    first_attempt fs, fp;
    s->start(fs.handler());
    p->start(fp.handler());
    REQUIRE_FALSE(fs.get().first);
    REQUIRE_FALSE(fp.get().first);
    REQUIRE(eventually([&] { return s->confirmed_count() == 1; }));

    server.pause();
    const std::string message(1024, 'm');
    const auto started = std::chrono::steady_clock::now();
    std::size_t refused = 0;
    // Until the socket buffers are full and the queue reaches its limit (bounded: 256 MiB).
    for (int i = 0; i < 256 * 1024 && refused < 1000; ++i)
        if (!p->publish("q", message)) ++refused;
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(refused == 1000);
    CHECK(p->lost() == 1000);
    CHECK(took < 10s);  // never waited for the stopped server
    CHECK(p->connected());
    server.resume();
    CHECK(eventually([&] {
        std::lock_guard lock(log_mutex);
        for (const auto& line : log)
            if (line.find("messages lost (the publish queue was full)") != std::string::npos) return true;
        return false;
    }, 10s));
    // What was queued goes out once the server reads again, and so does what follows.
    const auto queued = p->published();
    REQUIRE(eventually([&] { return in.size() == queued; }, 20s));
    CHECK(p->publish("q", "after"));
    REQUIRE(eventually([&] { return in.size() == queued + 1; }));
    CHECK(in.copy().back() == "after");
    p->stop();
    s->stop();
}
