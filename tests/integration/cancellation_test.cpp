// Per-operation cancellation of receive, receive_message, send, close and close_output, over loopback
// TCP and over TLS, with `||` and a timer (Asio's awaitable operators) and with bind_cancellation_slot:
// what each operation ends with and the state it leaves the socket in (README, Cancellation). And the
// keep-alive without a pending receive: a handler that only sends learns that its peer stopped
// answering, and what the peer sent meanwhile is still there for the next receive.
//
//     cancellation-tests --make-certs examples/tls_echo/make-certs.sh --certs DIR [doctest options...]
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "loopback_pair.hpp"
#include "test_support.hpp"

#include <asio/experimental/awaitable_operators.hpp>

#include <array>
#include <chrono>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using test::tcp_socket;
using test::tls_socket;

duplex::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer timer(co_await asio::this_coro::executor, d);
    co_await timer.async_wait(duplex::use_awaitable);
}

// What an operation ended with when a timer cancels it (terminal cancellation, through its cancellation
// slot) after `limit`: operation_aborted, or its own outcome when it ended first (no error, or the
// error it threw).
template <class T>
duplex::awaitable<std::error_code> within(duplex::awaitable<T> operation, std::chrono::steady_clock::duration limit) {
    const auto executor = co_await asio::this_coro::executor;
    asio::cancellation_signal signal;
    asio::steady_timer timer(executor, limit);
    timer.async_wait([&signal](std::error_code ec) {
        if (!ec) signal.emit(asio::cancellation_type::terminal);
    });
    std::error_code outcome;
    try {
        co_await asio::co_spawn(executor, std::move(operation), asio::bind_cancellation_slot(signal.slot(), duplex::use_awaitable));
    } catch (const std::system_error& e) {
        outcome = e.code();
    }
    timer.cancel();
    co_return outcome;
}

template <class Transport>
duplex::awaitable<std::string> receive_text(duplex::ws::stream<Transport>& s) {
    std::string out;
    co_await s.receive_message(out, 1 << 24);
    co_return out;
}

template <class Transport>
duplex::awaitable<test::loopback_pair<Transport>> open(asio::io_context& io, bool small_buffers = false,
                                                      duplex::ws::stream_options server_options = {}) {
    const duplex::ws::stream_options client_options;
    co_return co_await test::open_loopback<Transport>(io, server_options, client_options, small_buffers);
}

}  // namespace

TEST_CASE_TEMPLATE("receive || timer on a quiet connection: operation_aborted, and the socket stays usable", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        std::array<std::byte, 64> buffer;
        auto outcome = co_await (pair.server->receive(asio::buffer(buffer)) || sleep_for(100ms));
        CHECK(outcome.index() == 1);  // the timer won; the receive was cancelled
        CHECK(pair.server->state() == duplex::websocket_state::open);
        // The message sent afterwards arrives whole, and the socket answers.
        co_await pair.client->send(asio::buffer(std::string_view("after the timeout")), duplex::message_type::text);
        CHECK(co_await receive_text(*pair.server) == "after the timeout");
        co_await pair.server->send(asio::buffer(std::string_view("still here")), duplex::message_type::text);
        CHECK(co_await receive_text(*pair.client) == "still here");
    });
}

