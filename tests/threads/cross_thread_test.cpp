// The app host with 4 worker threads, its handlers sending straight to other connections' sockets —
// the natural chat broadcast (`for (auto& m : room) co_await m.send(text)`), each member on its own
// strand — under a flood of 8 KiB messages, with a member that never reads and members that leave in
// the middle. Part of the threads suite, which scripts/sanitizers.sh runs under ThreadSanitizer (and the
// whole suite under AddressSanitizer).
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include "../support/app_runner.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

// The room: members join and leave from their handlers, on their own strands.
struct room {
    std::mutex mutex;
    std::map<int, duplex::websocket> members;
    int next_id = 0;

    int join(duplex::websocket ws) {
        std::lock_guard lock(mutex);
        members.emplace(next_id, std::move(ws));
        return next_id++;
    }
    void leave(int id) {
        std::lock_guard lock(mutex);
        members.erase(id);
    }
    std::vector<duplex::websocket> snapshot() {
        std::lock_guard lock(mutex);
        std::vector<duplex::websocket> out;
        for (auto& [id, ws] : members) out.push_back(ws);
        return out;
    }
};

// Each message names its sender and sequence number, and is padded to 8 KiB.
std::string message(int sender, int sequence) {
    std::string text = std::to_string(sender) + ":" + std::to_string(sequence) + ":";
    text.resize(8 * 1024, 'p');
    return text;
}

std::pair<int, int> sender_and_sequence(const std::string& text) {
    const auto colon = text.find(':');
    return {std::stoi(text.substr(0, colon)), std::stoi(text.substr(colon + 1, text.find(':', colon + 1) - colon - 1))};
}

}  // namespace

TEST_CASE("threads: handlers on 4 threads send straight to other connections' sockets") {
    auto chat = std::make_shared<room>();
    std::atomic<int> slow_member_failures{0};
    duplex::app_options options;
    options.worker_threads = 4;
    options.websocket_limits.send_timeout = 500ms;  // the member that never reads is dropped, not waited for
    options.logging.minimum_level = duplex::log_level::none;
    duplex::app app(options);
    app.use_websockets();
    app.use([chat, &slow_member_failures](duplex::http_context& ctx, duplex::next) -> duplex::awaitable<void> {
        auto ws = co_await ctx.websockets.accept_websocket();
        const int id = chat->join(ws);
        try {
            std::string text;
            for (;;) {
                const auto r = co_await ws.receive_message(text, 1 << 20);
                if (r.close_status) {
                    chat->leave(id);
                    co_await ws.close(*r.close_status);
                    break;
                }
                for (auto& member : chat->snapshot()) {
                    try {
                        co_await member.send(text);  // from this member's strand to another's
                    } catch (const duplex::websocket_error& e) {
                        // That member is gone, or too slow to wait for.
                        if (e.code() == duplex::websocket_errc::send_timeout || e.code() == duplex::websocket_errc::send_queue_full)
                            ++slow_member_failures;
                    }
                }
            }
        } catch (const duplex::websocket_error&) {
        }
        chat->leave(id);
    });
    test::app_runner runner(app);
    runner.start();
    const auto url = "ws://127.0.0.1:" + std::to_string(runner.port()) + "/chat";

    constexpr int readers = 5, leavers = 2, messages_each = 100;
    asio::io_context clients(1);
    // received[r][s]: the sequence numbers reader r got from sender s, in arrival order.
    std::vector<std::map<int, std::vector<int>>> received(readers);
    std::atomic<int> joined{0}, finished_sending{0};
    std::exception_ptr client_failure;
    const auto fail = [&](std::exception_ptr e) {
        if (e && !client_failure) client_failure = e;
    };

    // The member that never reads: it joins and holds its socket open, reading nothing, with a small
    // receive buffer so that what is sent to it backs up soon.
    std::optional<duplex::ws::stream<asio::ip::tcp::socket>> silent;
    asio::co_spawn(clients, [&]() -> duplex::awaitable<void> {
        asio::ip::tcp::socket socket(clients);
        socket.open(asio::ip::tcp::v4());
        socket.set_option(asio::socket_base::receive_buffer_size(4096));
        co_await socket.async_connect({asio::ip::address_v4::loopback(), runner.port()}, duplex::use_awaitable);
        silent.emplace(std::move(socket), duplex::ws::role::client);
        co_await silent->handshake("127.0.0.1", "/chat");
        ++joined;
    }, fail);
    for (int r = 0; r < readers; ++r) {
        asio::co_spawn(clients, [&, r]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(url);
            ++joined;
            asio::steady_timer wait(clients);
            while (joined < readers + leavers + 1) {
                wait.expires_after(10ms);
                co_await wait.async_wait(duplex::use_awaitable);
            }
            auto sender = [&]() -> duplex::awaitable<void> {
                for (int i = 0; i < messages_each; ++i) co_await ws.send(message(r, i));
                ++finished_sending;
            };
            asio::co_spawn(clients, sender(), fail);
            // Everyone's messages come back to everyone, this reader's own included.
            std::string text;
            int got = 0;
            while (got < readers * messages_each) {
                const auto result = co_await ws.receive_message(text, 1 << 20);
                REQUIRE_FALSE(result.close_status.has_value());
                const auto [sender_id, sequence] = sender_and_sequence(text);
                if (sender_id >= readers) continue;  // a leaver's message
                received[static_cast<std::size_t>(r)][sender_id].push_back(sequence);
                ++got;
            }
            while (finished_sending < readers) {
                wait.expires_after(10ms);
                co_await wait.async_wait(duplex::use_awaitable);
            }
            co_await ws.close(duplex::close_status::normal_closure);
        }, fail);
    }
    // Members that flood and leave in the middle, without a close handshake.
    for (int l = 0; l < leavers; ++l) {
        asio::co_spawn(clients, [&, l]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(url);
            ++joined;
            for (int i = 0; i < messages_each / 2; ++i) co_await ws.send(message(readers + l, i));
            ws.abort();
        }, fail);
    }
    clients.run_for(120s);
    if (client_failure) std::rethrow_exception(client_failure);
    REQUIRE(clients.stopped());

    // Every reader got every reader's messages, each sender's in order, none torn or lost.
    for (int r = 0; r < readers; ++r)
        for (int s = 0; s < readers; ++s) {
            CAPTURE(r);
            CAPTURE(s);
            const auto& sequence = received[static_cast<std::size_t>(r)][s];
            REQUIRE(sequence.size() == messages_each);
            for (int i = 0; i < messages_each; ++i) CHECK(sequence[static_cast<std::size_t>(i)] == i);
        }
    // The member that never read was dropped along the way (send_timeout): sends to it failed instead
    // of holding the others up.
    CHECK(slow_member_failures > 0);
    runner.stop();
    silent.reset();
}
