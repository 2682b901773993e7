// The stream with permessage-deflate (RFC 7692) against a raw peer over a Unix socket pair: the
// negotiation in accept() and handshake(), compressed messages both ways (whole, fragmented, between
// control frames, into small buffers), message_flags::disable_compression, context takeover on and off,
// and every way a peer can break the extension's rules.
#include <duplex/websocket/stream.hpp>

#include <doctest/doctest.h>

#include "test_support.hpp"

#include <random>

using duplex::message_type;
using duplex::websocket_errc;
using duplex::websocket_state;
using duplex::ws::role;
using test::raw_frame;
// zlib declares a global function deflate(), so the namespace is always written in full.
using codec = duplex::deflate::permessage;
using duplex::deflate::decompress_status;
using duplex::deflate::negotiated;
using bytes = std::vector<std::byte>;

namespace {

using namespace asio::experimental::awaitable_operators;

bytes chatty_text(std::size_t n, unsigned seed) {
    static constexpr std::string_view words[] = {"hello", "world", "message", "\"user\":", "{\"id\":", "true",
                                                 "null", "compression", "deflate", "websocket", ", ", "}\n"};
    std::mt19937 rng(seed);
    std::string s;
    while (s.size() < n) {
        s += words[rng() % std::size(words)];
        s += std::to_string(rng() % 1000);
    }
    s.resize(n);
    return test::bytes(s);
}

bytes random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    bytes out(n);
    for (auto& b : out) b = static_cast<std::byte>(rng());
    return out;
}

std::string_view view(const bytes& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// The raw peer's side of the handshake with compression, the stream's role given. `extension` is what
// the peer offers (stream = server) or answers (stream = client); empty for none.
duplex::awaitable<std::string> open_with(duplex::ws::stream<test::local_socket>& stream, test::raw_peer& peer, role r,
                                         std::string extension, std::optional<duplex::deflate::options> ours) {
    std::string head;
    const std::string extension_field = extension.empty() ? "" : "Sec-WebSocket-Extensions: " + extension + "\r\n";
    if (r == role::server) {
        auto client_side = [&]() -> duplex::awaitable<void> {
            co_await peer.write(test::bytes("GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                                            extension_field + "\r\n"));
            head = co_await peer.read_head();
        };
        co_await (stream.accept(ours) && client_side());
    } else {
        auto server_side = [&]() -> duplex::awaitable<void> {
            head = co_await peer.read_head();
            const auto key = head.substr(head.find("Sec-WebSocket-Key: ") + 19, 24);
            co_await peer.write(test::bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                            "Sec-WebSocket-Accept: " + duplex::ws::handshake::compute_accept(key) + "\r\n" +
                                            extension_field + "\r\n"));
        };
        const std::vector<std::string> no_protocols;
        const duplex::http::headers no_headers;
        co_await (stream.handshake("test", "/ws", no_protocols, no_headers, ours) && server_side());
    }
    co_return head;
}

// A stream in `r` with permessage-deflate negotiated as `offer` (client's offer) / `answer` (server's
// response) say, and the peer's codec for the same agreement.
struct deflate_pair_options {
    std::string offer = "permessage-deflate; client_max_window_bits";
    duplex::deflate::options ours{};
    duplex::ws::stream_options stream{};
};

template <class F>
void with_compressed_pair(role r, F body, const deflate_pair_options& o = {}) {
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), r, o.stream);
        std::optional<duplex::deflate::agreement> agreed;
        std::string extension;
        if (r == role::server) {
            extension = o.offer;
        } else {
            // The peer is a server: it answers our offer the way select_offer would.
            duplex::http::headers offered;
            offered.add("Sec-WebSocket-Extensions", duplex::deflate::make_offer(o.ours));
            agreed = duplex::deflate::select_offer(offered, duplex::deflate::options{});
            REQUIRE(agreed);
            extension = agreed->response;
        }
        co_await open_with(stream, peer, r, extension, o.ours);
        REQUIRE(stream.state() == websocket_state::open);
        const auto n = stream.compression();
        REQUIRE(n);
        codec peer_codec(r == role::server ? role::client : role::server, *n);
        co_await body(stream, peer, peer_codec);
    });
}

