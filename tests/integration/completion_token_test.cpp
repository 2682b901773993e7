// The completion-token forms of the WebSocket operations, as an Asio user writes them: as_tuple(use_awaitable),
// plain callbacks, use_future and deferred, on duplex::websocket and on ws::stream. Each gets error
// codes, never an exception, from a peer that drops; and each completes on the handler's executor.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using asio::experimental::as_tuple;

// An in-process server: it echoes each text message until the client sends "drop", then drops the
// TCP connection without a close handshake (a peer that vanishes); it answers a close.
struct dropping_server {
    asio::io_context& io;
    tcp::acceptor acceptor{io, {asio::ip::address_v4::loopback(), 0}};

    std::string url() const { return "ws://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/ws"; }

    duplex::awaitable<void> serve_one() {
        auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
        duplex::ws::stream<tcp::socket> stream(std::move(socket), duplex::ws::role::server);
        co_await stream.accept();
        std::string text;
        for (;;) {
            const auto r = co_await stream.receive_message(text, 1 << 20);
            if (r.close_status) {
                co_await stream.close(*r.close_status);
                co_return;
            }
            if (text == "drop") {
                stream.abort();
                co_return;
            }
            co_await stream.send(asio::buffer(text), duplex::message_type::text);
        }
    }
    void start(int connections) {
        for (int i = 0; i < connections; ++i) asio::co_spawn(io, serve_one(), asio::detached);
    }
};

}  // namespace

TEST_CASE("as_tuple(use_awaitable): error codes, not exceptions, through a whole session and a peer that drops") {
    asio::io_context io;
    dropping_server server{io};
    server.start(2);
    bool finished = false;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(server.url());
        const std::string hello = "hello";
        auto [send_ec] = co_await ws.async_send(asio::buffer(hello), duplex::message_type::text, true,
                                                duplex::message_flags::none, as_tuple(duplex::use_awaitable));
        CHECK_FALSE(send_ec);
        std::string reply;
        auto [receive_ec, r] = co_await ws.async_receive_message(reply, 1024, as_tuple(duplex::use_awaitable));
        CHECK_FALSE(receive_ec);
        CHECK(reply == "hello");
        CHECK(r.end_of_message);
        CHECK(r.message_type == duplex::message_type::text);

        const std::string drop = "drop";
        co_await ws.async_send(asio::buffer(drop), duplex::message_type::text, true, duplex::message_flags::none,
                               as_tuple(duplex::use_awaitable));
        std::array<std::byte, 64> buffer;
        auto [dropped_ec, ignored] = co_await ws.async_receive(asio::buffer(buffer), as_tuple(duplex::use_awaitable));
        CHECK(dropped_ec == duplex::websocket_errc::connection_closed_prematurely);
        // Later operations report the same, still without throwing.
        auto [later_ec] = co_await ws.async_send(asio::buffer(hello), duplex::message_type::text, true,
                                                 duplex::message_flags::none, as_tuple(duplex::use_awaitable));
        CHECK(later_ec == duplex::websocket_errc::connection_closed_prematurely);
        // A misuse is an error code too: a close status that may not be sent.
        auto [close_ec] = co_await ws.async_close(static_cast<duplex::close_status>(1004), "", as_tuple(duplex::use_awaitable));
        CHECK(close_ec == std::errc::invalid_argument);

        // The close handshake, in the token form.
        auto second = co_await duplex::connect(server.url());
        auto [closed_ec] = co_await second.async_close(duplex::close_status::normal_closure, "bye",
                                                       as_tuple(duplex::use_awaitable));
        CHECK_FALSE(closed_ec);
        CHECK(second.state() == duplex::websocket_state::closed);
        finished = true;
    }, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run_for(20s);
    CHECK(finished);
}

TEST_CASE("plain callbacks: an echo written as a chain of handlers, and the error that ends it") {
    asio::io_context io;
    dropping_server server{io};
    server.start(1);
    struct session : std::enable_shared_from_this<session> {
        duplex::websocket ws;
        std::array<std::byte, 64> buffer;
        int sent = 0;
        std::vector<std::string> replies;
        std::optional<std::error_code> ended;
        std::thread::id handler_thread;

        void send_next() {
            const std::string* text = sent < 3 ? &messages[static_cast<std::size_t>(sent)] : &drop;
            ++sent;
            ws.async_send(asio::buffer(*text), duplex::message_type::text, true, duplex::message_flags::none,
                          [self = shared_from_this()](std::error_code ec) {
                              if (ec) self->ended = ec;
                              else self->receive();
                          });
        }
        void receive() {
            ws.async_receive(asio::buffer(buffer), [self = shared_from_this()](std::error_code ec, duplex::receive_result r) {
                self->handler_thread = std::this_thread::get_id();
                if (ec) {
                    self->ended = ec;
                    return;
                }
                self->replies.emplace_back(reinterpret_cast<const char*>(self->buffer.data()), r.count);
                self->send_next();
            });
        }
        const std::array<std::string, 3> messages{"one", "two", "three"};
        const std::string drop = "drop";
    };
    auto s = std::make_shared<session>();
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        s->ws = co_await duplex::connect(server.url());
        s->send_next();
    }, asio::detached);
    io.run_for(20s);
    CHECK(s->replies == std::vector<std::string>{"one", "two", "three"});
    REQUIRE(s->ended.has_value());
    CHECK(*s->ended == duplex::websocket_errc::connection_closed_prematurely);
    CHECK(s->handler_thread == std::this_thread::get_id());  // completed on the socket's executor
}

