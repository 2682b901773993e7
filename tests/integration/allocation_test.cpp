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
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using asio::ip::tcp;

duplex::awaitable<void> serve(tcp::acceptor& acceptor) {
    auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
    duplex::ws::stream<tcp::socket> stream(std::move(socket), duplex::ws::role::server);
    co_await stream.accept();
    auto ws = stream.as_websocket();
    co_await duplex::examples::echo(ws);
}

struct counts {
    std::size_t warm_up_messages = 0, measured_messages = 0, measured_allocations = 0;
};

// Sends `depth` messages ahead of the replies, like a pipelining client.
duplex::awaitable<void> exchange(duplex::websocket& ws, const std::vector<std::byte>& payload, std::size_t messages,
                                 std::size_t depth) {
    const auto size = payload.size();
    std::array<std::byte, 64 * 1024> reply;
    std::size_t sent = 0, received = 0;
    while (received < messages) {
        while (sent < messages && sent - received < depth) {
            co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
            ++sent;
        }
        std::size_t got = 0;
        for (;;) {
            auto r = co_await ws.receive(asio::buffer(reply));
            got += r.count;
            if (r.end_of_message) break;
        }
        REQUIRE(got == size);
        ++received;
    }
}

counts measure(std::size_t size, std::size_t depth) {
    asio::io_context io(1);
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = acceptor.local_endpoint().port();
    counts result;
    asio::co_spawn(io, serve(acceptor), asio::detached);
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect("ws://127.0.0.1:" + std::to_string(port) + "/ws");
        const std::vector<std::byte> payload(size, std::byte{'x'});
        result.warm_up_messages = 2000;
        co_await exchange(ws, payload, result.warm_up_messages, depth);
        const auto before = allocations.load();
        result.measured_messages = 20000;
        co_await exchange(ws, payload, result.measured_messages, depth);
        result.measured_allocations = allocations.load() - before;
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
        REQUIRE(c.measured_messages == 20000);
        MESSAGE(c.measured_allocations << " allocations over " << c.measured_messages << " messages of " << size
                                       << " B at depth " << depth);
        CHECK(c.measured_allocations == 0);
    }
}
