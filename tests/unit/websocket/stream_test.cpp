// The stream against a raw peer over a Unix socket pair: messages, fragmentation, control frames, the
// close handshake and every way a peer can break the protocol.
#include <duplex/websocket/stream.hpp>

#include <doctest/doctest.h>

#include "test_support.hpp"

using duplex::close_status;
using duplex::message_type;
using duplex::websocket_errc;
using duplex::websocket_state;
using duplex::ws::role;
using test::raw_frame;

namespace {

template <class F>
void with_pair(role r, F body, duplex::ws::stream_options options = {}) {
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), r, options);
        co_await test::open(stream, peer, r);
        co_await body(stream, peer);
    });
}

bool masked_as(role r) { return r == role::server; }  // what the peer must send to this role

// The stream's failing side and a well-behaved peer run together, as over a real network: the peer
// reads the close frame the stream sends, then ends its side once the stream has ended its own.
template <class T>
duplex::awaitable<std::pair<std::error_code, std::optional<raw_frame>>> fail_with_peer(
    duplex::awaitable<T> failing, test::raw_peer& peer) {
    std::optional<raw_frame> close;
    auto peer_side = [&]() -> duplex::awaitable<void> {
        close = co_await peer.read_frame();
        co_await peer.read_to_end();
        peer.socket().close();
    };
    using namespace asio::experimental::awaitable_operators;
    const auto caught = co_await (test::error_of(std::move(failing)) && peer_side());
    co_return std::pair{caught, close};
}

std::uint16_t code_of(const raw_frame& close) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(close.payload.at(0)) << 8) |
                                      std::to_integer<unsigned>(close.payload.at(1)));
}

template <class Stream>
duplex::awaitable<void> receive_forever(Stream& stream) {
    std::array<std::byte, 1024> buffer;
    for (;;) co_await stream.receive(asio::buffer(buffer));
}

// Sends `frames` from the raw peer, expects receive() to fail with `errc`, and the peer to read a close
// frame with `code` followed by the end of the connection.
void expect_failure(role r, std::vector<raw_frame> frames, websocket_errc errc, std::uint16_t code,
                    duplex::ws::stream_options options = {}) {
    with_pair(r, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
        for (auto& f : frames) {
            f.masked = masked_as(r) ? f.masked : false;
            co_await peer.send(f);
        }
        const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
        CHECK(caught == make_error_code(errc));
        CHECK(stream.state() == websocket_state::aborted);
        REQUIRE(close);
        CHECK(close->opcode == 0x8);
        REQUIRE(close->payload.size() >= 2);
        CHECK(code_of(*close) == code);
        CHECK(close->masked == (r == role::client));
    }, options);
}

raw_frame frame(std::uint8_t op, std::string_view payload, bool fin = true) {
    raw_frame f;
    f.opcode = op;
    f.fin = fin;
    f.payload = test::bytes(payload);
    return f;
}

}  // namespace

TEST_CASE("a text message arrives whole with its type and end of message") {
    for (auto r : {role::server, role::client}) {
        with_pair(r, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
            auto f = frame(1, "Hello");
            f.masked = masked_as(r);
            co_await peer.send(f);
            std::array<std::byte, 64> buffer;
            auto result = co_await stream.receive(asio::buffer(buffer));
            CHECK(result.count == 5);
            CHECK(result.message_type == message_type::text);
            CHECK(result.end_of_message);
            CHECK_FALSE(result.close_status);
            CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), 5) == "Hello");
        });
    }
}

