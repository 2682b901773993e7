// Every limit of ws::stream_options crossed at its boundary: the limit passes, one past it fails with the
// documented close code (or HTTP status) and websocket_errc. Timeouts are configured small, and each test
// waits for the outcome rather than measuring how long it took.
#include <duplex/websocket/stream.hpp>

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <asio/experimental/awaitable_operators.hpp>

using duplex::message_type;
using duplex::websocket_errc;
using duplex::websocket_state;
using duplex::ws::role;
using test::raw_frame;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

using options = duplex::ws::stream_options;
using stream_type = duplex::ws::stream<test::local_socket>;

template <class F>
void with_pair(role r, F body, options o = {}) {
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), r, o);
        co_await test::open(stream, peer, r);
        co_await body(stream, peer);
    });
}

raw_frame frame(std::uint8_t op, std::string_view payload, bool fin = true) {
    raw_frame f;
    f.opcode = op;
    f.fin = fin;
    f.payload = test::bytes(payload);
    return f;
}

// A masked data frame's header announcing `length` bytes, without the payload: a limit on the length
// must act on the header alone (a stream that waited for the payload would never answer).
std::vector<std::byte> header_only(std::uint8_t op, std::uint64_t length, bool rsv1 = false) {
    duplex::ws::frame_header h;
    h.op = static_cast<duplex::ws::opcode>(op);
    h.rsv1 = rsv1;
    h.masked = true;
    h.key = {1, 2, 3, 4};
    h.payload_length = length;
    std::vector<std::byte> out(duplex::ws::max_header_size);
    out.resize(duplex::ws::encode_header(h, out.data()));
    return out;
}

std::uint16_t code_of(const raw_frame& close) {
    REQUIRE(close.payload.size() >= 2);
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(close.payload[0]) << 8) |
                                      std::to_integer<unsigned>(close.payload[1]));
}

duplex::awaitable<void> receive_forever(stream_type& stream) {
    std::array<std::byte, 1024> buffer;
    for (;;) co_await stream.receive(asio::buffer(buffer));
}

// Reads frames until a close frame (returned) or the end of the connection (nullopt), then to the end;
// counts the other frames on the way.
duplex::awaitable<std::optional<raw_frame>> read_until_close(test::raw_peer& peer, std::size_t& other_frames) {
    for (;;) {
        auto f = co_await peer.read_frame();
        if (!f) co_return std::nullopt;
        if (f->opcode == 0x8) {
            co_await peer.read_to_end();
            co_return f;
        }
        ++other_frames;
    }
}

// The failing side and a peer that reads up to the close frame, then the rest until the stream ends the
// connection: (what the stream threw, the close frame).
template <class T>
duplex::awaitable<std::pair<std::error_code, std::optional<raw_frame>>> fail_with_peer(duplex::awaitable<T> failing,
                                                                                      test::raw_peer& peer) {
    std::optional<raw_frame> close;
    auto peer_side = [&]() -> duplex::awaitable<void> {
        std::size_t before = 0;
        close = co_await read_until_close(peer, before);
        peer.socket().close();
    };
    const auto caught = co_await (test::error_of(std::move(failing)) && peer_side());
    co_return std::pair{caught, close};
}

// Expects the stream, receiving, to fail with `errc` and to send a close frame with `code` first.
duplex::awaitable<void> expect_receive_failure(stream_type& stream, test::raw_peer& peer, websocket_errc errc,
                                               std::uint16_t code) {
    const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
    CHECK(caught == make_error_code(errc));
    CHECK(stream.state() == websocket_state::aborted);
    REQUIRE(close);
    CHECK(close->opcode == 0x8);
    CHECK(code_of(*close) == code);
}

// Polls `done` on the stream's executor: the tests wait for an outcome, not for a duration.
duplex::awaitable<void> wait_until(const asio::any_io_executor& executor, const std::function<bool()>& done) {
    asio::steady_timer timer(executor);
    while (!done()) {
        timer.expires_after(5ms);
        co_await timer.async_wait(duplex::use_awaitable);
    }
}

const std::string upgrade_start = "GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