bool masked_as(role r) { return r == role::server; }

raw_frame compressed_frame(std::uint8_t op, const bytes& payload, role r, bool fin = true, bool rsv1 = true) {
    raw_frame f;
    f.opcode = op;
    f.fin = fin;
    f.rsv1 = rsv1;
    f.payload = payload;
    f.masked = masked_as(r);
    return f;
}

bytes compress(codec& c, std::span<const std::byte> data, bool end_of_message = true) {
    bytes out;
    c.compress(data, end_of_message, out);
    return out;
}

// Decompresses the payloads of frames of a message with the peer's codec; `ends_message` says the last
// of them ends it.
bytes decompress(codec& c, const std::vector<bytes>& frames, bool ends_message = true) {
    bytes out;
    std::array<std::byte, 4096> buffer;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::span<const std::byte> rest(frames[i]);
        const bool last = ends_message && i + 1 == frames.size();
        for (;;) {
            const auto r = c.decompress_some(rest, last, buffer, SIZE_MAX);
            out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.produced));
            rest = rest.subspan(r.consumed);
            REQUIRE(r.status != decompress_status::corrupt);
            if (r.status == decompress_status::end_of_message) break;
            if (rest.empty() && r.produced < buffer.size()) break;
        }
    }
    return out;
}

template <class Stream>
duplex::awaitable<bytes> receive_all(Stream& stream, std::size_t chunk, message_type expected) {
    bytes out;
    std::vector<std::byte> buffer(chunk);
    for (;;) {
        auto r = co_await stream.receive(asio::buffer(buffer));
        CHECK(r.message_type == expected);
        CHECK_FALSE(r.close_status);
        out.insert(out.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(r.count));
        if (r.end_of_message) co_return out;
        if (r.close_status) co_return out;
    }
}

template <class Stream>
duplex::awaitable<void> receive_forever(Stream& stream) {
    std::array<std::byte, 1024> buffer;
    for (;;) co_await stream.receive(asio::buffer(buffer));
}

template <class T>
duplex::awaitable<std::pair<std::error_code, std::optional<raw_frame>>> fail_with_peer(duplex::awaitable<T> failing,
                                                                                      test::raw_peer& peer) {
    std::optional<raw_frame> close;
    auto peer_side = [&]() -> duplex::awaitable<void> {
        close = co_await peer.read_frame();
        co_await peer.read_to_end();
        peer.socket().close();
    };
    const auto caught = co_await (test::error_of(std::move(failing)) && peer_side());
    co_return std::pair{caught, close};
}

std::uint16_t code_of(const raw_frame& close) {
    return static_cast<std::uint16_t>((std::to_integer<unsigned>(close.payload.at(0)) << 8) |
                                      std::to_integer<unsigned>(close.payload.at(1)));
}

// Sends what `make_frames` builds with the peer's codec, expects receive() to fail with `errc` and the
// peer to read a close frame with `code`.
template <class MakeFrames>
void expect_failure(role r, MakeFrames make_frames, websocket_errc errc, std::uint16_t code,
                    const deflate_pair_options& o = {}) {
    with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
        for (auto f : make_frames(peer_codec)) {
            f.masked = masked_as(r);
            co_await peer.send(f);
        }
        const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
        CHECK(caught == make_error_code(errc));
        CHECK(stream.state() == websocket_state::aborted);
        REQUIRE(close);
        CHECK(close->opcode == 0x8);
        CHECK_FALSE(close->rsv1);
        REQUIRE(close->payload.size() >= 2);
        CHECK(code_of(*close) == code);
    }, o);
}

}  // namespace