TEST_CASE_TEMPLATE("async_receive with bind_cancellation_slot: between messages any cancellation type the transport "
                   "takes ends it with operation_aborted and the socket stays usable; in the middle of one only "
                   "terminal is taken", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        std::vector<std::byte> buffer(64);
        // Starts a receive under `signal`, waits a little, emits each of `types`; the error it ended with,
        // if it ended.
        auto cancelled_by = [&](std::vector<asio::cancellation_type> types) -> duplex::awaitable<std::optional<std::error_code>> {
            asio::cancellation_signal signal;
            auto ended = std::make_shared<std::optional<std::error_code>>();
            pair.server->async_receive(asio::buffer(buffer),
                                       asio::bind_cancellation_slot(signal.slot(), [ended](std::error_code ec, duplex::receive_result) {
                                           *ended = ec;
                                       }));
            co_await sleep_for(20ms);
            for (const auto type : types) signal.emit(type);
            co_await sleep_for(50ms);
            if (!*ended) {
                signal.emit(asio::cancellation_type::terminal);  // end it, so that nothing is left pending
                for (int i = 0; i < 100 && !*ended; ++i) co_await sleep_for(5ms);
                REQUIRE(ended->has_value());
                co_return std::nullopt;
            }
            co_return *ended;
        };
        for (const auto type : {asio::cancellation_type::terminal, asio::cancellation_type::partial,
                                asio::cancellation_type::total}) {
            CAPTURE(static_cast<int>(type));
            const std::vector<asio::cancellation_type> one{type};
            const auto ended = co_await cancelled_by(one);
            // Asio's TLS stream takes terminal cancellation only (a TLS record cannot be half read).
            const bool taken = std::is_same_v<T, tcp_socket> || type == asio::cancellation_type::terminal;
            CHECK(ended.has_value() == taken);
            if (ended) CHECK(*ended == asio::error::operation_aborted);
            CHECK(pair.server->state() == duplex::websocket_state::open);
        }
        co_await pair.client->send(asio::buffer(std::string_view("whole")), duplex::message_type::text);
        CHECK(co_await receive_text(*pair.server) == "whole");
        // In the middle of a message, partial and total are not taken; terminal aborts the connection.
        co_await pair.client->send(asio::buffer(std::string_view("part")), duplex::message_type::text, false);
        const auto first = co_await pair.server->receive(asio::buffer(buffer));
        CHECK_FALSE(first.end_of_message);
        const std::vector<asio::cancellation_type> not_terminal{asio::cancellation_type::partial, asio::cancellation_type::total};
        const auto mid_message = co_await cancelled_by(not_terminal);
        CHECK_FALSE(mid_message.has_value());
        CHECK(pair.server->state() == duplex::websocket_state::aborted);  // by the terminal request that ended it
    });
}

TEST_CASE_TEMPLATE("a receive cancelled after an earlier one delivered part of the message aborts the connection", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        co_await pair.client->send(asio::buffer(std::string_view("first half, ")), duplex::message_type::text, false);
        std::array<std::byte, 64> buffer;
        const auto first = co_await pair.server->receive(asio::buffer(buffer));
        CHECK(first.count == 12);
        CHECK_FALSE(first.end_of_message);
        CHECK(co_await within(pair.server->receive(asio::buffer(buffer)), 100ms) == asio::error::operation_aborted);
        CHECK(pair.server->state() == duplex::websocket_state::aborted);
        // The peer sees the connection end without a close handshake.
        CHECK(co_await test::error_of(pair.client->receive(asio::buffer(buffer))) ==
              duplex::websocket_errc::connection_closed_prematurely);
    });
}

TEST_CASE_TEMPLATE("receive_message cancelled before any of a message keeps the socket; after a piece it aborts", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        std::string message;
        CHECK(co_await within(pair.server->receive_message(message, 1 << 20), 50ms) == asio::error::operation_aborted);
        CHECK(pair.server->state() == duplex::websocket_state::open);
        co_await pair.client->send(asio::buffer(std::string_view("one")), duplex::message_type::text);
        CHECK(co_await receive_text(*pair.server) == "one");
        // Now a message whose first fragment arrives and whose rest never does.
        co_await pair.client->send(asio::buffer(std::string_view("part")), duplex::message_type::text, false);
        CHECK(co_await within(pair.server->receive_message(message, 1 << 20), 100ms) == asio::error::operation_aborted);
        CHECK(pair.server->state() == duplex::websocket_state::aborted);
    });
}

