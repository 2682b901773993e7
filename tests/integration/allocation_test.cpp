// The echo loop makes no heap allocation per message in steady state: the global allocator is replaced
// by a counting one, a duplex client and the seed's echo server exchange messages over loopback TCP, and
// the allocations made while thousands of messages flow are counted.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <duplex/duplex.hpp>

#include <doctest/doctest.h>

#include "echo.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>

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

}  // namespace

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