TEST_CASE("deflate: the server accepts an offer in its 101 and the client takes the answer") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::server);
        duplex::deflate::options ours;
        ours.server_max_window_bits = 12;
        ours.disable_server_context_takeover = true;
        const auto head = co_await open_with(stream, peer, role::server,
                                             "x-unknown, permessage-deflate; client_max_window_bits=10", ours);
        CHECK(head.starts_with("HTTP/1.1 101"));
        CHECK(head.find("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                        "server_max_window_bits=12; client_max_window_bits=10\r\n") != std::string::npos);
        const auto n = stream.compression();
        REQUIRE(n);
        CHECK(n->server_max_window_bits == 12);
        CHECK(n->client_max_window_bits == 10);
        CHECK(n->server_no_context_takeover);
        CHECK_FALSE(n->client_no_context_takeover);
    });
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
        duplex::deflate::options ours;
        ours.client_max_window_bits = 11;
        const auto head = co_await open_with(stream, peer, role::client,
                                             "permessage-deflate; server_max_window_bits=9; client_no_context_takeover", ours);
        CHECK(head.find("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=11\r\n") != std::string::npos);
        const auto n = stream.compression();
        REQUIRE(n);
        CHECK(n->server_max_window_bits == 9);
        CHECK(n->client_max_window_bits == 11);
        CHECK(n->client_no_context_takeover);
    });
}

TEST_CASE("deflate: not negotiated without options, without an offer, or when the server declines") {
    SUBCASE("server without compression options ignores the offer") {
        test::run([](asio::io_context& io) -> duplex::awaitable<void> {
            auto [stream, peer] = test::open_pair(io.get_executor(), role::server);
            const auto head = co_await open_with(stream, peer, role::server, "permessage-deflate", std::nullopt);
            CHECK(head.find("Sec-WebSocket-Extensions") == std::string::npos);
            CHECK_FALSE(stream.compression());
        });
    }
    SUBCASE("server with options, client offers nothing acceptable") {
        test::run([](asio::io_context& io) -> duplex::awaitable<void> {
            auto [stream, peer] = test::open_pair(io.get_executor(), role::server);
            const auto head = co_await open_with(stream, peer, role::server, "permessage-deflate; foo=1",
                                                 duplex::deflate::options{});
            CHECK(head.starts_with("HTTP/1.1 101"));
            CHECK(head.find("Sec-WebSocket-Extensions") == std::string::npos);
            CHECK_FALSE(stream.compression());
        });
    }
    SUBCASE("client: a server that answers without the extension declines it") {
        test::run([](asio::io_context& io) -> duplex::awaitable<void> {
            auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
            co_await open_with(stream, peer, role::client, "", duplex::deflate::options{});
            CHECK(stream.state() == websocket_state::open);
            CHECK_FALSE(stream.compression());
            // Without the extension a frame with RSV1 is a protocol error, as before.
            auto f = compressed_frame(1, test::bytes("x"), role::client);
            co_await peer.send(f);
            const auto [caught, close] = co_await fail_with_peer(receive_forever(stream), peer);
            CHECK(caught == make_error_code(websocket_errc::protocol_error));
        });
    }
    SUBCASE("client: an answer that breaks RFC 7692 fails the handshake") {
        for (std::string answer : {"permessage-deflate; server_max_window_bits=16", "x-webkit-deflate-frame",
                                   "permessage-deflate, permessage-deflate"}) {
            CAPTURE(answer);
            test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
                auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
                const auto caught = co_await test::error_of(
                    open_with(stream, peer, role::client, answer, duplex::deflate::options{}));
                CHECK(caught == make_error_code(websocket_errc::handshake_failed));
                CHECK(stream.state() == websocket_state::aborted);
            });
        }
    }
    SUBCASE("client: an extension in the answer although none was offered") {
        test::run([](asio::io_context& io) -> duplex::awaitable<void> {
            auto [stream, peer] = test::open_pair(io.get_executor(), role::client);
            const auto caught =
                co_await test::error_of(open_with(stream, peer, role::client, "permessage-deflate", std::nullopt));
            CHECK(caught == make_error_code(websocket_errc::handshake_failed));
        });
    }
}