TEST_CASE("a receive cancelled with half a frame header buffered loses nothing: the next receive gets the message") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
        tcp_socket raw(io);
        tcp_socket accepted(io);
        co_await (acceptor.async_accept(accepted, duplex::use_awaitable) &&
                  raw.async_connect(acceptor.local_endpoint(), duplex::use_awaitable));
        duplex::ws::stream<tcp_socket> server(std::move(accepted), duplex::ws::role::server);
        auto client_side = [&]() -> duplex::awaitable<void> {
            co_await asio::async_write(raw, asio::buffer(std::string_view(
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")), duplex::use_awaitable);
            std::string head;
            co_await asio::async_read_until(raw, asio::dynamic_buffer(head), "\r\n\r\n", duplex::use_awaitable);
        };
        co_await (server.accept() && client_side());
        const auto frame = test::encode({.opcode = 1, .payload = test::bytes("split header"), .masked = true});
        co_await asio::async_write(raw, asio::buffer(frame.data(), 3), duplex::use_awaitable);  // 2 of 6 header bytes and 1 more
        std::array<std::byte, 64> buffer;
        CHECK(co_await within(server.receive(asio::buffer(buffer)), 100ms) == asio::error::operation_aborted);
        CHECK(server.state() == duplex::websocket_state::open);
        co_await asio::async_write(raw, asio::buffer(frame.data() + 3, frame.size() - 3), duplex::use_awaitable);
        std::string message;
        const auto r = co_await server.receive_message(message, 1024);
        CHECK(message == "split header");
        CHECK(r.end_of_message);
    });
}

TEST_CASE_TEMPLATE("a send cancelled while backpressure holds it keeps its message queued and the socket usable", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        duplex::ws::stream_options options;
        options.send_queue_high_water = 16 * 1024;
        auto pair = co_await open<T>(io, true, options);
        // The client reads nothing: sends fill the kernel buffers, then the queue, until one waits.
        const std::string message(4096, 'm');
        int sent = 0;
        std::error_code last;
        for (; sent < 10'000; ++sent) {
            last = co_await within(pair.server->send(asio::buffer(message), duplex::message_type::text), 100ms);
            if (last) break;
        }
        CHECK(last == asio::error::operation_aborted);
        CHECK(pair.server->state() == duplex::websocket_state::open);
        // Every message arrives, the cancelled one included, then one sent afterwards.
        auto sender = [&]() -> duplex::awaitable<void> {
            co_await pair.server->send(asio::buffer(std::string_view("after")), duplex::message_type::text);
        };
        auto reader = [&]() -> duplex::awaitable<int> {
            int whole = 0;
            for (;;) {
                const auto text = co_await receive_text(*pair.client);
                if (text == "after") co_return whole;
                REQUIRE(text == message);
                ++whole;
            }
        };
        const int received = co_await (sender() && reader());
        CHECK(received == sent + 1);
    });
}

TEST_CASE_TEMPLATE("a send cancelled while its large payload is being written aborts the connection", T, tcp_socket,
                   tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io, true);
        const std::string large(4 << 20, 'L');  // written from the caller's buffer (direct_write_threshold)
        CHECK(co_await within(pair.server->send(asio::buffer(large), duplex::message_type::binary), 100ms) ==
              asio::error::operation_aborted);
        CHECK(pair.server->state() == duplex::websocket_state::aborted);
        std::array<std::byte, 64> buffer;
        CHECK(co_await test::error_of(pair.server->receive(asio::buffer(buffer))) == duplex::websocket_errc::aborted);
    });
}

