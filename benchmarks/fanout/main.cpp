// duplex-fanout-bench — cross-node fan-out through Redis beside single-node fan-out, in one run.
//
//   duplex-fanout-bench [--subscribers N] [--size BYTES] [--seconds S] [--rate PUBLISHES_PER_S] [--window W]
//                       [--redis-server PATH]
//
// Two set-ups, measured one after the other in this process:
//   single node   one duplex app (map_websocket, three worker threads) with 3×N subscribers; publish on it.
//   cross-node    four apps of one worker thread each, joined by pubsub::redis_backplane through a
//                 redis-server started here (free port on 127.0.0.1, nothing saved, ended by its PID):
//                 publish on the first, which has no subscribers, N subscribers on each of the three others.
// The subscribers are duplex clients on one thread of their own, reading whole messages. Each message
// carries its publish time (steady_clock), so the latency is measured in one clock.
//
// Two phases per set-up:
//   throughput   closed loop: publish while fewer than W (--window, 32) messages are on their way to the
//                slowest subscriber; deliveries per second over --seconds.
//   latency      open loop at --rate publishes per second (200) for --seconds: publish-to-delivery p50,
//                p99 and max over every delivery.
// Messages lost (at most once) are counted: deliveries expected minus made.
//
// Timings on a shared 2-core machine run four apps, the Redis thread of each node, redis-server and the
// clients on the same two cores: compare the two rows of one run, not runs of different days.
#include <duplex/duplex.hpp>
#include <duplex/pubsub/redis_backplane.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <csignal>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct settings {
    std::size_t subscribers_per_node = 100;
    std::size_t size = 64;
    double seconds = 3;
    double rate = 200;
    std::size_t window = 32;
    std::string redis_server = "/usr/bin/redis-server";
};

unsigned short free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

// redis-server for the run, ended by its PID.
class redis_process {
public:
    explicit redis_process(const std::string& path) : port_(free_port()) {
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, 1);
            const auto port = std::to_string(port_);
            ::execl(path.c_str(), path.c_str(), "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        for (int i = 0; i < 200; ++i) {
            asio::io_context io;
            asio::ip::tcp::socket s(io);
            std::error_code ec;
            s.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
            if (!ec) return;
            std::this_thread::sleep_for(25ms);
        }
        throw std::runtime_error("redis-server (" + path + ") did not start");
    }
    ~redis_process() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

private:
    unsigned short port_;
    pid_t pid_ = -1;
};

// One node: an app whose /sub WebSockets subscribe to "bench".
class node {
public:
    node(std::shared_ptr<duplex::pubsub::backplane> backplane, unsigned threads) {
        duplex::app_options o;
        o.worker_threads = threads;
        o.logging.minimum_level = duplex::log_level::warning;
        app_ = std::make_unique<duplex::app>(o);
        if (backplane) app_->topics().attach_backplane(std::move(backplane));
        duplex::websocket_handlers<int> handlers;
        handlers.on_open = [](duplex::websocket_session<int>& s, duplex::http_context&) { s.subscribe("bench"); };
        app_->use_websockets();
        app_->map_websocket("/sub", handlers);
        thread_ = std::thread([this] { app_->run("http://127.0.0.1:0"); });
        for (int i = 0; i < 1000 && app_->listening_urls().empty(); ++i) std::this_thread::sleep_for(10ms);
        if (app_->listening_urls().empty()) throw std::runtime_error("a node did not start");
    }
    ~node() {
        app_->stop();
        thread_.join();
    }
    std::string ws_url() const {
        auto url = app_->listening_urls().front();
        return "ws" + url.substr(4) + "/sub";
    }
    duplex::pubsub::topic_registry& topics() { return app_->topics(); }

private:
    std::unique_ptr<duplex::app> app_;
    std::thread thread_;
};