TEST_CASE("a quiet connection waits without its receive buffer and takes it back when data comes") {
    using namespace std::chrono_literals;
    duplex::ws::stream_options options;
    options.release_receive_buffer_after = 200ms;
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::array<std::byte, 64> buffer;
        std::size_t held_while_waiting = 1;
        // After `pause`, notes what the waiting stream holds, then sends `text`.
        auto peer_sends = [&](std::chrono::milliseconds pause, std::string text) -> duplex::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, pause);
            co_await timer.async_wait(duplex::use_awaitable);
            held_while_waiting = stream.receive_buffer_bytes();
            co_await peer.send(frame(0x1, text));
        };
        using namespace asio::experimental::awaitable_operators;
        // A new connection is quiet: its first wait holds no buffer.
        auto first = co_await (stream.receive(asio::buffer(buffer)) && peer_sends(50ms, "first"));
        CHECK(held_while_waiting == 0);
        CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), first.count) == "first");
        CHECK(stream.receive_buffer_bytes() == 4096);
        // That read waited only for the peek: the connection is busy, the next wait keeps the buffer.
        auto second = co_await (stream.receive(asio::buffer(buffer)) && peer_sends(300ms, "second"));
        CHECK(held_while_waiting == 4096);
        CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), second.count) == "second");
        // That read waited 300 ms, past release_receive_buffer_after: the next wait gives the buffer back.
        auto third = co_await (stream.receive(asio::buffer(buffer)) && peer_sends(50ms, "third"));
        CHECK(held_while_waiting == 0);
        CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), third.count) == "third");
        // Back to back, with data waiting: every piece arrives (the peeked byte was not consumed).
        co_await peer.send(frame(0x1, "fourth"));
        co_await peer.send(frame(0x2, "fifth"));
        auto fourth = co_await stream.receive(asio::buffer(buffer));
        CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), fourth.count) == "fourth");
        auto fifth = co_await stream.receive(asio::buffer(buffer));
        CHECK(fifth.message_type == message_type::binary);
        CHECK(std::string_view(reinterpret_cast<char*>(buffer.data()), fifth.count) == "fifth");
    }, options);
}

TEST_CASE("a zero-byte receive waits for a message's data without a buffer and consumes nothing") {
    using namespace std::chrono_literals;
    duplex::ws::stream_options options;
    options.release_receive_buffer_after = 0ms;  // every wait is buffer-less
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::array<std::byte, 64> buffer;
        const auto as_text = [&](std::size_t n) { return std::string_view(reinterpret_cast<char*>(buffer.data()), n); };
        std::size_t held_while_waiting = 1;
        auto peer_sends = [&](std::vector<raw_frame> frames) -> duplex::awaitable<void> {
            asio::steady_timer timer(co_await asio::this_coro::executor, 50ms);
            co_await timer.async_wait(duplex::use_awaitable);
            held_while_waiting = stream.receive_buffer_bytes();
            for (auto& f : frames) co_await peer.send(f);
        };
        using namespace asio::experimental::awaitable_operators;
        const asio::mutable_buffer nothing;
        // A whole message: the zero-byte receive says what kind, the next receive gets all of it.
        std::vector<raw_frame> frames1{frame(0x1, "hello")};
        auto ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames1)));
        CHECK(held_while_waiting == 0);
        CHECK(ready.count == 0);
        CHECK(ready.message_type == message_type::text);
        CHECK_FALSE(ready.end_of_message);
        CHECK_FALSE(ready.close_status);
        auto hello = co_await stream.receive(asio::buffer(buffer));
        CHECK(as_text(hello.count) == "hello");
        CHECK(hello.end_of_message);
        // A fragmented message: between its fragments a zero-byte receive waits for the next one.
        std::vector<raw_frame> frames2{frame(0x2, "ab", false)};
        ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames2)));
        CHECK(ready.message_type == message_type::binary);
        auto ab = co_await stream.receive(asio::buffer(buffer));
        CHECK(as_text(ab.count) == "ab");
        CHECK_FALSE(ab.end_of_message);
        std::vector<raw_frame> frames3{frame(0x0, "cd")};
        ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames3)));
        CHECK(ready.count == 0);
        CHECK_FALSE(ready.end_of_message);
        auto cd = co_await stream.receive(asio::buffer(buffer));
        CHECK(as_text(cd.count) == "cd");
        CHECK(cd.end_of_message);
        // An empty message is received whole by the zero-byte receive.
        std::vector<raw_frame> frames4{frame(0x2, "")};
        ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames4)));
        CHECK(ready.count == 0);
        CHECK(ready.message_type == message_type::binary);
        CHECK(ready.end_of_message);
        // A ping before the data is answered on the way; the close arrives as usual.
        std::vector<raw_frame> frames5{frame(0x9, "p"), frame(0x1, "after ping")};
        ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames5)));
        CHECK(ready.message_type == message_type::text);
        auto pong = co_await peer.read_frame();
        REQUIRE(pong);
        CHECK(pong->opcode == 0xA);
        auto after = co_await stream.receive(asio::buffer(buffer));
        CHECK(as_text(after.count) == "after ping");
        auto close = frame(0x8, "");
        std::vector<raw_frame> frames6{close};
        ready = co_await (stream.receive(nothing) && peer_sends(std::move(frames6)));
        CHECK(ready.close_status == close_status::empty);
    }, options);
}

