// The receive side's buffers: the read buffer grows with the traffic and starts small again after a
// quiet spell, receive hands out pieces of at most the caller's buffer, receive_message sizes its output
// from the frame header and reuses its capacity, and text is unmasked and validated chunk by chunk.
#include <duplex/websocket/stream.hpp>

#include <doctest/doctest.h>

#include "test_support.hpp"

using duplex::message_type;
using duplex::websocket_errc;
using duplex::ws::role;
using test::raw_frame;

namespace {

using namespace std::chrono_literals;

template <class F>
void with_pair(role r, F body, duplex::ws::stream_options options = {}) {
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), r, options);
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

// The failing receive and a peer that reads the close frame and ends its side, as in stream_test.cpp.
duplex::awaitable<std::error_code> fail_with_peer(duplex::awaitable<void> failing, test::raw_peer& peer) {
    auto peer_side = [&]() -> duplex::awaitable<void> {
        co_await peer.read_frame();
        co_await peer.read_to_end();
        peer.socket().close();
    };
    using namespace asio::experimental::awaitable_operators;
    co_return co_await (test::error_of(std::move(failing)) && peer_side());
}

std::string patterned(std::size_t size) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(i * 7 + i / 251);
    return s;
}

}  // namespace

TEST_CASE("the read buffer grows while reads fill it, receive hands out pieces of the caller's size, and a quiet "
          "connection starts small again") {
    duplex::ws::stream_options options;
    options.release_receive_buffer_after = 200ms;
    with_pair(role::server, [](auto& stream, auto& peer) -> duplex::awaitable<void> {
        const auto payload = patterned(16 * 1024);
        auto sender = [&]() -> duplex::awaitable<void> {
            for (int i = 0; i < 8; ++i) co_await peer.send(frame(2, payload));
        };
        asio::co_spawn(stream.get_executor(), sender(), asio::detached);
        std::array<std::byte, 4096> buffer;
        std::size_t largest_buffer = 0;
        for (int message = 0; message < 8; ++message) {
            std::string got;
            for (;;) {
                auto r = co_await stream.receive(asio::buffer(buffer));
                CHECK(r.count <= buffer.size());
                got.append(reinterpret_cast<const char*>(buffer.data()), r.count);
                largest_buffer = std::max(largest_buffer, stream.receive_buffer_bytes());
                if (r.end_of_message) break;
            }
            CHECK(got == payload);
        }
        CHECK(largest_buffer > 4096);        // the 16 KiB messages filled it: it grew
        CHECK(largest_buffer <= 64 * 1024);  // up to max_receive_buffer_size
        // Quiet for longer than release_receive_buffer_after: the buffer is given back, and the next
        // message (a small one) finds it at its first size.
        asio::steady_timer pause(stream.get_executor(), 300ms);
        auto later = [&]() -> duplex::awaitable<void> {
            co_await pause.async_wait(duplex::use_awaitable);
            co_await peer.send(frame(2, "quiet"));
            pause.expires_after(300ms);
            co_await pause.async_wait(duplex::use_awaitable);
            co_await peer.send(frame(2, "again"));
        };
        asio::co_spawn(stream.get_executor(), later(), asio::detached);
        auto first = co_await stream.receive(asio::buffer(buffer));
        CHECK(first.count == 5);
        auto second = co_await stream.receive(asio::buffer(buffer));
        CHECK(second.count == 5);
        CHECK(std::string_view(reinterpret_cast<const char*>(buffer.data()), 5) == "again");
        CHECK(stream.receive_buffer_bytes() == 4096);
    }, options);
}

TEST_CASE("receive_message reads a large payload straight into its output and reuses the output's capacity") {
    for (auto r : {role::server, role::client}) {
        with_pair(r, [r](auto& stream, auto& peer) -> duplex::awaitable<void> {
            const auto large = patterned(1 << 20);
            auto f = frame(2, large);
            f.masked = r == role::server;
            auto sender = [&]() -> duplex::awaitable<void> { co_await peer.send(f); };
            asio::co_spawn(stream.get_executor(), sender(), asio::detached);
            std::string message = "left from before";
            auto got = co_await stream.receive_message(message, 2 << 20);
            CHECK(got.count == large.size());
            CHECK(got.message_type == message_type::binary);
            CHECK(message.size() == large.size());
            CHECK(message == large);
            // A smaller message goes into the same storage.
            const auto* storage = message.data();
            auto small = frame(1, "hello");
            small.masked = r == role::server;
            co_await peer.send(small);
            got = co_await stream.receive_message(message, 2 << 20);
            CHECK(message == "hello");
            CHECK(got.message_type == message_type::text);
            CHECK(message.data() == storage);
            // Fragments, and a ping between them, into a vector.
            for (auto piece : {frame(2, "ab", false), frame(9, "p"), frame(0, "", false), frame(0, "cd")}) {
                piece.masked = r == role::server;
                co_await peer.send(piece);
            }
            std::vector<std::byte> bytes(100, std::byte{1});
            got = co_await stream.receive_message(bytes, 100);
            CHECK(test::text(bytes) == "abcd");
            CHECK(got.count == 4);
        });
    }
}

TEST_CASE("receive_message hands over what it gathered of an unfinished message with the peer's close") {
    for (auto r : {role::server, role::client}) {
        with_pair(r, [r](auto& stream, auto& peer) -> duplex::awaitable<void> {
            // A fragment, then the close (control frames may come between fragments, RFC 6455 §5.4).
            auto first = frame(2, "partial", false);
            auto close = frame(8, "\x03\xe8" "bye");
            first.masked = close.masked = r == role::server;
            co_await peer.send(first);
            co_await peer.send(close);
            std::string message;
            auto got = co_await stream.receive_message(message, 1024);
            CHECK(got.message_type == message_type::close);
            CHECK(got.close_status == duplex::close_status::normal_closure);
            CHECK(got.close_status_description == "bye");
            CHECK(got.count == message.size());
            CHECK(message == "partial");
        });
    }
}

TEST_CASE("text is unmasked and validated chunk by chunk: sequences across chunk boundaries, an error far in") {
    std::string text;
    while (text.size() < 100'000) text += "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xe2\x82\xac ";  // κόσμε €
    for (std::size_t caller : {std::size_t{4096}, std::size_t{1} << 20}) {  // through the buffer, and directly
        CAPTURE(caller);
        with_pair(role::server, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
            auto sender = [&]() -> duplex::awaitable<void> { co_await peer.send(frame(1, text)); };
            asio::co_spawn(stream.get_executor(), sender(), asio::detached);
            std::vector<std::byte> buffer(caller);
            std::string got;
            for (;;) {
                auto r = co_await stream.receive(asio::buffer(buffer));
                got.append(reinterpret_cast<const char*>(buffer.data()), r.count);
                if (r.end_of_message) break;
            }
            CHECK(got == text);
        });
        auto broken = text;
        broken[70'001] = '\xff';  // far past the first chunks
        with_pair(role::server, [&](auto& stream, auto& peer) -> duplex::awaitable<void> {
            auto sender = [&]() -> duplex::awaitable<void> { co_await peer.send(frame(1, broken)); };
            asio::co_spawn(stream.get_executor(), sender(), asio::detached);
            std::vector<std::byte> buffer(caller);
            auto receive_all = [&]() -> duplex::awaitable<void> {
                for (;;) co_await stream.receive(asio::buffer(buffer));
            };
            const auto caught = co_await fail_with_peer(receive_all(), peer);
            CHECK(caught == make_error_code(websocket_errc::invalid_payload_data));
        });
    }
}
