// The echo loop makes no heap allocation per message in steady state: the global allocator is replaced
// by a counting one, a duplex client and the seed's echo server exchange messages over loopback TCP, and
// the allocations made while thousands of messages flow are counted. The same for publish: one topic,
// eight subscribers, messages published from the sockets' own thread and from another one. And for the
// Redis backplane: PUBLISH queued, written, its reply read, the message read back on another node and
// handed to that node's registry, through a real redis-server.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <duplex/duplex.hpp>
#include <duplex/pubsub/redis_backplane.hpp>

#include <doctest/doctest.h>

#include "echo.hpp"
#include "redis_server.hpp"

#include <array>
#include <atomic>
#include <cstring>
#include <functional>
#include <list>
#include <thread>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>

namespace {
std::atomic<std::size_t> allocations{0};
}

void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
// Asio allocates its coroutine frames and operation states with aligned_alloc, which bypasses operator
// new: count it too, forwarding to glibc's own (ASan replaces the allocator and counts for itself).
#if !defined(__SANITIZE_ADDRESS__) && defined(__GLIBC__)
extern "C" void* __libc_memalign(std::size_t alignment, std::size_t size);
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    return __libc_memalign(alignment, size);
}
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using asio::ip::tcp;

// The awaitable API (co_await, exceptions) or the completion-token API (callbacks, as_tuple); `whole`:
// the awaitable API with the client reading each reply with receive_message into a reused std::string,
// `whole_bytes` into a reused std::vector<std::byte> (a feed consumer's loop).
enum class api { awaitable, tokens, whole, whole_bytes };

// With `compression`, both ends negotiate permessage-deflate with those options.
duplex::awaitable<void> serve(tcp::acceptor& acceptor, std::optional<duplex::deflate::options> compression, api style) {
    auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
    duplex::ws::stream<tcp::socket> stream(std::move(socket), duplex::ws::role::server);
    co_await stream.accept(compression);
    auto ws = stream.as_websocket();
    if (style == api::tokens) co_await duplex::examples::echo_with_callbacks(ws);
    else co_await duplex::examples::echo(ws);
}

struct counts {
    std::size_t warm_up_messages = 0, measured_messages = 0;     // to exchange
    std::size_t measured_received = 0, measured_allocations = 0;  // what happened
};

// Sends `depth` messages ahead of the replies, like a pipelining client: first `warm_up` messages, then
// `measured` ones, counting the allocations made while those flow. One coroutine does both, so that its
// own frame (with a 64 KiB reply buffer) is allocated before the count starts.
duplex::awaitable<void> exchange(duplex::websocket& ws, const std::vector<std::byte>& payload, std::size_t depth,
                                 counts& result, api style) {
    using asio::experimental::as_tuple;
    const auto size = payload.size();
    std::array<std::byte, 64 * 1024> reply;
    std::string whole;              // receive_message's output, reused: it keeps its capacity
    std::vector<std::byte> whole_bytes;
    std::size_t before = 0;
    const auto total = result.warm_up_messages + result.measured_messages;
    std::size_t sent = 0, received = 0;
    while (received < total) {
        if (received == result.warm_up_messages) before = allocations.load();
        while (sent < total && sent - received < depth) {
            if (style == api::tokens) {
                auto [ec] = co_await ws.async_send(asio::buffer(payload), duplex::message_type::binary, true,
                                                   duplex::message_flags::none, as_tuple(duplex::use_awaitable));
                REQUIRE_FALSE(ec);
            } else {
                co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
            }
            ++sent;
        }
        std::size_t got = 0;
        while (style == api::whole || style == api::whole_bytes) {
            duplex::receive_result r;
            if (style == api::whole) r = co_await ws.receive_message(whole, 1 << 20);
            else r = co_await ws.receive_message(whole_bytes, 1 << 20);
            REQUIRE(r.end_of_message);
            REQUIRE(r.count == (style == api::whole ? whole.size() : whole_bytes.size()));
            got = r.count;
            break;
        }
        while (style == api::awaitable || style == api::tokens) {
            duplex::receive_result r;
            if (style == api::tokens) {
                auto [ec, piece] = co_await ws.async_receive(asio::buffer(reply), as_tuple(duplex::use_awaitable));
                REQUIRE_FALSE(ec);
                r = std::move(piece);
            } else {
                r = co_await ws.receive(asio::buffer(reply));
            }
            got += r.count;
            if (r.end_of_message) break;
        }
        REQUIRE(got == size);
        ++received;
    }
    result.measured_allocations = allocations.load() - before;
    result.measured_received = received - result.warm_up_messages;
}