TEST_CASE("a message larger than the caller's buffer arrives in pieces") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(2, std::string(10000, 'x')));
        std::array<std::byte, 4096> buffer;
        std::size_t total = 0;
        for (;;) {
            auto r = co_await stream.receive(asio::buffer(buffer));
            CHECK(r.message_type == message_type::binary);
            CHECK(r.count <= buffer.size());
            total += r.count;
            if (r.end_of_message) break;
        }
        CHECK(total == 10000);
    });
}

TEST_CASE("a large payload is read straight into a large caller buffer, unmasked correctly") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::string payload(1 << 20, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7 + i / 251);
        auto sender = [&]() -> duplex::awaitable<void> { co_await peer.send(frame(2, payload)); };
        asio::co_spawn(stream.get_executor(), sender(), asio::detached);
        std::vector<std::byte> buffer(1 << 20);
        std::size_t total = 0;
        bool end = false;
        while (!end) {
            auto r = co_await stream.receive(asio::buffer(buffer.data() + total, buffer.size() - total));
            total += r.count;
            end = r.end_of_message;
        }
        REQUIRE(total == payload.size());
        CHECK(std::memcmp(buffer.data(), payload.data(), payload.size()) == 0);
    });
}

TEST_CASE("fragments arrive as pieces and a ping between them is answered with a pong") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(1, "Hel", false));
        co_await peer.send(frame(9, "ping!"));
        co_await peer.send(frame(0, "", false));
        co_await peer.send(frame(0, "lo", true));
        std::array<std::byte, 64> buffer;
        auto first = co_await stream.receive(asio::buffer(buffer));
        CHECK(first.count == 3);
        CHECK_FALSE(first.end_of_message);
        CHECK(first.message_type == message_type::text);
        auto second = co_await stream.receive(asio::buffer(buffer));
        CHECK(second.count == 2);
        CHECK(second.end_of_message);
        CHECK(second.message_type == message_type::text);
        auto pong = co_await peer.read_frame();
        REQUIRE(pong);
        CHECK(pong->opcode == 0xA);
        CHECK(test::text(pong->payload) == "ping!");
        CHECK_FALSE(pong->masked);
    });
}

TEST_CASE("unsolicited pongs are ignored") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(0xA, "unsolicited"));
        co_await peer.send(frame(2, "after"));
        std::array<std::byte, 64> buffer;
        auto r = co_await stream.receive(asio::buffer(buffer));
        CHECK(r.count == 5);
        CHECK(r.message_type == message_type::binary);
    });
}

TEST_CASE("send with end_of_message = false produces continuation frames") {
    for (auto r : {role::server, role::client}) {
        with_pair(r, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
            co_await stream.send(asio::buffer(std::string_view("one ")), message_type::text, false);
            co_await stream.send(asio::buffer(std::string_view("two ")), message_type::text, false);
            co_await stream.send(asio::buffer(std::string_view("three")), message_type::text, true);
            const std::pair<std::uint8_t, bool> expected[] = {{1, false}, {0, false}, {0, true}};
            std::string joined;
            for (auto [op, fin] : expected) {
                auto f = co_await peer.read_frame();
                REQUIRE(f);
                CHECK(f->opcode == op);
                CHECK(f->fin == fin);
                CHECK(f->masked == (r == role::client));
                joined += test::text(f->payload);
            }
            CHECK(joined == "one two three");
        });
    }
}