TEST_CASE("deflate: a compressed message arrives whole, into buffers large and small, both roles") {
    for (auto r : {role::server, role::client}) {
        for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20}) {
            CAPTURE(chunk);
            with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
                const auto hello = test::bytes("Hello");
                co_await peer.send(compressed_frame(1, compress(peer_codec, hello), r));
                const auto first = co_await receive_all(stream, chunk, message_type::text);
                CHECK(first == hello);
                // 200 KB: the compressed payload spans many reads of the 4 KiB receive buffer.
                const auto text = chatty_text(200000, 1);
                co_await peer.send(compressed_frame(1, compress(peer_codec, text), r));
                const auto second = co_await receive_all(stream, chunk, message_type::text);
                CHECK(second == text);
                const auto noise = random_bytes(50000, 2);  // incompressible: stored blocks
                co_await peer.send(compressed_frame(2, compress(peer_codec, noise), r));
                const auto third = co_await receive_all(stream, chunk, message_type::binary);
                CHECK(third == noise);
            });
        }
    }
}

TEST_CASE("deflate: a zero-byte receive waits for compressed data without consuming it") {
    for (auto r : {role::server, role::client}) {
        with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
            const auto text = chatty_text(20000, 3);
            co_await peer.send(compressed_frame(1, compress(peer_codec, text), r));
            const auto ready = co_await stream.receive(asio::mutable_buffer{});
            CHECK(ready.count == 0);
            CHECK(ready.message_type == message_type::text);
            CHECK_FALSE(ready.end_of_message);
            CHECK(co_await receive_all(stream, 4096, message_type::text) == text);
            // An empty compressed message: the zero-byte receive leaves its end to the next receive.
            co_await peer.send(compressed_frame(2, compress(peer_codec, {}), r));
            const auto empty_ready = co_await stream.receive(asio::mutable_buffer{});
            CHECK(empty_ready.count == 0);
            CHECK(empty_ready.message_type == message_type::binary);
            CHECK(co_await receive_all(stream, 4096, message_type::binary) == bytes{});
        });
    }
}

TEST_CASE("deflate: a compressed payload larger than the receive buffer, with a tiny receive buffer") {
    deflate_pair_options o;
    o.stream.receive_buffer_size = 256;
    with_compressed_pair(role::server, [](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
        const auto noise = random_bytes(100000, 3);
        auto sender = [&]() -> duplex::awaitable<void> {
            co_await peer.send(compressed_frame(2, compress(peer_codec, noise), role::server));
        };
        asio::co_spawn(stream.get_executor(), sender(), asio::detached);
        std::vector<std::byte> whole;
        co_await stream.receive_message(whole, 1 << 20);
        CHECK(whole == noise);
    }, o);
}

TEST_CASE("deflate: fragmented compressed messages with control frames between the fragments") {
    for (auto r : {role::server, role::client}) {
        with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
            const auto part1 = chatty_text(3000, 4), part2 = chatty_text(5000, 5);
            co_await peer.send(compressed_frame(1, compress(peer_codec, part1, false), r, false));
            raw_frame ping;
            ping.opcode = 9;
            ping.payload = test::bytes("ping!");
            ping.masked = masked_as(r);
            co_await peer.send(ping);
            co_await peer.send(compressed_frame(0, compress(peer_codec, part2, false), r, false, false));
            raw_frame pong;
            pong.opcode = 0xA;
            pong.masked = masked_as(r);
            co_await peer.send(pong);
            // An empty final frame: the message ends where the codec is told so.
            co_await peer.send(compressed_frame(0, compress(peer_codec, {}, true), r, true, false));
            std::string message;
            const auto result = co_await stream.receive_message(message, 1 << 20);
            CHECK(result.end_of_message);
            CHECK(result.message_type == message_type::text);
            CHECK(message == std::string(view(part1)) + std::string(view(part2)));
            const auto answer = co_await peer.read_frame();
            REQUIRE(answer);
            CHECK(answer->opcode == 0xA);
            CHECK_FALSE(answer->rsv1);
            CHECK(test::text(answer->payload) == "ping!");

            // A compressed message with a literally empty final frame (no bytes at all), and an empty message.
            co_await peer.send(compressed_frame(2, compress(peer_codec, part1, false), r, false));
            co_await peer.send(compressed_frame(0, {}, r, true, false));
            std::vector<std::byte> binary;
            co_await stream.receive_message(binary, 1 << 20);
            CHECK(binary == part1);
            co_await peer.send(compressed_frame(2, compress(peer_codec, {}), r));
            const auto empty = co_await receive_all(stream, 64, message_type::binary);
            CHECK(empty.empty());
            // An uncompressed message in between leaves the contexts alone.
            raw_frame plain;
            plain.opcode = 1;
            plain.payload = test::bytes("plain");
            plain.masked = masked_as(r);
            co_await peer.send(plain);
            const auto plain_back = co_await receive_all(stream, 64, message_type::text);
            CHECK(view(plain_back) == "plain");
            co_await peer.send(compressed_frame(1, compress(peer_codec, part2), r));
            const auto last = co_await receive_all(stream, 100, message_type::text);
            CHECK(last == part2);
        });
    }
}

