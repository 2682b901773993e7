// duplex under several threads, for ThreadSanitizer (scripts/sanitizers.sh builds these with
// -fsanitize=thread; they also run, faster, in the normal suite).
//
// What is multi-threaded today: distinct streams on distinct threads (thread_local mask-key pools,
// OpenSSL's CSPRNG, Asio's per-thread recycling allocator), and one stream whose every operation runs on
// one strand of an io_context served by several threads, its sends coming from many coroutines, some
// of which live on another io_context and hop onto the strand to send. What is not: calling a stream's
// operations from outside its executor. The stream is not internally synchronised (README: "all
// operations of one stream run on its executor"), so a coroutine elsewhere must hop onto the strand,
// as the foreign senders here do with co_spawn(strand, stream.send(...), use_awaitable).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using duplex::ws::role;
using tcp = asio::ip::tcp;

namespace {

using ws_stream = duplex::ws::stream<tcp::socket>;

// A payload that names its sender and sequence number and is `size` bytes long, so a receiver can
// check both the order per sender and that no message was torn or interleaved with another.
std::string payload(int sender, int sequence, std::size_t size) {
    std::string text = std::to_string(sender) + ":" + std::to_string(sequence) + ":";
    text.resize(std::max(size, text.size()), static_cast<char>('a' + (sender + sequence) % 26));
    return text;
}

std::size_t size_for(int sequence) {
    constexpr std::size_t sizes[] = {7, 120, 3000, 70000, 64};  // 70000: the server's direct write path
    return sizes[static_cast<std::size_t>(sequence) % std::size(sizes)];
}

// Receives until the peer's close and answers it, echoing every message.
duplex::awaitable<void> echo(ws_stream stream) {
    std::string message;
    auto result = co_await stream.receive_message(message, 1 << 20);
    while (!result.close_status) {
        co_await stream.send(asio::buffer(message), result.message_type);
        result = co_await stream.receive_message(message, 1 << 20);
    }
    co_await stream.close(*result.close_status, result.close_status_description);
}

duplex::awaitable<void> serve(tcp::acceptor& acceptor, int connections) {
    for (int i = 0; i < connections; ++i) {
        auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
        ws_stream stream(std::move(socket), role::server);
        co_await stream.accept();
        asio::co_spawn(acceptor.get_executor(), echo(stream), asio::detached);
    }
}

// One client: sends `messages` messages, checks every echo, closes.
duplex::awaitable<void> talk(std::uint16_t port, int id, int messages, std::atomic<int>& good) {
    tcp::socket socket(co_await asio::this_coro::executor);
    co_await socket.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), duplex::use_awaitable);
    ws_stream client(std::move(socket), role::client);
    co_await client.handshake("127.0.0.1", "/ws");
    bool all_echoed = true;
    std::string reply;
    for (int i = 0; i < messages; ++i) {
        const auto sent = payload(id, i, size_for(i));
        co_await client.send(asio::buffer(sent), duplex::message_type::text);
        co_await client.receive_message(reply, 1 << 20);
        all_echoed = all_echoed && reply == sent;
    }
    co_await client.close(duplex::close_status::normal_closure);
    if (all_echoed) ++good;
}

}  // namespace

TEST_CASE("threads: each thread runs its own io_context with client/server pairs") {
    constexpr int threads = 4, pairs = 3, messages = 60;
    std::atomic<int> good{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([t, &good] {
            asio::io_context io;
            tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
            const auto port = acceptor.local_endpoint().port();
            asio::co_spawn(io, serve(acceptor, pairs), asio::detached);
            for (int p = 0; p < pairs; ++p) asio::co_spawn(io, talk(port, t * pairs + p, messages, good), asio::detached);
            io.run_for(std::chrono::seconds(60));
        });
    }
    for (auto& w : workers) w.join();
    CHECK(good.load() == threads * pairs);
}

namespace {

// Shared by the coroutines of one side; touched only on that side's strand.
struct side_state {
    std::vector<int> next_sequence;  // per sender, the next sequence number expected
    int received = 0;
    int sends_left = 0;              // senders still running
    std::vector<std::string> errors;
};

bool check_message(side_state& state, const std::string& message) {
    const auto first = message.find(':');
    const auto second = message.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) return false;
    const int sender = std::stoi(message.substr(0, first));
    const int sequence = std::stoi(message.substr(first + 1, second - first - 1));
    if (sender < 0 || sender >= static_cast<int>(state.next_sequence.size())) return false;
    if (sequence != state.next_sequence[static_cast<std::size_t>(sender)]++) return false;
    return message == payload(sender, sequence, size_for(sequence));
}

}  // namespace