TEST_CASE("changing the message type inside a fragmented message is refused") {
    with_pair(role::server, [](auto& stream, auto&) -> duplex::awaitable<void> {
        co_await stream.send(asio::buffer(std::string_view("a")), message_type::text, false);
        const bool refused = co_await test::throws_invalid_argument(
            stream.send(asio::buffer(std::string_view("b")), message_type::binary, true));
        CHECK(refused);
    });
}

TEST_CASE("large server payloads go out from the caller's buffer, in order with queued frames") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::string big(200000, 'b');
        co_await stream.send(asio::buffer(std::string_view("small")), message_type::text);
        auto reader = [&]() -> duplex::awaitable<void> {
            auto first = co_await peer.read_frame();
            REQUIRE(first);
            CHECK(test::text(first->payload) == "small");
            auto second = co_await peer.read_frame();
            REQUIRE(second);
            CHECK(second->payload.size() == big.size());
            CHECK(test::text(second->payload) == big);
        };
        using namespace asio::experimental::awaitable_operators;
        co_await (stream.send(asio::buffer(big), message_type::binary) && reader());
    });
}

TEST_CASE("the peer's close arrives as a receive result and close() echoes it") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        raw_frame close;
        close.opcode = 8;
        close.payload = test::close_payload(4000, "app done");
        co_await peer.send(close);
        co_await peer.send(frame(1, "data after the close is ignored"));
        std::array<std::byte, 64> buffer;
        auto r = co_await stream.receive(asio::buffer(buffer));
        CHECK(r.message_type == message_type::close);
        REQUIRE(r.close_status);
        CHECK(static_cast<unsigned>(*r.close_status) == 4000);
        CHECK(r.close_status_description == "app done");
        CHECK(stream.state() == websocket_state::close_received);
        const auto again = co_await test::error_of(stream.receive(asio::buffer(buffer)));
        CHECK(again == make_error_code(websocket_errc::invalid_state));
        // A client that reads the echoed close and then sees the server end the TCP connection.
        auto client_side = [&]() -> duplex::awaitable<void> {
            auto echoed = co_await peer.read_frame();
            REQUIRE(echoed);
            CHECK(echoed->opcode == 8);
            CHECK(echoed->payload == test::close_payload(4000, "app done"));
            const auto rest = co_await peer.read_to_end();
            CHECK(rest.empty());
            peer.socket().close();
        };
        using namespace asio::experimental::awaitable_operators;
        co_await (stream.close(*r.close_status, r.close_status_description) && client_side());
        CHECK(stream.state() == websocket_state::closed);
    });
}

TEST_CASE("an empty close is answered with an empty close") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        raw_frame close;
        close.opcode = 8;
        co_await peer.send(close);
        std::array<std::byte, 64> buffer;
        auto r = co_await stream.receive(asio::buffer(buffer));
        REQUIRE(r.close_status);
        CHECK(*r.close_status == close_status::empty);
        const auto [error, echoed] = co_await fail_with_peer(stream.close(*r.close_status), peer);
        CHECK_FALSE(error);
        CHECK(stream.state() == websocket_state::closed);
        REQUIRE(echoed);
        CHECK(echoed->opcode == 8);
        CHECK(echoed->payload.empty());
    });
}

