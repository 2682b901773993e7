// Interop: duplex's client against a real, independent server — Python's websockets, started by
// python_server_test.py, which passes its URL as the first argument:
//
//     client-interop ws://127.0.0.1:PORT [doctest options...]
//
// The server echoes every message whole on any path, and on some paths does one thing more (see
// python_server_test.py): /close-4001, /ping, /fragments, /headers, /subprotocol, /reject.
//
// Each case runs on its own io_context, bounded by run_for, and checks that it finished.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

std::string server_url;  // ws://127.0.0.1:PORT, without a path

constexpr std::size_t mib = 1024 * 1024;
constexpr auto case_time_limit = std::chrono::seconds(20);

std::string url(std::string_view path) { return server_url + std::string(path); }

std::mt19937& random_engine() {
    static std::mt19937 engine(6455);
    return engine;
}

std::vector<std::byte> random_bytes(std::size_t size) {
    std::uniform_int_distribution<int> byte(0, 255);
    std::vector<std::byte> bytes(size);
    for (auto& b : bytes) b = static_cast<std::byte>(byte(random_engine()));
    return bytes;
}

std::string random_text(std::size_t size) {
    static constexpr std::string_view alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-";
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::string text(size, ' ');
    for (auto& c : text) c = alphabet[pick(random_engine())];
    return text;
}

// Runs one case's coroutine on a fresh io_context for at most case_time_limit; an exception it throws
// fails the test case with its message.
template <class Coroutine>
void run_case(Coroutine coroutine) {
    asio::io_context io;
    bool finished = false;
    std::exception_ptr failure;
    asio::co_spawn(io, coroutine(), [&](std::exception_ptr e) {
        finished = true;
        failure = e;
    });
    io.run_for(case_time_limit);
    CHECK_MESSAGE(finished, "the case did not finish within 20 s");
    if (failure) std::rethrow_exception(failure);
}

duplex::awaitable<void> expect_binary_echo(duplex::websocket& ws, const std::vector<std::byte>& payload) {
    co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
    std::vector<std::byte> back;
    const auto r = co_await ws.receive_message(back, 2 * mib);
    CHECK_FALSE(r.close_status.has_value());
    CHECK(r.message_type == duplex::message_type::binary);
    CHECK(r.end_of_message);
    CHECK(r.count == payload.size());
    CHECK_MESSAGE(back == payload, "binary message of " << payload.size() << " B came back with " << back.size()
                                                        << " B or different content");
}

duplex::awaitable<void> expect_text_echo(duplex::websocket& ws, const std::string& text) {
    co_await ws.send(text);
    std::string back;
    const auto r = co_await ws.receive_message(back, 2 * mib);
    CHECK_FALSE(r.close_status.has_value());
    CHECK(r.message_type == duplex::message_type::text);
    CHECK(r.end_of_message);
    CHECK(r.count == text.size());
    CHECK_MESSAGE(back == text, "text message of " << text.size() << " B came back with " << back.size()
                                                   << " B or different content");
}

duplex::awaitable<void> close_normally(duplex::websocket& ws) {
    co_await ws.close(duplex::close_status::normal_closure, "done");
    CHECK(ws.state() == duplex::websocket_state::closed);
}

const std::vector<std::size_t> message_sizes{0, 1, 125, 126, 127, 65535, 65536, mib};

}  // namespace

TEST_CASE("text messages of 0 B to 1 MiB round-trip") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        CHECK(ws.state() == duplex::websocket_state::open);
        for (const auto size : message_sizes) co_await expect_text_echo(ws, random_text(size));
        co_await close_normally(ws);
    });
}

TEST_CASE("binary messages of 0 B to 1 MiB round-trip") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        for (const auto size : message_sizes) co_await expect_binary_echo(ws, random_bytes(size));
        co_await close_normally(ws);
    });
}

TEST_CASE("non-ASCII text round-trips") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        co_await expect_text_echo(ws, "héllo wörld — ünïcödé ✓ 中文 😀 𝄞");
        std::string long_text;
        while (long_text.size() < 100000) long_text += "aé€😀";  // 1-, 2-, 3- and 4-byte sequences
        co_await expect_text_echo(ws, long_text);
        co_await close_normally(ws);
    });
}