// Offers an upgrade request to a server stream with `o`; returns what accept() threw and the status line.
std::pair<std::error_code, std::string> try_upgrade(const std::string& request, options o) {
    std::error_code caught;
    std::string head;
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::server, o);
        co_await peer.write(test::bytes(request));
        auto client_side = [&]() -> duplex::awaitable<void> {
            head = co_await peer.read_head();
            if (!head.starts_with("HTTP/1.1 101")) co_await peer.read_to_end();
            peer.socket().close();
        };
        caught = co_await (test::error_of(stream.accept()) && client_side());
    });
    return {caught, head.substr(0, head.find("\r\n"))};
}

}  // namespace

// ---- receiving: message size, frame size, fragments ----

TEST_CASE("max_message_size: a message of exactly the limit arrives, one byte more fails with 1009") {
    options o;
    o.max_message_size = 1000;
    with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        co_await peer.send(frame(2, std::string(1000, 'a')));
        co_await peer.send(frame(2, std::string(600, 'b'), false));
        co_await peer.send(frame(0, std::string(400, 'b')));
        std::vector<std::byte> message;
        auto r = co_await stream.receive_message(message, SIZE_MAX);
        CHECK(r.count == 1000);
        r = co_await stream.receive_message(message, SIZE_MAX);
        CHECK(r.count == 1000);
        co_await peer.send(frame(2, std::string(600, 'c'), false));
        co_await peer.write(header_only(0, 401));  // the payload never comes: refused at the header
        co_await expect_receive_failure(stream, peer, websocket_errc::message_too_big, 1009);
    }, o);
}

TEST_CASE("max_frame_size: a frame of exactly the limit arrives, one byte more fails with 1009 at its header") {
    options o;
    o.max_frame_size = 1000;
    SUBCASE("uncompressed") {
        with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
            // A message over the frame limit is fine in frames under it.
            co_await peer.send(frame(2, std::string(1000, 'a'), false));
            co_await peer.send(frame(0, std::string(1000, 'a')));
            std::vector<std::byte> message;
            const auto r = co_await stream.receive_message(message, SIZE_MAX);
            CHECK(r.count == 2000);
            co_await peer.write(header_only(2, 1001));
            co_await expect_receive_failure(stream, peer, websocket_errc::frame_too_big, 1009);
        }, o);
    }
    SUBCASE("compressed: the limit bounds the compressed bytes, which the message limit does not") {
        test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
            auto [stream, peer] = test::open_pair(io.get_executor(), role::server, o);
            auto client_side = [&]() -> duplex::awaitable<void> {
                co_await peer.write(test::bytes(upgrade_start + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
                const auto head = co_await peer.read_head();
                REQUIRE(head.starts_with("HTTP/1.1 101"));
                REQUIRE(head.find("permessage-deflate") != std::string::npos);
            };
            co_await (stream.accept(duplex::deflate::options{}) && client_side());
            co_await peer.write(header_only(2, 1001, true));
            co_await expect_receive_failure(stream, peer, websocket_errc::frame_too_big, 1009);
        });
    }
}

TEST_CASE("max_fragments_per_message: a message in exactly the limit arrives, one fragment more fails with 1008") {
    options o;
    o.max_fragments_per_message = 4;
    with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        // Twice, so the count starts again with each message; a ping between fragments is not one.
        for (int round = 0; round < 2; ++round) {
            co_await peer.send(frame(1, "a", false));
            co_await peer.send(frame(0, "", false));
            co_await peer.send(frame(9, "ping"));
            co_await peer.send(frame(0, "b", false));
            co_await peer.send(frame(0, "c"));
            std::string message;
            const auto r = co_await stream.receive_message(message, SIZE_MAX);
            CHECK(r.end_of_message);
            CHECK(message == "abc");
        }
        for (int i = 0; i < 4; ++i) co_await peer.send(frame(i == 0 ? 2 : 0, "", false));
        co_await peer.write(header_only(0, 1 << 20));  // the fifth is refused whatever it carries
        co_await expect_receive_failure(stream, peer, websocket_errc::too_many_fragments, 1008);
    }, o);
}