TEST_CASE("close() from our side waits for the peer's close and discards data before it") {
    for (auto r : {role::server, role::client}) {
        with_pair(r, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
            auto peer_side = [&]() -> duplex::awaitable<void> {
                auto close = co_await peer.read_frame();
                REQUIRE(close);
                CHECK(close->opcode == 8);
                CHECK(close->payload == test::close_payload(1001, "going"));
                auto data = frame(1, "late data");
                data.masked = masked_as(r);
                co_await peer.send(data);
                raw_frame reply;
                reply.opcode = 8;
                reply.payload = test::close_payload(1001);
                reply.masked = masked_as(r);
                co_await peer.send(reply);
                if (r == role::client) peer.socket().shutdown(asio::socket_base::shutdown_send);  // the server ends TCP first
                co_await peer.read_to_end();
                peer.socket().close();
            };
            using namespace asio::experimental::awaitable_operators;
            co_await (stream.close(close_status::endpoint_unavailable, "going") && peer_side());
            CHECK(stream.state() == websocket_state::closed);
        });
    }
}

TEST_CASE("close() gives up after the close timeout when the peer never answers") {
    duplex::ws::stream_options options;
    options.close_timeout = std::chrono::milliseconds(200);
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::error_code caught;
        try {
            co_await stream.close(close_status::normal_closure);
        } catch (const duplex::websocket_error& e) {
            caught = e.code();
        }
        CHECK(caught == make_error_code(websocket_errc::close_timeout));
        CHECK(stream.state() == websocket_state::aborted);
        auto close = co_await peer.read_frame();
        REQUIRE(close);
        CHECK(close->opcode == 8);
    }, options);
}

TEST_CASE("close_output sends our close and receive still delivers until the peer's close") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await stream.close_output(close_status::normal_closure, "bye");
        CHECK(stream.state() == websocket_state::close_sent);
        const auto late = co_await test::error_of(stream.send(asio::buffer(std::string_view("x")), message_type::text));
        CHECK(late == make_error_code(websocket_errc::invalid_state));
        co_await peer.send(frame(1, "still here"));
        raw_frame close;
        close.opcode = 8;
        close.payload = test::close_payload(1000);
        co_await peer.send(close);
        std::array<std::byte, 64> buffer;
        auto data = co_await stream.receive(asio::buffer(buffer));
        CHECK(data.count == 10);
        auto end = co_await stream.receive(asio::buffer(buffer));
        REQUIRE(end.close_status);
        CHECK(stream.state() == websocket_state::closed);
    });
}

TEST_CASE("abort ends a pending receive with an aborted error") {
    with_pair(role::server, [](auto& stream, auto&) -> duplex::awaitable<void> {
        asio::steady_timer timer(stream.get_executor());
        timer.expires_after(std::chrono::milliseconds(10));
        timer.async_wait([&](std::error_code) { stream.abort(); });
        std::array<std::byte, 64> buffer;
        std::error_code caught;
        try {
            co_await stream.receive(asio::buffer(buffer));
        } catch (const duplex::websocket_error& e) {
            caught = e.code();
        }
        CHECK(caught == make_error_code(websocket_errc::aborted));
        CHECK(stream.state() == websocket_state::aborted);
    });
}

TEST_CASE("a second concurrent receive is refused") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::array<std::byte, 64> a, b;
        std::error_code caught;
        auto first = [&]() -> duplex::awaitable<void> { co_await stream.receive(asio::buffer(a)); };
        auto second = [&]() -> duplex::awaitable<void> {
            co_await asio::post(stream.get_executor(), duplex::use_awaitable);  // the first is pending by now
            caught = co_await test::error_of(stream.receive(asio::buffer(b)));
            co_await peer.send(frame(1, "end"));
        };
        using namespace asio::experimental::awaitable_operators;
        co_await (first() && second());
        CHECK(caught == make_error_code(websocket_errc::concurrent_receive));
    });
}

TEST_CASE("the transport ending without a close is reported as a premature close") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        peer.socket().close();
        std::array<std::byte, 64> buffer;
        std::error_code caught;
        try {
            co_await stream.receive(asio::buffer(buffer));
        } catch (const duplex::websocket_error& e) {
            caught = e.code();
        }
        CHECK(caught == make_error_code(websocket_errc::connection_closed_prematurely));
    });
}