TEST_CASE("deflate: sent messages carry RSV1 on their first frame only and decode at the peer") {
    for (auto r : {role::server, role::client}) {
        with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
            const auto text = chatty_text(20000, 6);  // over direct_write_threshold once: still compressed
            co_await stream.send(asio::buffer(text), message_type::text);
            auto whole = co_await peer.read_frame();
            REQUIRE(whole);
            CHECK(whole->rsv1);
            CHECK(whole->fin);
            CHECK(whole->opcode == 1);
            CHECK(whole->masked == (r == role::client));
            CHECK(whole->payload.size() < text.size() / 2);
            CHECK(decompress(peer_codec, {whole->payload}) == text);

            const auto a = chatty_text(1000, 7), b = chatty_text(2000, 8);
            co_await stream.send(asio::buffer(a), message_type::binary, false);
            co_await stream.send(asio::buffer(b), message_type::binary, false);
            co_await stream.send(asio::const_buffer(), message_type::binary, true);
            std::vector<bytes> payloads;
            for (int i = 0; i < 3; ++i) {
                auto f = co_await peer.read_frame();
                REQUIRE(f);
                CHECK(f->rsv1 == (i == 0));
                CHECK(f->opcode == (i == 0 ? 2 : 0));
                CHECK(f->fin == (i == 2));
                payloads.push_back(f->payload);
            }
            // Every fragment is flushed, so it decodes as soon as it arrives.
            CHECK(decompress(peer_codec, {payloads[0]}, false) == a);
            CHECK(decompress(peer_codec, {payloads[1]}, false) == b);
            CHECK(decompress(peer_codec, {payloads[2]}).empty());
        });
    }
}

TEST_CASE("deflate: message_flags::disable_compression sends with RSV1 clear and leaves the context alone") {
    with_compressed_pair(role::server, [](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
        const auto secret = test::bytes("token=s3cr3t");
        co_await stream.send(asio::buffer(secret), message_type::text, false, duplex::message_flags::disable_compression);
        // The flag is read at the first frame; the rest of the message follows it.
        co_await stream.send(asio::buffer(secret), message_type::text, true);
        for (int i = 0; i < 2; ++i) {
            auto f = co_await peer.read_frame();
            REQUIRE(f);
            CHECK_FALSE(f->rsv1);
            CHECK(f->payload == secret);
        }
        const auto text = chatty_text(500, 9);
        co_await stream.send(asio::buffer(text), message_type::text);
        auto compressed = co_await peer.read_frame();
        REQUIRE(compressed);
        CHECK(compressed->rsv1);
        CHECK(decompress(peer_codec, {compressed->payload}) == text);
    });
}