// Text that compresses the way chat and JSON traffic does, so the compressed cases do real work.
std::vector<std::byte> chatty_payload(std::size_t size) {
    static constexpr std::string_view words[] = {"{\"id\":", "\"user\":", "hello", "world", "true", "null", ", ", "}\n"};
    std::vector<std::byte> out;
    for (std::size_t i = 0; out.size() < size; ++i) {
        const auto word = words[(i * 7 + i / 3) % std::size(words)];
        const auto number = std::to_string((i * 7919) % 1000);
        for (char c : word) out.push_back(static_cast<std::byte>(c));
        for (char c : number) out.push_back(static_cast<std::byte>(c));
    }
    out.resize(size);
    return out;
}

counts measure(std::size_t size, std::size_t depth, std::optional<duplex::deflate::options> compression = std::nullopt,
               api style = api::awaitable) {
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = acceptor.local_endpoint().port();
    counts result;
    asio::co_spawn(io, serve(acceptor, compression, style), asio::detached);
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        duplex::connect_options options;
        options.dangerous_deflate = compression;
        auto ws = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(port) + "/ws", options);
        const auto payload = compression ? chatty_payload(size) : std::vector<std::byte>(size, std::byte{'x'});
        result.warm_up_messages = 2000;
        result.measured_messages = 20000;
        co_await exchange(ws, payload, depth, result, style);
        co_await ws.close(duplex::close_status::normal_closure);
    }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
    io.run_for(std::chrono::seconds(50));
    return result;
}

// ---- publish ----

// A subscriber's far end: a blocking socket on a thread of its own (it allocates nothing while it
// reads), after a hand-written opening handshake; it counts the frames that arrive.
class frame_counter {
public:
    frame_counter(unsigned short port, bool compression) : socket_(io_) {
        socket_.connect({asio::ip::address_v4::loopback(), port});
        std::string request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
        if (compression) request += "Sec-WebSocket-Extensions: permessage-deflate\r\n";
        asio::write(socket_, asio::buffer(request + "\r\n"));
        std::string head;
        asio::read_until(socket_, asio::dynamic_buffer(head), "\r\n\r\n");
        REQUIRE(head.starts_with("HTTP/1.1 101"));
        CHECK((head.find("permessage-deflate") != std::string::npos) == compression);
        leftover_ = head.substr(head.find("\r\n\r\n") + 4);
        thread_ = std::thread([this] { run(); });
    }
    ~frame_counter() {
        std::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        thread_.join();
    }
    std::size_t frames() const noexcept { return frames_.load(std::memory_order_acquire); }

private:
    void run() {
        std::array<std::uint8_t, 64 * 1024> buffer;
        std::size_t have = leftover_.size();
        std::memcpy(buffer.data(), leftover_.data(), have);
        for (;;) {
            // Whole frames at the front of the buffer: header (server frames are unmasked), then payload.
            std::size_t at = 0;
            for (;;) {
                if (have - at < 2) break;
                std::size_t length = buffer[at + 1] & 0x7f, header = 2;
                if (length == 126) {
                    if (have - at < 4) break;
                    length = (std::size_t{buffer[at + 2]} << 8) | buffer[at + 3];
                    header = 4;
                } else if (length == 127) {
                    break;  // (not sent here)
                }
                if (have - at < header + length) break;
                at += header + length;
                frames_.fetch_add(1, std::memory_order_release);
            }
            std::memmove(buffer.data(), buffer.data() + at, have - at);
            have -= at;
            std::error_code ec;
            const auto n = socket_.read_some(asio::buffer(buffer.data() + have, buffer.size() - have), ec);
            if (ec) return;
            have += n;
        }
    }

    asio::io_context io_;
    tcp::socket socket_;
    std::string leftover_;
    std::atomic<std::size_t> frames_{0};
    std::thread thread_;
};

struct publish_counts {
    std::size_t measured_messages = 0, delivered = 0, allocations = 0;
};