TEST_CASE("a message sent in 3 fragments comes back whole") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));

        // Text, with "ö" (C3 B6) split between the second and the third fragment.
        const std::string text = "frag-mented wö";
        co_await ws.send(std::string_view(text).substr(0, 5), false);
        co_await ws.send(std::string_view(text).substr(5, 8), false);
        co_await ws.send(std::string_view(text).substr(13), true);
        std::string text_back;
        auto r = co_await ws.receive_message(text_back, mib);
        CHECK(r.message_type == duplex::message_type::text);
        CHECK(r.end_of_message);
        CHECK(text_back == text);

        // Binary, with an empty middle fragment and a large last one.
        const auto first = random_bytes(1000), last = random_bytes(70000);
        co_await ws.send(asio::buffer(first), duplex::message_type::binary, false);
        co_await ws.send(asio::const_buffer(), duplex::message_type::binary, false);
        co_await ws.send(asio::buffer(last), duplex::message_type::binary, true);
        std::vector<std::byte> expected = first, binary_back;
        expected.insert(expected.end(), last.begin(), last.end());
        r = co_await ws.receive_message(binary_back, mib);
        CHECK(r.message_type == duplex::message_type::binary);
        CHECK(r.end_of_message);
        CHECK(binary_back.size() == expected.size());
        CHECK_MESSAGE(binary_back == expected, "the reassembled binary message differs");

        co_await expect_text_echo(ws, "after the fragmented messages");
        co_await close_normally(ws);
    });
}

TEST_CASE("100 messages sent back to back come back in order") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        std::uniform_int_distribution<std::size_t> size(0, 3000);
        std::vector<std::vector<std::byte>> sent;
        for (int i = 0; i < 100; ++i) {
            sent.push_back(random_bytes(size(random_engine())));
            const auto type = i % 2 == 0 ? duplex::message_type::binary : duplex::message_type::text;
            if (type == duplex::message_type::text)
                for (auto& b : sent.back()) b = std::byte('a' + std::to_integer<int>(b) % 26);
            co_await ws.send(asio::buffer(sent.back()), type);
        }
        for (int i = 0; i < 100; ++i) {
            std::vector<std::byte> back;
            const auto r = co_await ws.receive_message(back, mib);
            CHECK(r.message_type == (i % 2 == 0 ? duplex::message_type::binary : duplex::message_type::text));
            CHECK_MESSAGE(back == sent[i], "message " << i << " (" << sent[i].size() << " B) came back as "
                                                      << back.size() << " B or with different content");
        }
        co_await close_normally(ws);
    });
}

TEST_CASE("messages sent from concurrent coroutines arrive whole and in each sender's order") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        constexpr int senders = 4, per_sender = 25;
        // Message k of sender s is `s`, `k`, then filler; every fifth is 100 kB, past the send queue's
        // high-water mark, so senders wait for the flush while others queue.
        auto sender = [](duplex::websocket ws, int s) -> duplex::awaitable<void> {
            for (int k = 0; k < per_sender; ++k) {
                std::vector<std::byte> message(k % 5 == 0 ? 100000 : 50 + k, std::byte(s * 16 + k % 16));
                message[0] = std::byte(s);
                message[1] = std::byte(k);
                co_await ws.send(asio::buffer(message), duplex::message_type::binary);
            }
        };
        auto executor = co_await asio::this_coro::executor;
        auto senders_done = std::make_shared<int>(0);
        for (int s = 0; s < senders; ++s)
            asio::co_spawn(executor, sender(ws, s), [senders_done](std::exception_ptr e) {
                ++*senders_done;
                CHECK_MESSAGE(!e, "a concurrent send threw");
            });
        std::vector<int> next(senders, 0);
        for (int i = 0; i < senders * per_sender; ++i) {
            std::vector<std::byte> back;
            const auto r = co_await ws.receive_message(back, mib);
            REQUIRE(back.size() >= 2);
            const int s = std::to_integer<int>(back[0]), k = std::to_integer<int>(back[1]);
            REQUIRE(s < senders);
            CHECK(r.message_type == duplex::message_type::binary);
            CHECK_MESSAGE(k == next[s], "sender " << s << ": message " << k << " arrived, expected " << next[s]);
            next[s] = k + 1;
            const auto expected_size = static_cast<std::size_t>(k % 5 == 0 ? 100000 : 50 + k);
            CHECK(back.size() == expected_size);
            const bool filler_intact = std::all_of(back.begin() + 2, back.end(),
                                                   [&](std::byte b) { return b == std::byte(s * 16 + k % 16); });
            CHECK_MESSAGE(filler_intact, "sender " << s << " message " << k << " came back corrupted or interleaved");
        }
        CHECK(*senders_done == senders);
        co_await close_normally(ws);
    });
}