TEST_CASE("receive_message gathers a fragmented message and enforces its maximum size") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(1, std::string(5000, 'a'), false));
        co_await peer.send(frame(0, std::string(5000, 'b'), true));
        std::string message;
        auto r = co_await stream.receive_message(message, 20000);
        CHECK(r.count == 10000);
        CHECK(r.end_of_message);
        CHECK(message == std::string(5000, 'a') + std::string(5000, 'b'));

        co_await peer.send(frame(2, std::string(600, 'c'), false));
        co_await peer.send(frame(0, std::string(600, 'c'), true));
        std::vector<std::byte> too_big;
        const auto [caught, close] = co_await fail_with_peer(stream.receive_message(too_big, 1000), peer);
        CHECK(caught == make_error_code(websocket_errc::message_too_big));
        REQUIRE(close);
        CHECK(code_of(*close) == 1009);
    });
}

TEST_CASE("protocol violations fail the connection with 1002") {
    auto with = [](raw_frame f, auto change) {
        change(f);
        return f;
    };
    const raw_frame text = frame(1, "x");
    SUBCASE("reserved bit 1") { expect_failure(role::server, {with(text, [](auto& f) { f.rsv1 = true; })}, websocket_errc::protocol_error, 1002); }
    SUBCASE("reserved bit 2") { expect_failure(role::server, {with(text, [](auto& f) { f.rsv2 = true; })}, websocket_errc::protocol_error, 1002); }
    SUBCASE("reserved bit 3") { expect_failure(role::client, {with(text, [](auto& f) { f.rsv3 = true; })}, websocket_errc::protocol_error, 1002); }
    SUBCASE("reserved data opcode") { expect_failure(role::server, {frame(3, "")}, websocket_errc::protocol_error, 1002); }
    SUBCASE("reserved control opcode") { expect_failure(role::client, {frame(0xB, "")}, websocket_errc::protocol_error, 1002); }
    SUBCASE("unmasked frame at a server") { expect_failure(role::server, {with(text, [](auto& f) { f.masked = false; })}, websocket_errc::protocol_error, 1002); }
    SUBCASE("control frame over 125 bytes") { expect_failure(role::server, {frame(9, std::string(126, 'p'))}, websocket_errc::protocol_error, 1002); }
    SUBCASE("fragmented control frame") { expect_failure(role::server, {frame(9, "p", false)}, websocket_errc::protocol_error, 1002); }
    SUBCASE("continuation without a message") { expect_failure(role::server, {frame(0, "c")}, websocket_errc::protocol_error, 1002); }
    SUBCASE("new message inside a fragmented one") { expect_failure(role::server, {frame(1, "a", false), frame(1, "b")}, websocket_errc::protocol_error, 1002); }
    SUBCASE("close with a 1-byte payload") { expect_failure(role::server, {frame(8, "x")}, websocket_errc::protocol_error, 1002); }
    SUBCASE("close with a reserved code") {
        raw_frame close;
        close.opcode = 8;
        close.payload = test::close_payload(1005);
        expect_failure(role::server, {close}, websocket_errc::protocol_error, 1002);
    }
}

TEST_CASE("a masked frame at a client fails the connection") {
    with_pair(role::client, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(1, "masked"));  // raw frames are masked unless told otherwise
        const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
        CHECK(caught == make_error_code(websocket_errc::protocol_error));
        REQUIRE(close);
        CHECK(close->masked);
        CHECK(close->payload == test::close_payload(1002, "a server sent a masked frame"));
    });
}