TEST_CASE("max_fragments_per_message: the close frame says 1008") {
    options o;
    o.max_fragments_per_message = 1;
    with_pair(role::client, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        auto first = frame(1, "one", false), second = frame(0, "two");
        first.masked = second.masked = false;
        co_await peer.send(first);
        co_await peer.send(second);
        std::array<std::byte, 16> buffer;
        const auto r = co_await stream.receive(asio::buffer(buffer));
        CHECK(r.count == 3);
        co_await expect_receive_failure(stream, peer, websocket_errc::too_many_fragments, 1008);
    }, o);
}

// ---- the opening handshake: HTTP head bytes, header count, handshake timeout ----

TEST_CASE("http_limits.max_head_bytes: an upgrade request of exactly the limit is accepted, one byte more gets 431") {
    const auto request = [](std::size_t size) {
        const std::string before = upgrade_start + "X-Pad: ";
        return before + std::string(size - before.size() - 4, 'p') + "\r\n\r\n";
    };
    options o;
    o.http_limits.max_head_bytes = 400;
    const auto [accepted, ok] = try_upgrade(request(400), o);
    CHECK_FALSE(accepted);
    CHECK(ok == "HTTP/1.1 101 Switching Protocols");
    const auto [refused, status] = try_upgrade(request(401), o);
    CHECK(refused == make_error_code(websocket_errc::handshake_failed));
    CHECK(status == "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_CASE("http_limits.max_header_count: an upgrade request with exactly the limit is accepted, one more gets 431") {
    options o;
    o.http_limits.max_header_count = 7;  // the five an upgrade needs and two more
    const auto [accepted, ok] = try_upgrade(upgrade_start + "X-A: 1\r\nX-B: 2\r\n\r\n", o);
    CHECK_FALSE(accepted);
    CHECK(ok == "HTTP/1.1 101 Switching Protocols");
    const auto [refused, status] = try_upgrade(upgrade_start + "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n", o);
    CHECK(refused == make_error_code(websocket_errc::handshake_failed));
    CHECK(status == "HTTP/1.1 431 Request Header Fields Too Large");
}

TEST_CASE("http_limits.max_head_bytes: a client refuses an upgrade response over the limit") {
    options o;
    o.http_limits.max_head_bytes = 1024;
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::client, o);
        auto server_side = [&]() -> duplex::awaitable<void> {
            co_await peer.read_head();
            co_await peer.write(test::bytes("HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + std::string(1024, 'p') +
                                            "\r\n\r\n"));
        };
        const auto caught = co_await (test::error_of(stream.handshake("test", "/ws")) && server_side());
        CHECK(caught == make_error_code(websocket_errc::handshake_failed));
        CHECK(stream.state() == websocket_state::aborted);
    });
}

TEST_CASE("handshake_timeout: a client that never finishes its upgrade request is dropped") {
    options o;
    o.handshake_timeout = 100ms;
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::server, o);
        co_await peer.write(test::bytes("GET /ws HTTP/1.1\r\nHost: test\r\n"));
        auto client_side = [&]() -> duplex::awaitable<void> {
            const auto rest = co_await peer.read_to_end();  // ends when the server drops the connection
            CHECK(rest.empty());
        };
        const auto caught = co_await (test::error_of(stream.accept()) && client_side());
        CHECK(caught == make_error_code(websocket_errc::handshake_failed));
        CHECK(stream.state() == websocket_state::aborted);
    });
}

TEST_CASE("handshake_timeout: a server that never answers the upgrade fails the client's handshake") {
    options o;
    o.handshake_timeout = 100ms;
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::client, o);
        auto server_side = [&]() -> duplex::awaitable<void> { co_await peer.read_to_end(); };
        const auto caught = co_await (test::error_of(stream.handshake("test", "/ws")) && server_side());
        CHECK(caught == make_error_code(websocket_errc::handshake_failed));
    });
}

// close_timeout is crossed by "close() gives up after the close timeout when the peer never answers"
// (stream_test.cpp); here it bounds how long a slow reader's connection lingers after its failure.

// ---- sending: the send queue and the send timeout ----