TEST_CASE("deflate: context takeover makes a repeated message smaller; without it every message stands alone") {
    for (bool takeover : {true, false}) {
        CAPTURE(takeover);
        for (auto r : {role::server, role::client}) {
            deflate_pair_options o;
            o.offer = takeover ? "permessage-deflate" : "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
            o.ours.disable_server_context_takeover = !takeover;
            o.ours.disable_client_context_takeover = !takeover;
            with_compressed_pair(r, [&](auto& stream, auto& peer, codec& peer_codec) -> duplex::awaitable<void> {
                const auto n = stream.compression();
                CHECK(n->server_no_context_takeover == !takeover);
                CHECK(n->client_no_context_takeover == !takeover);
                const auto text = chatty_text(2000, 10);
                std::vector<std::size_t> sizes;
                for (int i = 0; i < 3; ++i) {
                    co_await stream.send(asio::buffer(text), message_type::text);
                    auto f = co_await peer.read_frame();
                    REQUIRE(f);
                    sizes.push_back(f->payload.size());
                    CHECK(decompress(peer_codec, {f->payload}) == text);
                }
                if (takeover) {
                    CHECK(sizes[1] < sizes[0] / 4);
                } else {
                    CHECK(sizes[1] == sizes[0]);
                    CHECK(sizes[2] == sizes[0]);
                }
                // The peer's messages with its context: the stream's inflater follows.
                for (int i = 0; i < 3; ++i) {
                    co_await peer.send(compressed_frame(1, compress(peer_codec, text), r));
                    const auto back = co_await receive_all(stream, 512, message_type::text);
                    CHECK(back == text);
                }
            }, o);
        }
    }
}

TEST_CASE("deflate: RSV1 where RFC 7692 does not allow it fails the connection with 1002") {
    SUBCASE("on a continuation frame") {
        expect_failure(role::server, [](codec& c) {
            return std::vector<raw_frame>{compressed_frame(1, compress(c, test::bytes("abc"), false), role::server, false),
                                          compressed_frame(0, compress(c, test::bytes("def")), role::server, true, true)};
        }, websocket_errc::protocol_error, 1002);
    }
    SUBCASE("on a continuation of an uncompressed message") {
        expect_failure(role::client, [](codec&) {
            return std::vector<raw_frame>{compressed_frame(1, test::bytes("abc"), role::client, false, false),
                                          compressed_frame(0, test::bytes("def"), role::client, true, true)};
        }, websocket_errc::protocol_error, 1002);
    }
    SUBCASE("on a ping") {
        expect_failure(role::server, [](codec&) {
            return std::vector<raw_frame>{compressed_frame(9, test::bytes("p"), role::server)};
        }, websocket_errc::protocol_error, 1002);
    }
    SUBCASE("on a close") {
        expect_failure(role::client, [](codec&) {
            return std::vector<raw_frame>{compressed_frame(8, test::close_payload(1000), role::client)};
        }, websocket_errc::protocol_error, 1002);
    }
    SUBCASE("RSV2 and RSV3 stay reserved") {
        expect_failure(role::server, [](codec& c) {
            auto f = compressed_frame(1, compress(c, test::bytes("abc")), role::server);
            f.rsv2 = true;
            return std::vector<raw_frame>{f};
        }, websocket_errc::protocol_error, 1002);
    }
}

TEST_CASE("deflate: undecodable compressed data fails the connection with 1007") {
    SUBCASE("garbage") {
        expect_failure(role::server, [](codec&) {
            return std::vector<raw_frame>{compressed_frame(2, bytes{std::byte{0xff}, std::byte{0xff}, std::byte{0xff}}, role::server)};
        }, websocket_errc::invalid_payload_data, 1007);
    }
    SUBCASE("a message that ends inside a block") {
        expect_failure(role::client, [](codec& c) {
            auto payload = compress(c, chatty_text(3000, 11));
            payload.resize(payload.size() / 2);
            return std::vector<raw_frame>{compressed_frame(2, payload, role::client)};
        }, websocket_errc::invalid_payload_data, 1007);
    }
    SUBCASE("invalid UTF-8 inside a compressed text message") {
        expect_failure(role::server, [](codec& c) {
            return std::vector<raw_frame>{compressed_frame(1, compress(c, test::bytes("ok \xed\xa0\x80 no")), role::server)};
        }, websocket_errc::invalid_payload_data, 1007);
    }
}