TEST_CASE("threads: one stream on a strand of a multi-threaded io_context, sends from many coroutines") {
    constexpr int local_senders = 4, foreign_senders = 2, client_senders = 2, messages = 80;
    constexpr int server_senders = local_senders + foreign_senders;
    asio::io_context io;       // the streams' io_context, run by four threads
    asio::io_context foreign;  // where two of the server's senders live, run by two more
    auto server_strand = asio::make_strand(io);
    auto client_strand = asio::make_strand(io);

    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket server_socket(server_strand), client_socket(client_strand);
    std::thread connector([&] { client_socket.connect(acceptor.local_endpoint()); });
    acceptor.accept(server_socket);
    connector.join();
    ws_stream server(std::move(server_socket), role::server), client(std::move(client_socket), role::client);

    side_state server_side, client_side;
    server_side.next_sequence.assign(client_senders, 0);
    client_side.next_sequence.assign(server_senders, 0);
    std::atomic<int> finished{0};

    // The server: after the handshake, a receiver (echo of nothing: it counts and checks) and senders.
    auto server_sender = [&](int id) -> duplex::awaitable<void> {
        for (int i = 0; i < messages; ++i) {
            const auto text = payload(id, i, size_for(i));
            co_await server.send(asio::buffer(text), duplex::message_type::text);
        }
        --server_side.sends_left;
    };
    auto foreign_sender = [&](int id) -> duplex::awaitable<void> {
        for (int i = 0; i < messages; ++i) {
            const auto text = payload(id, i, size_for(i));
            // Hop onto the stream's strand for the send, and back here when it is done.
            co_await asio::co_spawn(server_strand, server.send(asio::buffer(text), duplex::message_type::text),
                                    duplex::use_awaitable);
        }
        co_await asio::co_spawn(server_strand, [&]() -> duplex::awaitable<void> {
            --server_side.sends_left;
            co_return;
        }, duplex::use_awaitable);
    };
    auto server_main = [&]() -> duplex::awaitable<void> {
        co_await server.accept();
        server_side.sends_left = server_senders;
        for (int id = 0; id < local_senders; ++id) asio::co_spawn(server_strand, server_sender(id), asio::detached);
        for (int id = local_senders; id < server_senders; ++id)
            asio::co_spawn(foreign, foreign_sender(id), asio::detached);
        std::string message;
        auto result = co_await server.receive_message(message, 1 << 20);
        while (!result.close_status) {
            ++server_side.received;
            if (!check_message(server_side, message)) server_side.errors.push_back("server got " + message.substr(0, 20));
            result = co_await server.receive_message(message, 1 << 20);
        }
        co_await server.close(*result.close_status);
        ++finished;
    };

    // The client: receives everything the server's senders send, sends its own, then closes.
    auto client_sender = [&](int id) -> duplex::awaitable<void> {
        for (int i = 0; i < messages; ++i) {
            const auto text = payload(id, i, size_for(i));
            co_await client.send(asio::buffer(text), duplex::message_type::text);
        }
        --client_side.sends_left;
    };
    auto client_main = [&]() -> duplex::awaitable<void> {
        co_await client.handshake("127.0.0.1", "/ws");
        client_side.sends_left = client_senders;
        for (int id = 0; id < client_senders; ++id) asio::co_spawn(client_strand, client_sender(id), asio::detached);
        std::string message;
        while (client_side.received < server_senders * messages) {
            co_await client.receive_message(message, 1 << 20);
            ++client_side.received;
            if (!check_message(client_side, message)) client_side.errors.push_back("client got " + message.substr(0, 20));
        }
        asio::steady_timer pause(client_strand);
        while (client_side.sends_left > 0) {
            pause.expires_after(std::chrono::milliseconds(1));
            co_await pause.async_wait(duplex::use_awaitable);
        }
        co_await client.close(duplex::close_status::normal_closure);
        ++finished;
    };

    asio::co_spawn(server_strand, server_main(), asio::detached);
    asio::co_spawn(client_strand, client_main(), asio::detached);
    auto io_guard = asio::make_work_guard(io);
    auto foreign_guard = asio::make_work_guard(foreign);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) threads.emplace_back([&] { io.run(); });
    for (int i = 0; i < 2; ++i) threads.emplace_back([&] { foreign.run(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (finished < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    io_guard.reset();
    foreign_guard.reset();
    io.stop();
    foreign.stop();
    for (auto& t : threads) t.join();

    CHECK(finished.load() == 2);
    CHECK(client_side.received == server_senders * messages);
    CHECK(server_side.received == client_senders * messages);
    CHECK(server_side.sends_left == 0);
    CHECK(client_side.sends_left == 0);
    for (const auto& e : server_side.errors) FAIL_CHECK(e);
    for (const auto& e : client_side.errors) FAIL_CHECK(e);
    CHECK(server.state() == duplex::websocket_state::closed);
    CHECK(client.state() == duplex::websocket_state::closed);
}