TEST_CASE("close(normal_closure, \"done\") completes the close handshake") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        co_await expect_text_echo(ws, "before the close");
        co_await ws.close(duplex::close_status::normal_closure, "done");
        CHECK(ws.state() == duplex::websocket_state::closed);

        // After the close: a second close is harmless, a send is a clear error.
        co_await ws.close(duplex::close_status::normal_closure, "done");
        CHECK(ws.state() == duplex::websocket_state::closed);
        bool send_failed = false;
        try {
            co_await ws.send("too late");
        } catch (const duplex::websocket_error& e) {
            send_failed = true;
            CHECK(e.code() == duplex::websocket_errc::invalid_state);
        }
        CHECK_MESSAGE(send_failed, "send after close did not throw websocket_error");
    });
}

TEST_CASE("the server's close 4001 \"bye\" arrives as a receive_result, and close() answers it") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/close-4001"));
        std::vector<std::byte> data;
        const auto r = co_await ws.receive_message(data, mib);
        CHECK(r.message_type == duplex::message_type::close);
        REQUIRE(r.close_status.has_value());
        CHECK(static_cast<std::uint16_t>(*r.close_status) == 4001);
        CHECK(r.close_status_description == "bye");
        CHECK(r.count == 0);
        CHECK(ws.state() == duplex::websocket_state::close_received);

        bool receive_failed = false;
        try {
            co_await ws.receive_message(data, mib);
        } catch (const duplex::websocket_error& e) {
            receive_failed = true;
            CHECK(e.code() == duplex::websocket_errc::invalid_state);
        }
        CHECK_MESSAGE(receive_failed, "receive after the peer's close did not throw websocket_error");

        co_await ws.close(*r.close_status, r.close_status_description);
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
}

TEST_CASE("close_output, then the server's answering close arrives through receive") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        co_await ws.close_output(duplex::close_status::normal_closure, "half");
        CHECK(ws.state() == duplex::websocket_state::close_sent);
        std::array<std::byte, 256> buffer;
        const auto r = co_await ws.receive(asio::buffer(buffer));
        CHECK(r.message_type == duplex::message_type::close);
        REQUIRE(r.close_status.has_value());
        CHECK(*r.close_status == duplex::close_status::normal_closure);
        CHECK(r.close_status_description == "half");
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
}

TEST_CASE("sub-protocol negotiation") {
    run_case([]() -> duplex::awaitable<void> {
        duplex::connect_options options;
        options.sub_protocols = {"chat.v1"};
        auto ws = co_await duplex::connect(url("/subprotocol"), options);
        CHECK(ws.sub_protocol() == "chat.v1");
        co_await expect_text_echo(ws, "speaking chat.v1");
        co_await close_normally(ws);

        options.sub_protocols = {"chat.v3"};  // the server supports none of these: it selects nothing
        auto unsupported = co_await duplex::connect(url("/subprotocol"), options);
        CHECK(unsupported.sub_protocol().empty());
        co_await close_normally(unsupported);

        auto none_offered = co_await duplex::connect(url("/subprotocol"));
        CHECK(none_offered.sub_protocol().empty());
        co_await close_normally(none_offered);
    });
}

TEST_CASE("extra request headers reach the server") {
    run_case([]() -> duplex::awaitable<void> {
        duplex::connect_options options;
        options.headers.add("X-Duplex-Test", "interop 42");
        auto ws = co_await duplex::connect(url("/headers"), options);
        std::string value;
        co_await ws.receive_message(value, mib);
        CHECK(value == "interop 42");
        co_await close_normally(ws);
    });
}