TEST_CASE("invalid UTF-8 fails the connection with 1007") {
    SUBCASE("in a text message") { expect_failure(role::server, {frame(1, "\xce\xba\xed\xa0\x80")}, websocket_errc::invalid_payload_data, 1007); }
    SUBCASE("a text message ending mid-sequence") { expect_failure(role::server, {frame(1, "ok\xe2\x82")}, websocket_errc::invalid_payload_data, 1007); }
    SUBCASE("split across fragments") {
        expect_failure(role::server, {frame(1, "\xf0\x90", false), frame(0, "\x80")}, websocket_errc::invalid_payload_data, 1007);
    }
    SUBCASE("in a close reason") {
        raw_frame close;
        close.opcode = 8;
        close.payload = test::close_payload(1000, "\xff");
        expect_failure(role::server, {close}, websocket_errc::invalid_payload_data, 1007);
    }
}

TEST_CASE("a UTF-8 sequence split across fragments is accepted") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(1, "\xf0\x9f", false));
        co_await peer.send(frame(0, "\x98\x80", true));
        std::string message;
        auto r = co_await stream.receive_message(message, 100);
        CHECK(message == "\xf0\x9f\x98\x80");
        CHECK(r.end_of_message);
    });
}

TEST_CASE("a message over the maximum size fails with 1009 before its payload is read") {
    duplex::ws::stream_options options;
    options.max_message_size = 1000;
    expect_failure(role::server, {frame(2, std::string(1001, 'x'))}, websocket_errc::message_too_big, 1009, options);
    expect_failure(role::server, {frame(2, std::string(600, 'x'), false), frame(0, std::string(401, 'x'))},
                   websocket_errc::message_too_big, 1009, options);
}

TEST_CASE("a 64-bit length with the top bit set fails the connection") {
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        std::vector<std::byte> header{std::byte(0x82), std::byte(0xFF), std::byte(0x80)};
        header.resize(2 + 8 + 4, std::byte(0));
        co_await peer.write(header);
        const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
        CHECK(caught == make_error_code(websocket_errc::protocol_error));
        REQUIRE(close);
        CHECK(code_of(*close) == 1002);
    });
}

TEST_CASE("the server answers a bad upgrade request and never opens") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::server);
        co_await peer.write(test::bytes("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"));
        std::string head;
        auto client_side = [&]() -> duplex::awaitable<void> {
            head = co_await peer.read_head();
            co_await peer.read_to_end();
            peer.socket().close();
        };
        using namespace asio::experimental::awaitable_operators;
        const auto refused = co_await (test::error_of(stream.accept()) && client_side());
        CHECK(refused == make_error_code(websocket_errc::handshake_failed));
        CHECK(head.starts_with("HTTP/1.1 426"));
        CHECK(head.find("Sec-WebSocket-Version: 13") != std::string::npos);
        CHECK(stream.state() == websocket_state::aborted);
    });
}

TEST_CASE("a client refuses a server whose Sec-WebSocket-Accept is wrong") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
        auto server_side = [&]() -> duplex::awaitable<void> {
            co_await peer.read_head();
            co_await peer.write(test::bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
        };
        asio::co_spawn(io, server_side(), asio::detached);
        std::error_code caught;
        try {
            co_await stream.handshake("x", "/");
        } catch (const duplex::websocket_error& e) {
            caught = e.code();
        }
        CHECK(caught == make_error_code(websocket_errc::handshake_failed));
    });
}

TEST_CASE("frames that arrive in the same read as the 101 response are not lost") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
        auto server_side = [&]() -> duplex::awaitable<void> {
            const auto head = co_await peer.read_head();
            const auto key = head.substr(head.find("Sec-WebSocket-Key: ") + 19, 24);
            auto bytes = test::bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: " + duplex::ws::handshake::compute_accept(key) + "\r\n\r\n");
            raw_frame hello = frame(1, "hello");
            hello.masked = false;
            const auto encoded = test::encode(hello);
            bytes.insert(bytes.end(), encoded.begin(), encoded.end());
            co_await peer.write(bytes);
        };
        asio::co_spawn(io, server_side(), asio::detached);
        co_await stream.handshake("x", "/");
        std::string message;
        co_await stream.receive_message(message, 100);
        CHECK(message == "hello");
    });
}