TEST_CASE("deflate: a decompression bomb fails with 1009 at the message limit, whatever its compressed size") {
    deflate_pair_options o;
    o.stream.max_message_size = 100000;
    SUBCASE("one frame") {
        expect_failure(role::server, [](codec& c) {
            const bytes zeros(10'000'000, std::byte{0});
            return std::vector<raw_frame>{compressed_frame(2, compress(c, zeros), role::server)};
        }, websocket_errc::message_too_big, 1009, o);
    }
    SUBCASE("many frames, each under the limit") {
        expect_failure(role::client, [](codec& c) {
            const bytes zeros(60000, std::byte{0});
            return std::vector<raw_frame>{compressed_frame(2, compress(c, zeros, false), role::client, false),
                                          compressed_frame(0, compress(c, zeros, true), role::client, true, false)};
        }, websocket_errc::message_too_big, 1009, o);
    }
    SUBCASE("exactly the limit is fine; the compressed length is not held against it") {
        with_compressed_pair(role::server, [](auto& stream, auto& peer, codec& c) -> duplex::awaitable<void> {
            // Incompressible: the compressed payload is a little over the limit, the message exactly at it.
            const auto noise = random_bytes(100000, 12);
            auto sender = [&]() -> duplex::awaitable<void> {
                co_await peer.send(compressed_frame(2, compress(c, noise), role::server));
            };
            asio::co_spawn(stream.get_executor(), sender(), asio::detached);
            std::vector<std::byte> message;
            co_await stream.receive_message(message, 100000);
            CHECK(message == noise);
        }, o);
    }
    SUBCASE("receive_message's own limit") {
        with_compressed_pair(role::server, [](auto& stream, auto& peer, codec& c) -> duplex::awaitable<void> {
            co_await peer.send(compressed_frame(1, compress(c, chatty_text(5000, 13)), role::server));
            std::string message;
            const auto [caught, close] = co_await fail_with_peer(stream.receive_message(message, 4999), peer);
            CHECK(caught == make_error_code(websocket_errc::message_too_big));
            REQUIRE(close);
            CHECK(code_of(*close) == 1009);
        }, o);
    }
}

TEST_CASE("deflate: the close handshake of a compressed connection is plain, and close() drains compressed data") {
    with_compressed_pair(role::client, [](auto& stream, auto& peer, codec& c) -> duplex::awaitable<void> {
        auto server_side = [&]() -> duplex::awaitable<void> {
            auto close = co_await peer.read_frame();
            REQUIRE(close);
            CHECK(close->opcode == 8);
            CHECK_FALSE(close->rsv1);
            co_await peer.send(compressed_frame(1, compress(c, chatty_text(10000, 14)), role::client));
            raw_frame reply;
            reply.opcode = 8;
            reply.payload = test::close_payload(1000);
            reply.masked = false;
            co_await peer.send(reply);
            peer.socket().shutdown(asio::socket_base::shutdown_send);
            co_await peer.read_to_end();
            peer.socket().close();
        };
        co_await (stream.close(duplex::close_status::normal_closure) && server_side());
        CHECK(stream.state() == websocket_state::closed);
    });
}

TEST_CASE("deflate: the type-erased handle carries compression") {
    with_compressed_pair(role::server, [](auto& stream, auto& peer, codec& c) -> duplex::awaitable<void> {
        auto ws = stream.as_websocket();
        co_await peer.send(compressed_frame(1, compress(c, test::bytes("through the handle")), role::server));
        std::string message;
        co_await ws.receive_message(message, 100);
        CHECK(message == "through the handle");
        co_await ws.send(message);
        auto f = co_await peer.read_frame();
        REQUIRE(f);
        CHECK(f->rsv1);
        CHECK(view(decompress(c, {f->payload})) == "through the handle");
    });
}