TEST_CASE("a ping from the server is answered while a receive is pending") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/ping"));
        std::string verdict;
        const auto r = co_await ws.receive_message(verdict, mib);
        CHECK(r.message_type == duplex::message_type::text);
        CHECK(verdict == "pong ok");
        co_await close_normally(ws);
    });
}

TEST_CASE("fragmented messages from the server: receive_message reassembles, receive delivers pieces") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/fragments"));
        std::string text;
        const auto r = co_await ws.receive_message(text, mib);
        CHECK(r.message_type == duplex::message_type::text);
        CHECK(r.end_of_message);
        CHECK(text == "hello wörld");

        // 70 000 B where byte i is (i * 7) % 256, read 1000 B at a time.
        std::vector<std::byte> binary;
        std::array<std::byte, 1000> buffer;
        for (int pieces = 0;; ++pieces) {
            REQUIRE(pieces < 1000);
            const auto piece = co_await ws.receive(asio::buffer(buffer));
            REQUIRE_FALSE(piece.close_status.has_value());
            CHECK(piece.message_type == duplex::message_type::binary);
            CHECK(piece.count <= buffer.size());
            binary.insert(binary.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(piece.count));
            if (piece.end_of_message) break;
        }
        REQUIRE(binary.size() == 70000);
        bool pattern_intact = true;
        for (std::size_t i = 0; i < binary.size(); ++i)
            pattern_intact = pattern_intact && binary[i] == std::byte((i * 7) % 256);
        CHECK_MESSAGE(pattern_intact, "the fragmented binary message arrived with different content");

        co_await expect_text_echo(ws, "after the server's fragments");
        co_await close_normally(ws);
    });
}

TEST_CASE("a message over receive_message's max_size fails the connection with message_too_big") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"));
        const auto payload = random_bytes(2000);
        co_await ws.send(asio::buffer(payload), duplex::message_type::binary);
        std::vector<std::byte> back;
        bool failed = false;
        try {
            co_await ws.receive_message(back, 1000);
        } catch (const duplex::websocket_error& e) {
            failed = true;
            CHECK(e.code() == duplex::websocket_errc::message_too_big);
        }
        CHECK_MESSAGE(failed, "a 2000 B message was accepted by receive_message(out, 1000)");
        CHECK(ws.state() == duplex::websocket_state::aborted);
    });
}

TEST_CASE("connecting to a port where nothing listens throws std::system_error") {
    run_case([]() -> duplex::awaitable<void> {
        auto executor = co_await asio::this_coro::executor;
        asio::ip::tcp::acceptor probe(executor, {asio::ip::address_v4::loopback(), 0});
        const auto unused_port = probe.local_endpoint().port();
        probe.close();
        bool failed = false;
        try {
            co_await duplex::connect("ws://127.0.0.1:" + std::to_string(unused_port) + "/echo");
        } catch (const std::system_error& e) {
            failed = true;
            CHECK_MESSAGE(e.code() == std::error_code(asio::error::connection_refused),
                          "expected connection_refused, got " << e.code().message());
        }
        CHECK_MESSAGE(failed, "connect to a closed port did not throw std::system_error");
    });
}

TEST_CASE("an upgrade the server refuses with 403 throws websocket_error naming the status") {
    run_case([]() -> duplex::awaitable<void> {
        bool failed = false;
        try {
            co_await duplex::connect(url("/reject"));
        } catch (const duplex::websocket_error& e) {
            failed = true;
            CHECK(e.code() == duplex::websocket_errc::handshake_failed);
            const std::string what = e.what();
            CHECK_MESSAGE(what.find("403") != std::string::npos, "what() is: " << what);
        }
        CHECK_MESSAGE(failed, "connect to /reject did not throw websocket_error");
    });
}

int main(int argc, char** argv) {
    if (argc < 2 || std::string_view(argv[1]).substr(0, 5) != "ws://") {
        std::cerr << "usage: " << argv[0] << " ws://HOST:PORT [doctest options...]\n";
        return 2;
    }
    server_url = argv[1];
    while (!server_url.empty() && server_url.back() == '/') server_url.pop_back();

    std::vector<char*> doctest_args{argv[0]};
    doctest_args.insert(doctest_args.end(), argv + 2, argv + argc);
    doctest::Context context(static_cast<int>(doctest_args.size()), doctest_args.data());
    return context.run();
}