TEST_CASE("max_send_queue_bytes: a send that finds the limit queued goes through, one that finds more fails") {
    options o;
    o.max_send_queue_bytes = 1000;
    o.send_queue_high_water = 1 << 20;  // no backpressure: the queue grows until the limit
    o.close_timeout = 100ms;
    with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        // Sends that do not wait are queued together until the coroutine yields: 100-byte frames.
        const std::string payload(98, 'q');
        for (int i = 0; i < 10; ++i) co_await stream.send(asio::buffer(payload), message_type::binary);
        const auto at_limit = co_await test::error_of(stream.send(asio::buffer(payload), message_type::binary));
        CHECK_FALSE(at_limit);  // 1000 bytes were queued
        const auto over = co_await test::error_of(stream.send(asio::buffer(payload), message_type::binary));
        CHECK(over == make_error_code(websocket_errc::send_queue_full));  // 1100 were
        CHECK(stream.state() == websocket_state::aborted);
        const auto later = co_await test::error_of(stream.send(asio::buffer(payload), message_type::binary));
        CHECK(later == make_error_code(websocket_errc::send_queue_full));
        // What the peer had not taken was dropped: the close frame comes first, then the end.
        const auto close = co_await peer.read_frame();
        REQUIRE(close);
        CHECK(close->opcode == 0x8);
        CHECK(code_of(*close) == 1008);
        const auto rest = co_await peer.read_to_end();  // the transport is dropped after close_timeout
        CHECK(rest.empty());
    }, o);
}

TEST_CASE("max_send_queue_bytes: many senders to a peer that does not read all fail, the peer gets 1008") {
    options o;
    o.send_queue_high_water = 4 * 1024;
    o.max_send_queue_bytes = 16 * 1024;
    for (auto r : {role::server, role::client}) {
        with_pair(r, [r](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
            constexpr int senders = 64;
            std::vector<std::error_code> errors;
            std::optional<std::error_code> receive_error;
            auto send_forever = [&]() -> duplex::awaitable<void> {
                const std::string payload(1024, 's');
                for (;;) co_await stream.send(asio::buffer(payload), message_type::binary);
            };
            const auto executor = stream.get_executor();
            asio::co_spawn(executor, test::error_of(receive_forever(stream)),
                           [&](std::exception_ptr, std::error_code ec) { receive_error = ec; });
            co_await asio::post(executor, duplex::use_awaitable);  // the receive is pending by now
            for (int i = 0; i < senders; ++i)
                asio::co_spawn(executor, test::error_of(send_forever()), [&](std::exception_ptr, std::error_code ec) {
                    errors.push_back(ec);
                });
            const std::function<bool()> all_failed = [&] { return errors.size() == senders; };
            co_await wait_until(executor, all_failed);
            for (const auto& ec : errors) CHECK(ec == make_error_code(websocket_errc::send_queue_full));
            CHECK(stream.state() == websocket_state::aborted);
            // The peer now reads: what was in flight, then our close, which it answers; the pending
            // receive sees the answer and ends the connection.
            auto close = co_await peer.read_frame();
            while (close && close->opcode != 0x8) close = co_await peer.read_frame();
            REQUIRE(close);
            CHECK(code_of(*close) == 1008);
            CHECK(close->masked == (r == role::client));
            auto reply = frame(8, "");
            reply.payload = test::close_payload(1008);
            reply.masked = r == role::server;
            co_await peer.send(reply);
            co_await peer.read_to_end();
            const std::function<bool()> receive_ended = [&] { return receive_error.has_value(); };
            co_await wait_until(executor, receive_ended);
            CHECK(*receive_error == make_error_code(websocket_errc::send_queue_full));
        }, o);
    }
}