// The duplex-chat crash (a handler-API connection's close completion ran its on_close on a thread of
// Asio's system pool, beside the connection's own thread): a plain callback has no executor of its own,
// and Asio's I/O objects complete it on theirs. Every operation, receive and send as much as close.
TEST_CASE("plain callbacks of every operation complete on the socket's thread") {
    asio::io_context io;
    dropping_server server{io};
    server.start(2);
    const auto socket_thread = std::this_thread::get_id();
    std::vector<std::pair<std::string, std::thread::id>> completed;
    duplex::websocket ws;
    std::string reply;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        ws = co_await duplex::connect(server.url());
        const std::string hello = "hello";
        ws.async_send(asio::buffer(hello), duplex::message_type::text, true, duplex::message_flags::none,
                      [&](std::error_code ec) {
                          completed.emplace_back("send", std::this_thread::get_id());
                          CHECK_FALSE(ec);
                          ws.async_receive_message(reply, 1024, [&](std::error_code ec, duplex::receive_result) {
                              completed.emplace_back("receive_message", std::this_thread::get_id());
                              CHECK_FALSE(ec);
                              ws.async_close(duplex::close_status::normal_closure, "", [&](std::error_code ec) {
                                  completed.emplace_back("close", std::this_thread::get_id());
                                  CHECK_FALSE(ec);
                              });
                          });
                      });
    }, asio::detached);
    io.run_for(20s);
    CHECK(reply == "hello");
    REQUIRE(completed.size() == 3);
    for (const auto& [operation, thread] : completed) {
        INFO(operation);
        CHECK(thread == socket_thread);
    }
}

TEST_CASE("use_future from a thread outside the io_context, and deferred") {
    asio::io_context io;
    dropping_server server{io};
    server.start(1);
    std::promise<duplex::websocket> connected;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> { connected.set_value(co_await duplex::connect(server.url())); },
                   asio::detached);
    // Kept busy until the end: once the server drops the connection nothing is pending until this thread
    // starts the last receive, and run_for would return before it.
    auto busy = asio::make_work_guard(io);
    std::thread runner([&] { io.run_for(20s); });
    auto ws = connected.get_future().get();
    const std::string ping = "ping", drop = "drop";
    // use_future with a function: the error code arrives as a value, not as the future's exception.
    auto sent = ws.async_send(asio::buffer(ping), duplex::message_type::text, true, duplex::message_flags::none,
                              asio::use_future([](std::error_code ec) { return ec; }));
    CHECK_FALSE(sent.get());
    std::string reply;
    auto received = ws.async_receive_message(reply, 1024, asio::use_future([](std::error_code ec, duplex::receive_result r) {
                                                 return std::pair{ec, r.count};
                                             }));
    const auto [receive_ec, count] = received.get();
    CHECK_FALSE(receive_ec);
    CHECK(count == 4);
    CHECK(reply == "ping");
    // deferred: the operation is described first and started by handing it a handler.
    auto drop_op = ws.async_send(asio::buffer(drop), duplex::message_type::text, true, duplex::message_flags::none,
                                 asio::experimental::deferred);
    std::promise<std::error_code> drop_sent;
    std::move(drop_op)([&](std::error_code ec) { drop_sent.set_value(ec); });
    CHECK_FALSE(drop_sent.get_future().get());
    std::array<std::byte, 16> buffer;
    auto dropped = ws.async_receive(asio::buffer(buffer), asio::use_future([](std::error_code ec, duplex::receive_result) { return ec; }));
    CHECK(dropped.get() == duplex::websocket_errc::connection_closed_prematurely);
    busy.reset();
    runner.join();
}

TEST_CASE("ws::stream has the same token forms") {
    asio::io_context io;
    dropping_server server{io};
    server.start(1);
    bool finished = false;
    asio::co_spawn(io, [&]() -> duplex::awaitable<void> {
        tcp::socket socket(io);
        co_await socket.async_connect(server.acceptor.local_endpoint(), duplex::use_awaitable);
        duplex::ws::stream<tcp::socket> stream(std::move(socket), duplex::ws::role::client);
        co_await stream.handshake("127.0.0.1", "/ws");
        const std::string text = "stream";
        auto [send_ec] = co_await stream.async_send(asio::buffer(text), duplex::message_type::text, true,
                                                    duplex::message_flags::none, as_tuple(duplex::use_awaitable));
        CHECK_FALSE(send_ec);
        std::vector<std::byte> reply;
        auto [receive_ec, r] = co_await stream.async_receive_message(reply, 1024, as_tuple(duplex::use_awaitable));
        CHECK_FALSE(receive_ec);
        CHECK(r.count == 6);
        auto [close_output_ec] = co_await stream.async_close_output(duplex::close_status::normal_closure, "",
                                                                    as_tuple(duplex::use_awaitable));
        CHECK_FALSE(close_output_ec);
        std::array<std::byte, 16> buffer;
        auto [close_ec, close] = co_await stream.async_receive(asio::buffer(buffer), as_tuple(duplex::use_awaitable));
        CHECK_FALSE(close_ec);
        CHECK(close.close_status == duplex::close_status::normal_closure);
        finished = true;
    }, [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    io.run_for(20s);
    CHECK(finished);
}