// `subscribers` server sockets on one io_context thread, subscribed to one topic, each with a
// frame_counter at the far end; about 3,000 messages of `size` bytes to warm up, then 5,000 measured,
// published in rounds (each once every subscriber has the round before) from another thread, or with
// `from_socket_thread` from the sockets' own.
publish_counts measure_publish(std::size_t size, std::size_t subscribers, bool compression, bool from_socket_thread) {
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = acceptor.local_endpoint().port();
    duplex::pubsub::topic_registry topics;
    std::list<duplex::ws::stream<tcp::socket>> streams;
    std::list<duplex::pubsub::subscriber> members;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        for (std::size_t i = 0; i < subscribers; ++i) {
            auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
            auto& stream = streams.emplace_back(std::move(socket), duplex::ws::role::server);
            std::optional<duplex::deflate::options> offer;
            if (compression) offer.emplace();
            co_await stream.accept(offer);
            members.emplace_back(topics, stream.as_websocket()).subscribe("t");
        }
    }, asio::detached);
    // The sockets wait for nothing (their peers send nothing): the guard keeps run() from returning.
    auto busy = asio::make_work_guard(io);
    std::thread io_thread([&] { io.run_for(std::chrono::seconds(50)); });
    std::list<frame_counter> far_ends;
    for (std::size_t i = 0; i < subscribers; ++i) far_ends.emplace_back(port, compression);
    while (topics.subscriber_count("t") != subscribers) std::this_thread::sleep_for(std::chrono::milliseconds(1));

    const auto message = compression ? chatty_payload(size) : std::vector<std::byte>(size, std::byte{'x'});
    // Rounds of up to 32 KiB: below the subscribers' backpressure limit (64 KiB), so none is dropped.
    const std::size_t round = std::min<std::size_t>(64, 32 * 1024 / size);
    const std::size_t warm_up = (3000 + round - 1) / round * round, measured = (5000 + round - 1) / round * round;
    publish_counts result;
    result.measured_messages = measured;
    std::size_t before = 0;
    const auto everyone_has = [&](std::size_t count) {
        for (const auto& f : far_ends)
            if (f.frames() < count) return false;
        return true;
    };
    const auto publish_round = [&] {
        for (std::size_t i = 0; i < round; ++i) topics.publish("t", asio::buffer(message), duplex::message_type::binary);
    };
    if (from_socket_thread) {
        // A handler on the sockets' thread publishes a round once every far end has the one before, and
        // meanwhile posts itself again (asio recycles its memory there).
        std::atomic<bool> finished{false};
        struct publisher {
            asio::io_context* io;
            std::size_t* sent;
            const std::function<void()>* publish_round;
            const std::function<bool(std::size_t)>* everyone_has;
            std::size_t* before;
            std::atomic<bool>* finished;
            std::size_t warm_up, total, round;
            void operator()() const {
                if (*sent == 0 || (*everyone_has)(*sent)) {
                    if (*sent == total) {
                        finished->store(true, std::memory_order_release);
                        return;
                    }
                    if (*sent == warm_up) *before = allocations.load();
                    (*publish_round)();
                    *sent += round;
                }
                asio::post(*io, *this);
            }
        };
        std::size_t sent = 0;
        const std::function<void()> publish = publish_round;
        const std::function<bool(std::size_t)> has = everyone_has;
        asio::post(io, publisher{&io, &sent, &publish, &has, &before, &finished, warm_up, warm_up + measured, round});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
        while (!finished.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        REQUIRE(finished.load(std::memory_order_acquire));
    } else {
        for (std::size_t sent = 0; sent < warm_up + measured; sent += round) {
            if (sent == warm_up) before = allocations.load();
            publish_round();
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!everyone_has(sent + round) && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::microseconds(20));
            if (!everyone_has(sent + round)) {
                for (const auto& f : far_ends) MESSAGE("stuck: published " << sent + round << ", a far end has " << f.frames());
                break;
            }
        }
    }
    result.allocations = allocations.load() - before;
    for (const auto& f : far_ends) result.delivered += f.frames() - warm_up;
    std::atomic<bool> released{false};
    asio::post(io, [&] {  // on the sockets' thread, where subscribers leave their topics
        members.clear();
        for (auto& s : streams) s.next_layer().close();
        released.store(true, std::memory_order_release);
    });
    while (!released.load(std::memory_order_acquire)) std::this_thread::yield();
    far_ends.clear();
    io.stop();
    io_thread.join();
    return result;
}

}  // namespace

TEST_CASE("publish: no allocation per message or per subscriber, from the sockets' thread or another, with and without permessage-deflate") {
    constexpr std::size_t subscribers = 8;
    for (bool compression : {false, true}) {
        for (bool from_socket_thread : {true, false}) {
            for (std::size_t size : {std::size_t{64}, std::size_t{3000}}) {
                CAPTURE(compression);
                CAPTURE(from_socket_thread);
                CAPTURE(size);
                const auto c = measure_publish(size, subscribers, compression, from_socket_thread);
                REQUIRE(c.delivered == c.measured_messages * subscribers);
                const std::string where = from_socket_thread ? "on the sockets' thread" : "from another thread";
                MESSAGE(c.allocations << " allocations over " << c.measured_messages << " publishes of " << size
                                      << " B to " << subscribers << " subscribers (" << c.delivered << " deliveries), "
                                      << where << std::string(compression ? ", permessage-deflate" : ""));
                // One allocation per message (or per delivery) would be 5,000 (40,000). Seen: 0 in most
                // runs; a send queue's vectors reaching a new peak length, or the per-thread caches
                // settling, may still allocate a few times (up to 31 after a shorter warm-up).
                CHECK(c.allocations * 100 <= c.measured_messages);
            }
        }
    }
}