TEST_CASE("max_send_queue_bytes: pongs for a peer that pings and never reads fail the connection") {
    options o;
    o.max_send_queue_bytes = 1000;  // under the high-water mark: reading goes on until the limit
    o.receive_buffer_size = 256;    // two pings per read: the queue grows once the socket's buffer is full
    o.max_receive_buffer_size = 256;  // (and the buffer does not grow with the flood)
    o.close_timeout = 1s;
    with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        std::vector<std::byte> pings;
        const auto ping = test::encode(frame(9, std::string(125, 'p')));
        for (int i = 0; i < 20000; ++i) pings.insert(pings.end(), ping.begin(), ping.end());
        asio::co_spawn(stream.get_executor(), [&]() -> duplex::awaitable<void> {
            co_await asio::async_write(peer.socket(), asio::buffer(pings), duplex::detail::use_nothrow_awaitable);
        }, asio::detached);
        const auto caught = co_await test::error_of(receive_forever(stream));
        CHECK(caught == make_error_code(websocket_errc::send_queue_full));
        CHECK(stream.state() == websocket_state::aborted);
        std::size_t pongs = 0;
        const auto close = co_await read_until_close(peer, pongs);
        CHECK(pongs > 0);
        REQUIRE(close);
        CHECK(code_of(*close) == 1008);
    }, o);
}

TEST_CASE("send_timeout: a peer that stops reading fails a waiting send") {
    options o;
    o.send_timeout = 200ms;
    o.close_timeout = 200ms;
    SUBCASE("large payloads written from the caller's buffer") {
        with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
            const std::string payload(64 * 1024, 'd');
            auto send_forever = [&]() -> duplex::awaitable<void> {
                for (;;) co_await stream.send(asio::buffer(payload), message_type::binary);
            };
            const auto caught = co_await test::error_of(send_forever());
            CHECK(caught == make_error_code(websocket_errc::send_timeout));
            CHECK(stream.state() == websocket_state::aborted);
            co_await peer.read_to_end();  // the transport was dropped
        }, o);
    }
    SUBCASE("small messages held by backpressure") {
        with_pair(role::client, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
            const std::string payload(1000, 'd');
            auto send_forever = [&]() -> duplex::awaitable<void> {
                for (;;) co_await stream.send(asio::buffer(payload), message_type::binary);
            };
            const auto caught = co_await test::error_of(send_forever());
            CHECK(caught == make_error_code(websocket_errc::send_timeout));
            co_await peer.read_to_end();
        }, o);
    }
    SUBCASE("a receive held back by the full queue") {
        o.send_queue_high_water = 1024;
        with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
            std::vector<std::byte> pings;
            const auto ping = test::encode(frame(9, std::string(125, 'p')));
            for (int i = 0; i < 20000; ++i) pings.insert(pings.end(), ping.begin(), ping.end());
            asio::co_spawn(stream.get_executor(), [&]() -> duplex::awaitable<void> {
                co_await asio::async_write(peer.socket(), asio::buffer(pings), duplex::detail::use_nothrow_awaitable);
            }, asio::detached);
            const auto caught = co_await test::error_of(receive_forever(stream));
            CHECK(caught == make_error_code(websocket_errc::send_timeout));
            co_await peer.read_to_end();
        }, o);
    }
}

TEST_CASE("send_timeout: a peer that reads slowly but steadily is not timed out") {
    options o;
    o.send_timeout = 1s;  // the peer takes something every 10 ms
    o.send_queue_high_water = 4 * 1024;
    with_pair(role::server, [](stream_type& stream, test::raw_peer& peer) -> duplex::awaitable<void> {
        constexpr std::size_t total = 1024 * 1024;
        const std::string payload(64 * 1024, 'd');
        auto sender = [&]() -> duplex::awaitable<void> {
            for (std::size_t sent = 0; sent < total; sent += payload.size())
                co_await stream.send(asio::buffer(payload), message_type::binary);
        };
        auto slow_reader = [&]() -> duplex::awaitable<void> {
            asio::steady_timer timer(stream.get_executor());
            std::array<std::byte, 16 * 1024> chunk;
            std::size_t received = 0;
            while (received < total) {  // frame headers come on top: stop once the payload bytes are in
                timer.expires_after(10ms);
                co_await timer.async_wait(duplex::use_awaitable);
                received += co_await peer.socket().async_read_some(asio::buffer(chunk), duplex::use_awaitable);
            }
        };
        const auto caught = co_await (test::error_of(sender()) && slow_reader());
        CHECK_FALSE(caught);
        CHECK(stream.state() == websocket_state::open);
    }, o);
}