TEST_CASE("a send cancelled while another's large write goes on sends nothing and leaves the socket usable") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<tcp_socket>(io, true);
        const std::string first(1 << 20, 'A'), second(1 << 20, 'B');
        auto first_send = [&]() -> duplex::awaitable<void> {
            co_await pair.server->send(asio::buffer(first), duplex::message_type::binary);
        };
        auto second_send = [&]() -> duplex::awaitable<std::error_code> {
            co_await sleep_for(50ms);  // the first write is under way and held by the peer
            co_return co_await within(pair.server->send(asio::buffer(second), duplex::message_type::binary), 100ms);
        };
        auto late_reader = [&]() -> duplex::awaitable<std::vector<std::string>> {
            co_await sleep_for(300ms);
            std::vector<std::string> got;
            got.push_back(co_await receive_text(*pair.client));
            got.push_back(co_await receive_text(*pair.client));
            co_return got;
        };
        auto closing = [&]() -> duplex::awaitable<void> {
            co_await sleep_for(400ms);
            co_await pair.server->send(asio::buffer(std::string_view("third")), duplex::message_type::text);
        };
        std::exception_ptr first_failure, closing_failure;
        asio::co_spawn(io, first_send(), [&](std::exception_ptr e) { first_failure = e; });
        asio::co_spawn(io, closing(), [&](std::exception_ptr e) { closing_failure = e; });
        const auto [second_outcome, got] = co_await (second_send() && late_reader());
        CHECK_FALSE(first_failure);
        CHECK_FALSE(closing_failure);
        CHECK(second_outcome == asio::error::operation_aborted);
        REQUIRE(got.size() == 2);
        CHECK(got[0] == first);
        CHECK(got[1] == "third");
        CHECK(pair.server->state() == duplex::websocket_state::open);
    });
}

TEST_CASE_TEMPLATE("close and close_output cancelled abort the connection", T, tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        {
            auto pair = co_await open<T>(io);
            // The client never reads, so it never answers our close.
            CHECK(co_await within(pair.server->close(duplex::close_status::normal_closure), 100ms) ==
                  asio::error::operation_aborted);
            CHECK(pair.server->state() == duplex::websocket_state::aborted);
        }
        {
            auto pair = co_await open<T>(io, true);
            const std::string filler(32 * 1024, 'f');  // queued, not written from our buffer
            // Fill what the client does not read, so that our close frame cannot leave.
            for (int i = 0; i < 200; ++i)
                if (co_await within(pair.server->send(asio::buffer(filler), duplex::message_type::binary), 50ms)) break;
            CHECK(co_await within(pair.server->close_output(duplex::close_status::normal_closure), 100ms) ==
                  asio::error::operation_aborted);
            CHECK(pair.server->state() == duplex::websocket_state::aborted);
        }
    });
}

TEST_CASE_TEMPLATE("keep-alive without a pending receive: a peer that stops answering fails the sender", T, tcp_socket,
                   tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        pair.server->start_keep_alive(100ms, 200ms);
        // The server only sends (a background processor); the client never receives, so never answers pings.
        std::error_code failure;
        for (int i = 0; i < 200 && !failure; ++i) {
            failure = co_await test::error_of(
                pair.server->send(asio::buffer(std::string_view("status")), duplex::message_type::text));
            co_await sleep_for(20ms);
        }
        CHECK(failure == duplex::websocket_errc::keep_alive_timeout);
        CHECK(pair.server->state() == duplex::websocket_state::aborted);
    });
}

TEST_CASE_TEMPLATE("keep-alive without a pending receive: a live peer is kept, and what it sent waits for receive", T,
                   tcp_socket, tls_socket) {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto pair = co_await open<T>(io);
        pair.server->start_keep_alive(50ms, 100ms);
        // The client answers pings (a receive pending) and sends two messages; the server does not receive
        // for 20 keep-alive intervals, then takes them.
        auto client = [&]() -> duplex::awaitable<std::string> {
            co_await pair.client->send(asio::buffer(std::string_view("early")), duplex::message_type::text);
            co_await pair.client->send(asio::buffer(std::string(10'000, 'x')), duplex::message_type::binary);
            co_return co_await receive_text(*pair.client);
        };
        auto server = [&]() -> duplex::awaitable<void> {
            for (int i = 0; i < 50; ++i) {
                co_await sleep_for(20ms);
                REQUIRE(pair.server->state() == duplex::websocket_state::open);
            }
            CHECK(co_await receive_text(*pair.server) == "early");
            CHECK(co_await receive_text(*pair.server) == std::string(10'000, 'x'));
            co_await pair.server->send(asio::buffer(std::string_view("done")), duplex::message_type::text);
        };
        const std::string reply = co_await (server() && client());
        CHECK(reply == "done");
    });
}

int main(int argc, char** argv) { return test::run_doctest_with_certificates(argc, argv); }