TEST_CASE("redis backplane: no allocation per message, publishing node and receiving node") {
    test::redis_server server;
    struct counting_receiver final : duplex::pubsub::backplane_receiver {
        std::atomic<std::size_t> delivered{0};
        void deliver_from_backplane(std::string_view, std::span<const std::byte>, duplex::message_type,
                                    duplex::message_flags) override {
            delivered.fetch_add(1, std::memory_order_relaxed);
        }
    };
    duplex::pubsub::redis_backplane_options quiet;
    quiet.redis.log = [](duplex::log_level, std::string_view) {};
    auto a = duplex::pubsub::redis_backplane::connect(server.url(), quiet);
    auto b = duplex::pubsub::redis_backplane::connect(server.url(), quiet);
    auto receiver = std::make_shared<counting_receiver>();
    b->attach(receiver);
    b->topic_opened("room");
    while (b->subscriber().confirmed_count() != 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (const std::size_t size : {std::size_t{64}, std::size_t{3000}}) {
        CAPTURE(size);
        const std::vector<std::byte> payload(size, std::byte{'x'});
        const auto flow = [&](std::size_t n) {
            const auto target = receiver->delivered.load() + n;
            for (std::size_t i = 0; i < n; ++i) {
                a->publish("room", payload, duplex::message_type::text, duplex::message_flags::none);
                // Paced in bursts, as traffic is: the queue is drained by whole writes between them.
                if (i % 256 == 255) std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (receiver->delivered.load() < target && std::chrono::steady_clock::now() < give_up)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            return receiver->delivered.load() >= target;
        };
        REQUIRE(flow(5000));  // warm-up: buffers reach their working sizes, caches fill
        constexpr std::size_t measured = 20000;
        const auto before = allocations.load();
        REQUIRE(flow(measured));
        const auto made = allocations.load() - before;
        MESSAGE(made << " allocations over " << measured << " messages of " << size
                     << " B through Redis (publish, PUBLISH reply, message read back and handed over)");
        CHECK(a->lost() == 0);
        // One per message would be 20,000 on either node.
        CHECK(made * 100 <= measured);
    }
}

TEST_CASE("no allocation per message in the echo loop, client and server") {
    for (auto [size, depth] : {std::pair<std::size_t, std::size_t>{64, 1}, {64, 16}, {3000, 4}, {100000, 2}}) {
        CAPTURE(size);
        CAPTURE(depth);
        const auto c = measure(size, depth);
        REQUIRE(c.measured_received == 20000);
        MESSAGE(c.measured_allocations << " allocations over " << c.measured_messages << " messages of " << size
                                       << " B at depth " << depth);
        CHECK(c.measured_allocations == 0);
    }
}

TEST_CASE("no allocation per message with permessage-deflate on both ends, with and without context takeover") {
    for (bool takeover : {true, false}) {
        duplex::deflate::options compression;
        compression.disable_server_context_takeover = !takeover;
        compression.disable_client_context_takeover = !takeover;
        for (auto [size, depth] : {std::pair<std::size_t, std::size_t>{64, 1}, {64, 16}, {3000, 4}}) {
            CAPTURE(takeover);
            CAPTURE(size);
            CAPTURE(depth);
            const auto c = measure(size, depth, compression);
            REQUIRE(c.measured_received == 20000);
            MESSAGE(c.measured_allocations << " allocations over " << c.measured_messages << " compressed messages of "
                                           << size << " B at depth " << depth << ", context takeover " << std::string(takeover ? "on" : "off"));
            CHECK(c.measured_allocations == 0);
        }
    }
}

TEST_CASE("no allocation per message with the completion-token API: a callback echo and an as_tuple client") {
    for (auto [size, depth] : {std::pair<std::size_t, std::size_t>{64, 1}, {64, 16}, {3000, 4}, {100000, 2}}) {
        CAPTURE(size);
        CAPTURE(depth);
        const auto c = measure(size, depth, std::nullopt, api::tokens);
        REQUIRE(c.measured_received == 20000);
        MESSAGE(c.measured_allocations << " allocations over " << c.measured_messages << " messages of " << size
                                       << " B at depth " << depth << " through completion tokens");
        CHECK(c.measured_allocations == 0);
    }
}

TEST_CASE("no allocation per message for a client reading with receive_message into a reused string or vector") {
    for (auto style : {api::whole, api::whole_bytes})
        for (auto [size, depth] : {std::pair<std::size_t, std::size_t>{64, 1}, {64, 16}, {3000, 4}, {100000, 2}}) {
            CAPTURE(size);
            CAPTURE(depth);
            const auto c = measure(size, depth, std::nullopt, style);
            REQUIRE(c.measured_received == 20000);
            MESSAGE(c.measured_allocations << " allocations over " << c.measured_messages << " messages of " << size
                                           << " B at depth " << depth << " read with receive_message into a "
                                           << std::string(style == api::whole ? "std::string" : "std::vector<std::byte>"));
            CHECK(c.measured_allocations == 0);
        }
}
