// Helpers shared by the stream tests: run a coroutine to completion with a bound, and a raw peer that
// writes hand-made frames and reads what the stream sent, over a connected pair of Unix sockets.
#pragma once

#include <duplex/duplex.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

namespace test {

using local_socket = asio::local::stream_protocol::socket;

// Runs `body` on a fresh io_context until it finishes or the bound passes; rethrows its exception.
template <class F>
void run(F body, std::chrono::seconds bound = std::chrono::seconds(20)) {
    asio::io_context io;
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, body(io), [&](std::exception_ptr e) {
        done = true;
        failure = e;
    });
    io.run_for(bound);
    REQUIRE_MESSAGE(done, "the test coroutine did not finish in time");
    if (failure) std::rethrow_exception(failure);
}

inline std::vector<std::byte> bytes(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return {p, p + text.size()};
}

inline std::string text(const std::vector<std::byte>& data) {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
}

struct raw_frame {
    bool fin = true;
    bool rsv1 = false, rsv2 = false, rsv3 = false;
    std::uint8_t opcode = 1;
    std::vector<std::byte> payload;
    bool masked = true;
};

// Encodes a frame exactly as given (any opcode, any reserved bits), masked with a fixed key when asked.
inline std::vector<std::byte> encode(const raw_frame& f) {
    std::vector<std::byte> out(duplex::ws::max_header_size + f.payload.size());
    duplex::ws::frame_header h;
    h.fin = f.fin;
    h.rsv1 = f.rsv1;
    h.rsv2 = f.rsv2;
    h.rsv3 = f.rsv3;
    h.op = static_cast<duplex::ws::opcode>(f.opcode);
    h.masked = f.masked;
    h.key = {0x12, 0x34, 0x56, 0x78};
    h.payload_length = f.payload.size();
    const auto n = duplex::ws::encode_header(h, out.data());
    if (f.masked)
        duplex::ws::copy_masked(out.data() + n, f.payload.data(), f.payload.size(), h.key);
    else if (!f.payload.empty())
        std::memcpy(out.data() + n, f.payload.data(), f.payload.size());
    out.resize(n + f.payload.size());
    return out;
}

inline std::vector<std::byte> close_payload(std::uint16_t code, std::string_view reason = {}) {
    std::vector<std::byte> p{std::byte(code >> 8), std::byte(code & 0xFF)};
    for (char c : reason) p.push_back(std::byte(c));
    return p;
}

// The far end of the socket pair, speaking raw bytes.
class raw_peer {
public:
    explicit raw_peer(local_socket socket) : socket_(std::move(socket)) {}

    duplex::awaitable<void> write(const std::vector<std::byte>& data) {
        co_await asio::async_write(socket_, asio::buffer(data), duplex::use_awaitable);
    }
    duplex::awaitable<void> send(const raw_frame& f) { co_await write(encode(f)); }

    // Reads one frame the stream sent (unmasking it when masked); nullopt at end of stream.
    duplex::awaitable<std::optional<raw_frame>> read_frame() {
        for (;;) {
            duplex::ws::frame_header h;
            const auto r = duplex::ws::decode_header(buffer_.data(), buffer_.size(), h);
            if (r.status == duplex::ws::decode_status::ok && buffer_.size() >= r.header_size + h.payload_length) {
                raw_frame f;
                f.fin = h.fin;
                f.rsv1 = h.rsv1;
                f.rsv2 = h.rsv2;
                f.rsv3 = h.rsv3;
                f.opcode = static_cast<std::uint8_t>(h.op);
                f.masked = h.masked;
                f.payload.assign(buffer_.begin() + static_cast<std::ptrdiff_t>(r.header_size),
                                 buffer_.begin() + static_cast<std::ptrdiff_t>(r.header_size + h.payload_length));
                if (h.masked) duplex::ws::apply_mask(f.payload.data(), f.payload.size(), h.key);
                buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(r.header_size + h.payload_length));
                co_return f;
            }
            const bool more = co_await read_some();
            if (!more) co_return std::nullopt;
        }
    }

    // Reads until the stream closes its end; returns the bytes that came before.
    duplex::awaitable<std::vector<std::byte>> read_to_end() {
        bool more = true;
        while (more) more = co_await read_some();
        co_return std::exchange(buffer_, {});
    }

    // Reads an HTTP head (up to the blank line).
    duplex::awaitable<std::string> read_head() {
        for (;;) {
            const std::string_view seen(reinterpret_cast<const char*>(buffer_.data()), buffer_.size());
            if (const auto end = seen.find("\r\n\r\n"); end != std::string_view::npos) {
                std::string head(seen.substr(0, end + 4));
                buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(end + 4));
                co_return head;
            }
            const bool more = co_await read_some();
            if (!more) co_return std::string(seen);
        }
    }

    local_socket& socket() { return socket_; }

private:
    duplex::awaitable<bool> read_some() {
        std::array<std::byte, 64 * 1024> chunk;
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(chunk), duplex::detail::use_nothrow_awaitable);
        buffer_.insert(buffer_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
        co_return !ec;
    }

    local_socket socket_;
    std::vector<std::byte> buffer_;
};

// A stream in `role` already past the handshake, and the raw peer at the other end.
template <class Executor>
std::pair<duplex::ws::stream<local_socket>, raw_peer> open_pair(Executor executor, duplex::ws::role role,
                                                                duplex::ws::stream_options options = {}) {
    local_socket a(executor), b(executor);
    asio::local::connect_pair(a, b);
    duplex::ws::stream<local_socket> stream(std::move(a), role, options);
    return {std::move(stream), raw_peer(std::move(b))};
}

}  // namespace test

#include <asio/experimental/awaitable_operators.hpp>

namespace test {

// Completes the opening handshake between a stream and the raw peer, whichever the stream's role.
inline duplex::awaitable<void> open(duplex::ws::stream<local_socket>& stream, raw_peer& peer, duplex::ws::role role) {
    using namespace asio::experimental::awaitable_operators;
    if (role == duplex::ws::role::server) {
        auto client_side = [&]() -> duplex::awaitable<void> {
            co_await peer.write(bytes("GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
            const auto head = co_await peer.read_head();
            REQUIRE(head.starts_with("HTTP/1.1 101"));
        };
        co_await (stream.accept() && client_side());
    } else {
        auto server_side = [&]() -> duplex::awaitable<void> {
            const auto head = co_await peer.read_head();
            const auto at = head.find("Sec-WebSocket-Key: ");
            REQUIRE(at != std::string::npos);
            const auto key = head.substr(at + 19, 24);
            co_await peer.write(bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      "Sec-WebSocket-Accept: " + duplex::ws::handshake::compute_accept(key) + "\r\n\r\n"));
        };
        co_await (stream.handshake("test", "/ws") && server_side());
    }
    REQUIRE(stream.state() == duplex::websocket_state::open);
}

}  // namespace test

namespace test {

// The websocket_error an operation ends with (none when it succeeds). doctest's assertion macros cannot
// contain co_await, so tests await through these and assert on the result.
template <class T>
duplex::awaitable<std::error_code> error_of(duplex::awaitable<T> operation) {
    try {
        co_await std::move(operation);
    } catch (const duplex::websocket_error& e) {
        co_return e.code();
    }
    co_return std::error_code{};
}

template <class T>
duplex::awaitable<bool> throws_invalid_argument(duplex::awaitable<T> operation) {
    try {
        co_await std::move(operation);
    } catch (const std::invalid_argument&) {
        co_return true;
    }
    co_return false;
}

}  // namespace test