// The subscribers: duplex clients on a thread of their own.
class subscribers {
public:
    subscribers(const std::vector<std::string>& urls, std::size_t per_url) {
        for (const auto& url : urls)
            for (std::size_t i = 0; i < per_url; ++i) asio::co_spawn(io_, read(url), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
        const auto give_up = clock_type::now() + 30s;
        while (connected_.load() < urls.size() * per_url && clock_type::now() < give_up) std::this_thread::sleep_for(5ms);
        if (connected_.load() != urls.size() * per_url) throw std::runtime_error("subscribers did not connect");
    }
    ~subscribers() {
        io_.stop();
        thread_.join();
    }

    std::size_t count() const { return connected_.load(); }
    std::uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
    // Deliveries of the subscriber that has had the fewest.
    std::uint64_t slowest() {
        std::lock_guard lock(mutex_);
        std::uint64_t least = UINT64_MAX;
        for (const auto* c : per_client_) least = std::min<std::uint64_t>(least, c->load(std::memory_order_relaxed));
        return least;
    }
    void record_latency(bool on) { recording_.store(on); }
    std::vector<std::uint32_t> latencies_us() {
        std::lock_guard lock(mutex_);
        std::vector<std::uint32_t> all;
        for (auto& l : samples_) all.insert(all.end(), l->begin(), l->end());
        return all;
    }
    void clear_latencies() {
        std::lock_guard lock(mutex_);
        for (auto& l : samples_) l->clear();
    }

private:
    duplex::awaitable<void> read(std::string url) {
        auto ws = co_await duplex::connect(url);
        auto received = std::make_unique<std::atomic<std::uint64_t>>(0);
        auto samples = std::make_unique<std::vector<std::uint32_t>>();
        samples->reserve(1 << 16);
        auto* mine = received.get();
        auto* my_samples = samples.get();
        {
            std::lock_guard lock(mutex_);
            per_client_.push_back(mine);
            counters_.push_back(std::move(received));
            samples_.push_back(std::move(samples));
        }
        connected_.fetch_add(1);
        std::string message;
        for (;;) {
            const auto r = co_await ws.receive_message(message, 1 << 20);
            if (r.close_status) co_return;
            const auto now = clock_type::now().time_since_epoch().count();
            std::int64_t sent = 0;
            if (message.size() >= sizeof sent) std::memcpy(&sent, message.data(), sizeof sent);
            mine->fetch_add(1, std::memory_order_relaxed);
            delivered_.fetch_add(1, std::memory_order_relaxed);
            if (recording_.load(std::memory_order_relaxed)) {
                std::lock_guard lock(mutex_);
                my_samples->push_back(static_cast<std::uint32_t>((now - sent) / 1000));
            }
        }
    }

    asio::io_context io_{1};
    std::thread thread_;
    std::atomic<std::size_t> connected_{0};
    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<bool> recording_{false};
    std::mutex mutex_;
    std::vector<std::atomic<std::uint64_t>*> per_client_;
    std::vector<std::unique_ptr<std::atomic<std::uint64_t>>> counters_;
    std::vector<std::unique_ptr<std::vector<std::uint32_t>>> samples_;
};

struct result {
    double deliveries_per_second = 0;
    std::uint64_t throughput_lost = 0;
    double p50_us = 0, p99_us = 0, max_us = 0;
    std::uint64_t latency_lost = 0;
};

void publish_one(duplex::pubsub::topic_registry& topics, std::string& payload) {
    const std::int64_t now = clock_type::now().time_since_epoch().count();
    std::memcpy(payload.data(), &now, sizeof now);
    topics.publish("bench", asio::buffer(payload), duplex::message_type::binary);
}

result measure(duplex::pubsub::topic_registry& publish_on, subscribers& subs, const settings& s) {
    result r;
    std::string payload(std::max<std::size_t>(s.size, 8), 'x');
    const auto n = subs.count();
    const auto settle = [&](std::uint64_t expected) {
        const auto give_up = clock_type::now() + 5s;
        while (subs.delivered() < expected && clock_type::now() < give_up) std::this_thread::sleep_for(1ms);
    };

    // Throughput, closed loop.
    auto base = subs.delivered();
    auto slowest_base = subs.slowest();
    std::uint64_t published = 0;
    const auto start = clock_type::now();
    const auto stop_at = start + std::chrono::duration<double>(s.seconds);
    while (clock_type::now() < stop_at) {
        if (published - (subs.slowest() - slowest_base) < s.window) {
            publish_one(publish_on, payload);
            ++published;
        } else {
            std::this_thread::yield();
        }
    }
    settle(base + published * n);
    const auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    const auto made = subs.delivered() - base;
    r.deliveries_per_second = static_cast<double>(made) / elapsed;
    r.throughput_lost = published * n - made;

    // Latency, open loop at a fixed rate.
    subs.clear_latencies();
    subs.record_latency(true);
    base = subs.delivered();
    published = 0;
    const auto period = std::chrono::duration<double>(1.0 / s.rate);
    const auto t0 = clock_type::now();
    const auto end = t0 + std::chrono::duration<double>(s.seconds);
    for (auto next = t0; next < end; next += std::chrono::duration_cast<clock_type::duration>(period)) {
        while (clock_type::now() < next) std::this_thread::yield();
        publish_one(publish_on, payload);
        ++published;
    }
    settle(base + published * n);
    subs.record_latency(false);
    r.latency_lost = published * n - (subs.delivered() - base);
    auto l = subs.latencies_us();
    if (!l.empty()) {
        std::sort(l.begin(), l.end());
        r.p50_us = l[l.size() / 2];
        r.p99_us = l[std::min(l.size() - 1, l.size() * 99 / 100)];
        r.max_us = l.back();
    }
    return r;
}

void print(const char* name, std::size_t subscribers, const result& r) {
    std::printf("| %-11s | %5zu | %12.0f | %8llu | %9.0f | %9.0f | %9.0f | %8llu |\n", name, subscribers,
                r.deliveries_per_second, static_cast<unsigned long long>(r.throughput_lost), r.p50_us, r.p99_us, r.max_us,
                static_cast<unsigned long long>(r.latency_lost));
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view arg = argv[i];
        if (arg == "--subscribers") s.subscribers_per_node = std::stoul(argv[i + 1]);
        else if (arg == "--size") s.size = std::stoul(argv[i + 1]);
        else if (arg == "--seconds") s.seconds = std::stod(argv[i + 1]);
        else if (arg == "--rate") s.rate = std::stod(argv[i + 1]);
        else if (arg == "--window") s.window = std::stoul(argv[i + 1]);
        else if (arg == "--redis-server") s.redis_server = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: %s [--subscribers N] [--size BYTES] [--seconds S] [--rate R] [--window W] [--redis-server PATH]\n", argv[0]);
            return 2;
        }
    }
    try {
        std::printf("fan-out of %zu B messages to 3 x %zu subscribers; throughput with %zu in flight, latency at %.0f publishes/s, %.1f s each\n\n",
                    s.size, s.subscribers_per_node, s.window, s.rate, s.seconds);
        std::printf("| set-up      | subs  | deliveries/s | lost (t) | p50 (us)  | p99 (us)  | max (us)  | lost (l) |\n");
        std::printf("|-------------|-------|--------------|----------|-----------|-----------|-----------|----------|\n");
        {
            node single(nullptr, 3);  // as many delivering threads as the three nodes below
            subscribers subs({single.ws_url()}, 3 * s.subscribers_per_node);
            print("single node", subs.count(), measure(single.topics(), subs, s));
        }
        {
            redis_process redis(s.redis_server);
            duplex::pubsub::redis_backplane_options quiet;
            quiet.redis.log = [](duplex::log_level level, std::string_view line) {
                if (level >= duplex::log_level::warning) std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
            };
            node publisher(duplex::pubsub::redis_backplane::connect(redis.url(), quiet), 1);
            std::vector<std::shared_ptr<duplex::pubsub::redis_backplane>> backplanes;
            std::vector<std::unique_ptr<node>> others;
            std::vector<std::string> urls;
            for (int i = 0; i < 3; ++i) {
                backplanes.push_back(duplex::pubsub::redis_backplane::connect(redis.url(), quiet));
                others.push_back(std::make_unique<node>(backplanes.back(), 1));
                urls.push_back(others.back()->ws_url());
            }
            subscribers subs(urls, s.subscribers_per_node);
            // Every node's SUBSCRIBE confirmed before the first publish.
            for (const auto& b : backplanes)
                while (b->subscriber().confirmed_count() != 1) std::this_thread::sleep_for(1ms);
            print("cross-node", subs.count(), measure(publisher.topics(), subs, s));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "duplex-fanout-bench: %s\n", e.what());
        return 1;
    }
}
