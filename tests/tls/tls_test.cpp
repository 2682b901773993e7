// duplex::tls over loopback TCP: the WebSocket round trip over TLS, close_notify after the WebSocket
// close in both roles, peers that drop without close_notify, the handshake timeout, plain HTTP on the
// TLS port and TLS on a plain port, certificates our client refuses, and the context helpers.
//
//     tls-tests --make-certs examples/tls_echo/make-certs.sh --certs DIR [doctest options...]
//
// makes a throwaway CA and server certificate into DIR first. Each case runs on its own io_context,
// bounded by test::run; raw peers use asio::ssl::stream directly, so they see exactly what went over TLS.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>
#include <duplex/tls.hpp>

#include "echo.hpp"
#include "certificates_main.hpp"
#include "test_support.hpp"

#include <asio/experimental/awaitable_operators.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;
using duplex::detail::use_nothrow_awaitable;
using tls_socket = duplex::tls::stream<tcp::socket>;
using clock_type = std::chrono::steady_clock;

std::string certs;  // the directory make-certs.sh wrote into
const duplex::ws::stream_options default_options;

std::string ca_file() { return certs + "/ca.pem"; }
std::string certificate_file() { return certs + "/server.pem"; }
std::string key_file() { return certs + "/server.key"; }

duplex::tls::shared_context server_context() {
    return duplex::tls::server_context({.certificate_file = certificate_file(), .private_key_file = key_file()});
}

duplex::tls::shared_context trusting_client_context() { return duplex::tls::client_context({.ca_file = ca_file()}); }

duplex::connect_options trusting_options() {
    duplex::connect_options options;
    options.tls.ca_file = ca_file();
    return options;
}

tcp::acceptor loopback_acceptor(asio::io_context& io) { return tcp::acceptor(io, {asio::ip::address_v4::loopback(), 0}); }

std::string url(const tcp::acceptor& acceptor, std::string_view host = "127.0.0.1") {
    return "wss://" + std::string(host) + ":" + std::to_string(acceptor.local_endpoint().port()) + "/ws";
}

double seconds_since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

// What the in-process server saw of one connection.
struct server_record {
    std::error_code tls;         // tls::stream::accept's result
    std::string alpn;            // the ALPN protocol negotiated
    std::string sni;             // the server name the client sent, if any
    int version = 0;             // SSL_version
    std::error_code websocket;   // how the echo session ended (none: a clean close)
    double close_seconds = 0;    // from the peer's close frame to the end of our close()
};

// The seed's echo, timing the close handshake the echo performs when the client's close arrives.
duplex::awaitable<void> echo_session(duplex::ws::stream<tls_socket>& stream, server_record& record) {
    co_await stream.accept();
    auto ws = stream.as_websocket();
    std::array<std::byte, 4096> buffer;
    auto result = co_await ws.receive(asio::buffer(buffer));
    while (!result.close_status) {
        co_await ws.send(asio::buffer(buffer, result.count), result.message_type, result.end_of_message);
        result = co_await ws.receive(asio::buffer(buffer));
    }
    const auto start = clock_type::now();
    co_await ws.close(*result.close_status, result.close_status_description);
    record.close_seconds = seconds_since(start);
}

// Accepts one connection: the TLS handshake, then the echo over a WebSocket.
// (No default arguments: g++ 12 destroys a coroutine's argument twice when it comes from one.)
duplex::awaitable<server_record> serve_one(tcp::acceptor& acceptor, duplex::tls::shared_context context,
                                           clock_type::duration handshake_timeout,
                                           duplex::ws::stream_options options) {
    auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
    tls_socket tls(std::move(socket), std::move(context));
    server_record record;
    record.tls = co_await tls.accept(handshake_timeout);
    if (record.tls) co_return record;
    record.alpn = std::string(tls.alpn_protocol());
    if (const char* sni = SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name)) record.sni = sni;
    record.version = SSL_version(tls.native_handle());
    duplex::ws::stream<tls_socket> stream(std::move(tls), duplex::ws::role::server, options);
    record.websocket = co_await test::error_of(echo_session(stream, record));
    co_return record;
}

// ---- raw peers over asio::ssl::stream ----

using raw_tls = asio::ssl::stream<tcp::socket>;

constexpr std::string_view upgrade_request =
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

template <class Stream>
duplex::awaitable<std::string> read_head(Stream& stream, std::string& buffer) {
    const auto n = co_await asio::async_read_until(stream, asio::dynamic_buffer(buffer), "\r\n\r\n", duplex::use_awaitable);
    std::string head = buffer.substr(0, n);
    buffer.erase(0, n);
    co_return head;
}

// One small frame (payload under 126 bytes) from `buffer` and the stream: opcode and payload.
template <class Stream>
duplex::awaitable<std::pair<int, std::string>> read_small_frame(Stream& stream, std::string& buffer) {
    for (int reads = 0; reads < 100; ++reads) {
        if (buffer.size() >= 2) {
            const auto length = static_cast<std::size_t>(static_cast<unsigned char>(buffer[1]) & 0x7F);
            const bool masked = (static_cast<unsigned char>(buffer[1]) & 0x80) != 0;
            const std::size_t header = 2 + (masked ? 4 : 0);
            REQUIRE(length < 126);
            if (buffer.size() >= header + length) {
                std::string payload = buffer.substr(header, length);
                if (masked)
                    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ buffer[2 + i % 4]);
                const int opcode = static_cast<unsigned char>(buffer[0]) & 0x0F;
                buffer.erase(0, header + length);
                co_return std::pair{opcode, payload};
            }
        }
        std::array<char, 1024> chunk;
        const auto n = co_await stream.async_read_some(asio::buffer(chunk), duplex::use_awaitable);
        buffer.append(chunk.data(), n);
    }
    FAIL("no complete frame after 100 reads");
    co_return std::pair{0, std::string()};
}

std::string close_frame_masked(std::uint16_t code) {
    const auto frame = test::encode({.opcode = 8, .payload = test::close_payload(code, "bye"), .masked = true});
    return {reinterpret_cast<const char*>(frame.data()), frame.size()};
}

std::string close_frame_unmasked(std::uint16_t code) {
    const auto frame = test::encode({.opcode = 8, .payload = test::close_payload(code, "bye"), .masked = false});
    return {reinterpret_cast<const char*>(frame.data()), frame.size()};
}

// A raw TLS client that has completed the TLS handshake and the WebSocket upgrade with our server.
duplex::awaitable<void> raw_client_open(raw_tls& raw, std::string& buffer) {
    co_await raw.async_handshake(asio::ssl::stream_base::client, duplex::use_awaitable);
    co_await asio::async_write(raw, asio::buffer(upgrade_request), duplex::use_awaitable);
    const auto head = co_await read_head(raw, buffer);
    REQUIRE(head.starts_with("HTTP/1.1 101"));
}

// A raw TLS server that accepts one connection and answers the client's upgrade with 101.
duplex::awaitable<void> raw_server_open(raw_tls& raw, std::string& buffer) {
    co_await raw.async_handshake(asio::ssl::stream_base::server, duplex::use_awaitable);
    const auto head = co_await read_head(raw, buffer);
    const auto at = head.find("Sec-WebSocket-Key: ");
    REQUIRE(at != std::string::npos);
    const auto response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: " + duplex::ws::handshake::compute_accept(head.substr(at + 19, 24)) +
                          "\r\n\r\n";
    co_await asio::async_write(raw, asio::buffer(response), duplex::use_awaitable);
}

// What an operation throws as a std::system_error (websocket_error included), with its what().
template <class T>
duplex::awaitable<std::pair<std::error_code, std::string>> system_error_of(duplex::awaitable<T> operation) {
    try {
        co_await std::move(operation);
    } catch (const std::system_error& e) {
        co_return std::pair{e.code(), std::string(e.what())};
    }
    co_return std::pair{std::error_code{}, std::string()};
}

}  // namespace

TEST_CASE("a WebSocket over TLS: messages round-trip, ALPN http/1.1, TLS 1.2 or newer, SNI for host names") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        for (const std::string host : {"127.0.0.1", "localhost"}) {
            auto client = [&]() -> duplex::awaitable<void> {
                auto ws = co_await duplex::connect(url(acceptor, host), trusting_options());
                CHECK(ws.state() == duplex::websocket_state::open);
                co_await ws.send("hello over TLS");
                std::string text;
                co_await ws.receive_message(text, 1 << 20);
                CHECK(text == "hello over TLS");
                std::vector<std::byte> big(300000);
                for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 31 % 251);
                co_await ws.send(asio::buffer(big), duplex::message_type::binary);
                std::vector<std::byte> back;
                co_await ws.receive_message(back, 1 << 20);
                CHECK_MESSAGE(back == big, "the 300 kB binary message came back different");
                co_await ws.close(duplex::close_status::normal_closure, "done");
                CHECK(ws.state() == duplex::websocket_state::closed);
            };
            const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
            CHECK_FALSE(record.tls);
            CHECK_MESSAGE(!record.websocket, record.websocket.message());
            CHECK(record.alpn == "http/1.1");
            CHECK(record.version >= TLS1_2_VERSION);
            CHECK(record.sni == (host == "localhost" ? "localhost" : ""));  // no SNI for IP addresses (RFC 6066)
        }
    });
}

TEST_CASE("our server sends close_notify after the WebSocket close and waits for the client's") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto client_context = trusting_client_context();
        auto client = [&]() -> duplex::awaitable<void> {
            raw_tls raw(io, *client_context);
            co_await raw.next_layer().async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
            std::string buffer;
            co_await raw_client_open(raw, buffer);
            co_await asio::async_write(raw, asio::buffer(close_frame_masked(1000)), duplex::use_awaitable);
            const auto [opcode, payload] = co_await read_small_frame(raw, buffer);
            CHECK(opcode == 8);
            CHECK(payload.substr(2) == "bye");
            // The next read meets the server's close_notify: eof, not stream_truncated (a bare TCP close).
            std::array<char, 64> rest;
            const auto [ec, n] = co_await raw.async_read_some(asio::buffer(rest), use_nothrow_awaitable);
            CHECK_MESSAGE(ec == asio::error::eof, "after the close frame the client read: " << ec.message());
            const auto [shutdown_ec] = co_await raw.async_shutdown(use_nothrow_awaitable);  // our close_notify
            CHECK_MESSAGE(!shutdown_ec, shutdown_ec.message());
        };
        const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
        CHECK_MESSAGE(!record.websocket, record.websocket.message());
        CHECK_MESSAGE(record.close_seconds < 1.0, "the server's close took " << record.close_seconds << " s");
    });
}

TEST_CASE("our client answers the server's close_notify with its own") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto context = server_context();
        auto server = [&]() -> duplex::awaitable<void> {
            raw_tls raw(co_await acceptor.async_accept(duplex::use_awaitable), *context);
            std::string buffer;
            co_await raw_server_open(raw, buffer);
            const auto [opcode, payload] = co_await read_small_frame(raw, buffer);
            CHECK(opcode == 8);
            co_await asio::async_write(raw, asio::buffer(close_frame_unmasked(1000)), duplex::use_awaitable);
            // Asio's shutdown sends close_notify and completes cleanly only on the client's close_notify.
            const auto [ec] = co_await raw.async_shutdown(use_nothrow_awaitable);
            CHECK_MESSAGE(!ec, "the server's TLS shutdown ended with: " << ec.message());
        };
        auto client = [&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(url(acceptor), trusting_options());
            const auto start = clock_type::now();
            co_await ws.close(duplex::close_status::normal_closure, "bye");
            CHECK(ws.state() == duplex::websocket_state::closed);
            CHECK(seconds_since(start) < 1.0);
        };
        co_await (server() && client());
    });
}

TEST_CASE("a client that drops TCP without close_notify: receive fails once with connection_closed_prematurely") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto client_context = trusting_client_context();
        auto client = [&]() -> duplex::awaitable<void> {
            raw_tls raw(io, *client_context);
            co_await raw.next_layer().async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
            std::string buffer;
            co_await raw_client_open(raw, buffer);
            raw.next_layer().close();
        };
        const auto start = clock_type::now();
        const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
        CHECK(record.websocket == duplex::websocket_errc::connection_closed_prematurely);
        CHECK(seconds_since(start) < 2.0);
    });
}

TEST_CASE("a server that drops TCP without close_notify: our client's receive fails with connection_closed_prematurely") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto context = server_context();
        auto server = [&]() -> duplex::awaitable<void> {
            raw_tls raw(co_await acceptor.async_accept(duplex::use_awaitable), *context);
            std::string buffer;
            co_await raw_server_open(raw, buffer);
            raw.next_layer().close();
        };
        auto client = [&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(url(acceptor), trusting_options());
            std::array<std::byte, 256> data;
            const auto ec = co_await test::error_of(ws.receive(asio::buffer(data)));
            CHECK(ec == duplex::websocket_errc::connection_closed_prematurely);
            CHECK(ws.state() == duplex::websocket_state::aborted);
            const auto again = co_await test::error_of(ws.send("after the drop"));
            CHECK(again == duplex::websocket_errc::connection_closed_prematurely);
        };
        co_await (server() && client());
    });
}

TEST_CASE("the close stays bounded when the client leaves without close_notify or never sends it") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto client_context = trusting_client_context();
        duplex::ws::stream_options options;
        options.close_timeout = 500ms;
        for (const bool drop : {true, false}) {
            auto client = [&]() -> duplex::awaitable<void> {
                raw_tls raw(io, *client_context);
                co_await raw.next_layer().async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
                std::string buffer;
                co_await raw_client_open(raw, buffer);
                co_await asio::async_write(raw, asio::buffer(close_frame_masked(1000)), duplex::use_awaitable);
                co_await read_small_frame(raw, buffer);
                if (drop) {
                    raw.next_layer().close();
                    co_return;
                }
                // Keep TCP open and say nothing: the server gives up after its close timeout.
                std::array<char, 64> rest;
                co_await raw.async_read_some(asio::buffer(rest), use_nothrow_awaitable);
                asio::steady_timer linger(io, 1s);
                co_await linger.async_wait(use_nothrow_awaitable);
            };
            const auto record = co_await (serve_one(acceptor, server_context(), 5s, options) && client());
            CHECK_MESSAGE(!record.websocket, record.websocket.message());
            const double bound = drop ? 0.4 : 1.5;  // the second waits out the 0.5 s close timeout
            CHECK_MESSAGE(record.close_seconds < bound, "close took " << record.close_seconds << " s");
            if (!drop) {
                CHECK(record.close_seconds >= 0.4);
            }
        }
    });
}

TEST_CASE("after a protocol error the server's TLS shutdown skips what the client still sends") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const auto client_context = trusting_client_context();
        auto client = [&]() -> duplex::awaitable<void> {
            raw_tls raw(io, *client_context);
            co_await raw.next_layer().async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
            std::string buffer;
            co_await raw_client_open(raw, buffer);
            const auto unmasked = test::encode({.payload = test::bytes("a client must mask"), .masked = false});
            co_await asio::async_write(raw, asio::buffer(unmasked), duplex::use_awaitable);
            const auto [opcode, payload] = co_await read_small_frame(raw, buffer);
            CHECK(opcode == 8);
            CHECK(payload.substr(0, 2) == std::string("\x03\xea", 2));  // 1002
            // Frames the client sent before it saw the close go on arriving during the TLS shutdown.
            for (int i = 0; i < 20; ++i) {
                const auto data = test::encode({.payload = std::vector<std::byte>(1000, std::byte('x'))});
                co_await asio::async_write(raw, asio::buffer(data), duplex::use_awaitable);
            }
            const auto [ec] = co_await raw.async_shutdown(use_nothrow_awaitable);
            CHECK_MESSAGE(!ec, "the client's TLS shutdown ended with " << ec.message());
        };
        const auto start = clock_type::now();
        const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
        CHECK(record.websocket == duplex::websocket_errc::protocol_error);
        CHECK_MESSAGE(seconds_since(start) < 2.0, "took " << seconds_since(start) << " s");
    });
}

TEST_CASE("the TLS handshake is bounded by its timeout, server and client side") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        // A client that connects and says nothing, then one that stops in the middle of a record.
        for (const std::string& said : {std::string(), std::string("\x16\x03\x01\x02\x00", 5)}) {
            auto silent_client = [&]() -> duplex::awaitable<std::error_code> {
                tcp::socket socket(io);
                co_await socket.async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
                if (!said.empty()) co_await asio::async_write(socket, asio::buffer(said), duplex::use_awaitable);
                std::array<char, 64> data;
                const auto [ec, n] = co_await socket.async_read_some(asio::buffer(data), use_nothrow_awaitable);
                co_return ec;
            };
            const auto start = clock_type::now();
            const auto [record, client_saw] = co_await (serve_one(acceptor, server_context(), 300ms, default_options) && silent_client());
            const auto elapsed = seconds_since(start);
            CHECK(record.tls == duplex::tls::errc::handshake_timeout);
            CHECK(client_saw == asio::error::eof);
            CHECK(elapsed >= 0.25);
            CHECK(elapsed < 2.0);
        }

        // A server that accepts TCP and never answers the ClientHello.
        auto silent_server = [&]() -> duplex::awaitable<void> {
            auto socket = co_await acceptor.async_accept(duplex::use_awaitable);
            std::array<char, 4096> data;
            for (int reads = 0; reads < 100; ++reads) {
                const auto [ec, n] = co_await socket.async_read_some(asio::buffer(data), use_nothrow_awaitable);
                if (ec) co_return;
            }
        };
        auto client = [&]() -> duplex::awaitable<void> {
            auto options = trusting_options();
            options.stream.handshake_timeout = 300ms;
            const auto start = clock_type::now();
            const auto [ec, what] = co_await system_error_of(duplex::connect(url(acceptor), options));
            CHECK(ec == duplex::tls::errc::handshake_timeout);
            CHECK(seconds_since(start) < 2.0);
            MESSAGE(what);
        };
        co_await (silent_server() && client());
    });
}

TEST_CASE("plain HTTP on the TLS port is answered with 400 and a clean close; other bytes are dropped") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        const std::vector<std::pair<std::string, duplex::tls::errc>> cases{
            {"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n", duplex::tls::errc::plain_http_request},
            {std::string("\x00\x01\x02 not TLS at all", 19), duplex::tls::errc::not_tls}};
        for (const auto& [sent, expected] : cases) {
            auto client = [&]() -> duplex::awaitable<std::pair<std::string, std::error_code>> {
                tcp::socket socket(io);
                co_await socket.async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
                co_await asio::async_write(socket, asio::buffer(sent), duplex::use_awaitable);
                std::string answer;
                std::error_code ec;
                for (int reads = 0; reads < 100 && !ec; ++reads) {
                    std::array<char, 1024> data;
                    const auto [read_ec, n] = co_await socket.async_read_some(asio::buffer(data), use_nothrow_awaitable);
                    answer.append(data.data(), n);
                    ec = read_ec;
                }
                co_return std::pair{answer, ec};
            };
            const auto [record, seen] = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
            const auto& [answer, end] = seen;
            CHECK(record.tls == expected);
            CHECK_MESSAGE(end == asio::error::eof, "the connection ended with " << end.message() << ", not a clean close");
            if (expected == duplex::tls::errc::plain_http_request) {
                CHECK(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"));
                CHECK(answer.ends_with("\r\n\r\nThis port speaks HTTPS: the request was sent as plain HTTP.\n"));
            } else {
                CHECK(answer.empty());
            }
        }
    });
}

TEST_CASE("TLS on a plain WebSocket port gets 400 or a close, and our client fails quickly") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        auto plain_server = [&]() -> duplex::awaitable<std::error_code> {
            duplex::ws::stream<tcp::socket> stream(co_await acceptor.async_accept(duplex::use_awaitable),
                                                   duplex::ws::role::server);
            co_return co_await test::error_of(stream.read_request());
        };
        auto client = [&]() -> duplex::awaitable<void> {
            const auto start = clock_type::now();
            const auto [ec, what] = co_await system_error_of(duplex::connect(url(acceptor), trusting_options()));
            CHECK(ec);
            CHECK(what.find("TLS handshake with 127.0.0.1") != std::string::npos);
            CHECK(seconds_since(start) < 2.0);
            MESSAGE(what);
        };
        const auto server_saw = co_await (plain_server() && client());
        CHECK(server_saw == duplex::websocket_errc::handshake_failed);
    });
}

TEST_CASE("our client refuses an untrusted certificate and a wrong host name, with a clear error") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        struct attempt {
            std::string name;
            duplex::connect_options options;
            duplex::tls::errc expected;
            std::string words;  // OpenSSL's reason, expected in what()
        };
        std::vector<attempt> attempts;
        attempts.push_back({"the system store does not trust the test CA", {}, duplex::tls::errc::certificate_untrusted,
                            "unable to get local issuer certificate"});
        attempts.push_back({"a CA file that is not the issuer", {}, duplex::tls::errc::certificate_untrusted,
                            "unable to get local issuer certificate"});
        attempts.back().options.tls.ca_file = certificate_file();  // a leaf, not the CA that signed it
        attempts.push_back({"a host name the certificate does not carry", trusting_options(),
                            duplex::tls::errc::host_name_mismatch, "hostname mismatch"});
        attempts.back().options.tls.server_name = "wrong.example";
        attempts.push_back({"an IP address the certificate does not carry", trusting_options(),
                            duplex::tls::errc::host_name_mismatch, "IP address mismatch"});
        attempts.back().options.tls.server_name = "127.0.0.2";
        for (auto& a : attempts) {
            auto client = [&]() -> duplex::awaitable<void> {
                const auto [ec, what] = co_await system_error_of(duplex::connect(url(acceptor), a.options));
                INFO(a.name << ": " << what);
                CHECK(ec == a.expected);
                CHECK(what.find("TLS handshake with 127.0.0.1:") != std::string::npos);
                CHECK(what.find(a.words) != std::string::npos);
                MESSAGE(what);
            };
            const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
            CHECK(record.tls);  // the server sees the client's alert and carries on
        }

        // Verification off, or the right name given explicitly: the same server is accepted.
        std::vector<duplex::connect_options> accepted(2, trusting_options());
        accepted[0].tls.ca_file.clear();
        accepted[0].tls.verify_peer = false;
        accepted[1].tls.server_name = "localhost";
        for (auto& options : accepted) {
            auto client = [&]() -> duplex::awaitable<void> {
                auto ws = co_await duplex::connect(url(acceptor), options);
                co_await ws.close(duplex::close_status::normal_closure);
            };
            const auto record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && client());
            CHECK_FALSE(record.tls);
            CHECK_FALSE(record.websocket);
        }
    });
}

TEST_CASE("TLS 1.1 is refused; a client offering no ALPN protocol we serve still connects") {
    test::run([](asio::io_context& io) -> duplex::awaitable<void> {
        auto acceptor = loopback_acceptor(io);
        asio::ssl::context old(asio::ssl::context::tls_client);
        SSL_CTX_set_security_level(old.native_handle(), 0);  // let the client itself offer TLS 1.1
        SSL_CTX_set_min_proto_version(old.native_handle(), TLS1_VERSION);
        SSL_CTX_set_max_proto_version(old.native_handle(), TLS1_1_VERSION);
        auto old_client = [&]() -> duplex::awaitable<std::error_code> {
            raw_tls raw(io, old);
            co_await raw.next_layer().async_connect(acceptor.local_endpoint(), duplex::use_awaitable);
            const auto [ec] = co_await raw.async_handshake(asio::ssl::stream_base::client, use_nothrow_awaitable);
            co_return ec;
        };
        const auto [record, client_saw] = co_await (serve_one(acceptor, server_context(), 5s, default_options) && old_client());
        CHECK(record.tls);
        CHECK(client_saw);
        MESSAGE("server: " << record.tls.message() << "; client: " << client_saw.message());

        auto options = trusting_options();
        options.tls.alpn_protocols = {"h2"};
        auto h2_client = [&]() -> duplex::awaitable<void> {
            auto ws = co_await duplex::connect(url(acceptor), options);
            co_await ws.close(duplex::close_status::normal_closure);
        };
        const auto h2_record = co_await (serve_one(acceptor, server_context(), 5s, default_options) && h2_client());
        CHECK_FALSE(h2_record.tls);
        CHECK(h2_record.alpn.empty());
    });
}

TEST_CASE("server_context and client_context report unusable files clearly") {
    auto what_of = [](auto make) -> std::string {
        try {
            make();
        } catch (const std::system_error& e) {
            return e.what();
        }
        return "(no exception)";
    };
    const auto missing = what_of([] {
        duplex::tls::server_context({.certificate_file = certs + "/missing.pem", .private_key_file = key_file()});
    });
    CHECK(missing.find("cannot load the certificate file '" + certs + "/missing.pem'") != std::string::npos);
    MESSAGE(missing);
    const auto mismatched = what_of([] {
        duplex::tls::server_context({.certificate_file = certificate_file(), .private_key_file = certs + "/ca.key"});
    });
    CHECK(mismatched.find("does not belong to the certificate") != std::string::npos);
    MESSAGE(mismatched);
    const auto bad_ca = what_of([] { duplex::tls::client_context({.ca_file = certs + "/missing-ca.pem"}); });
    CHECK(bad_ca.find("cannot load the CA file") != std::string::npos);
    MESSAGE(bad_ca);
    CHECK_NOTHROW(duplex::tls::server_context(
        {.certificate_file = certificate_file(), .private_key_file = key_file(), .chain_file = ca_file()}));
    CHECK_THROWS_AS(duplex::tls::server_context({}), std::invalid_argument);
    CHECK_THROWS_AS(duplex::tls::client_context({.alpn_protocols = {""}}), std::invalid_argument);
}

TEST_CASE("the app refuses an https:// URL without use_https, and use_https reports unusable files") {
    duplex::app plain;
    std::string refused;
    try {
        plain.run("http://127.0.0.1:0;https://127.0.0.1:0");
    } catch (const std::invalid_argument& e) {
        refused = e.what();
    }
    CHECK(refused == "cannot serve https://127.0.0.1:0: https:// needs a certificate, configure one with app.use_https()");
    CHECK(plain.listening_urls().empty());  // refused before listening anywhere

    duplex::app app;
    std::string missing;
    try {
        app.use_https({.certificate_chain_file = certs + "/missing.pem", .private_key_file = key_file()});
    } catch (const std::system_error& e) {
        missing = e.what();
    }
    CHECK(missing.find("cannot load the certificate file '" + certs + "/missing.pem'") != std::string::npos);
    CHECK_THROWS_AS(app.use_https({}), std::invalid_argument);
    CHECK_THROWS_AS(app.use_https({.certificate_chain_file = certificate_file()}), std::invalid_argument);
    CHECK_THROWS_AS(app.use_https({.certificate_chain_file = certificate_file(), .private_key_file = key_file(),
                                   .context = server_context()}),
                    std::invalid_argument);
    CHECK_THROWS_AS(app.use_https({.context = server_context(), .handshake_timeout = 0s}), std::invalid_argument);
    CHECK_NOTHROW(app.use_https({.certificate_chain_file = certificate_file(), .private_key_file = key_file()}));
    CHECK_THROWS_AS(app.run("ftp://127.0.0.1:0"), std::invalid_argument);
}

// The handler of the app host, the same for every URL: what it saw of each WebSocket's end.
struct app_handler_log {
    std::mutex mutex;
    std::vector<std::string> ends;
};

TEST_CASE("one app serves http:// and https:// with the same handler; wss:// ends with close_notify") {
    duplex::app_options options;
    options.worker_threads = 2;
    duplex::app app(options);
    app.use_https({.context = server_context(), .handshake_timeout = 2s});
    app_handler_log log;
    app.use_websockets();
    app.run([&log](duplex::http_context& ctx) -> duplex::awaitable<void> {
        if (!ctx.websockets.is_websocket_request()) {
            ctx.response.status_code = 404;
            co_return;
        }
        auto ws = co_await ctx.websockets.accept_websocket();  // a duplex::websocket, TLS or not
        std::string message;
        auto result = co_await ws.receive_message(message, 1 << 20);
        while (!result.close_status) {
            co_await ws.send(asio::buffer(message), result.message_type, true);
            result = co_await ws.receive_message(message, 1 << 20);
        }
        co_await ws.close(*result.close_status, result.close_status_description);
        std::lock_guard lock(log.mutex);
        log.ends.push_back("closed " + std::to_string(static_cast<int>(*result.close_status)));
    });
    std::thread runner;
    std::atomic<bool> done{false};
    runner = std::thread([&] {
        app.run("http://127.0.0.1:0;https://127.0.0.1:0");
        done = true;
    });
    const auto give_up = clock_type::now() + 10s;
    while (app.listening_urls().size() < 2 && clock_type::now() < give_up) std::this_thread::sleep_for(10ms);
    std::string http_url, https_url;
    for (const auto& u : app.listening_urls()) (u.starts_with("https://") ? https_url : http_url) = u;
    REQUIRE(!http_url.empty());
    REQUIRE(!https_url.empty());

    std::vector<std::string> echoed;
    test::run([&](asio::io_context&) -> duplex::awaitable<void> {
        const auto options = trusting_options();
        const std::vector<std::string> bases{http_url, https_url};
        for (const auto& base : bases) {
            const auto ws_url = (base.starts_with("https") ? "wss" : "ws") + base.substr(base.find(':')) + "/ws";
            auto ws = co_await duplex::connect(ws_url, options);
            const std::string sent = "over " + ws_url.substr(0, ws_url.find(':')) + std::string(70000, 'x');
            co_await ws.send(asio::buffer(sent), duplex::message_type::text, true);
            std::string reply;
            co_await ws.receive_message(reply, 1 << 20);
            echoed.push_back(reply == sent ? "echoed" : "differs");
            co_await ws.close(duplex::close_status::normal_closure);
        }
    });
    CHECK(echoed == std::vector<std::string>{"echoed", "echoed"});

    // A raw TLS client: after the WebSocket close, the app's close_notify arrives before the TCP end.
    std::string tls_end;
    test::run([&](asio::io_context& io) -> duplex::awaitable<void> {
        auto context = trusting_client_context();
        asio::ssl::stream<tcp::socket> client(io, *context);
        const auto port = static_cast<unsigned short>(std::stoi(https_url.substr(https_url.rfind(':') + 1)));
        co_await client.next_layer().async_connect({asio::ip::address_v4::loopback(), port}, asio::use_awaitable);
        co_await client.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        const std::string request =
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        co_await asio::async_write(client, asio::buffer(request), asio::use_awaitable);
        const auto close_frame = test::encode({.opcode = 8, .payload = test::close_payload(1000)});
        co_await asio::async_write(client, asio::buffer(close_frame), asio::use_awaitable);
        std::array<char, 4096> buffer;
        std::error_code ec;
        while (!ec) {
            const auto [read_ec, n] = co_await client.async_read_some(asio::buffer(buffer), use_nothrow_awaitable);
            ec = read_ec;
        }
        tls_end = ec == asio::error::eof ? "close_notify" : ec.message();  // stream_truncated: none came
        co_await client.async_shutdown(use_nothrow_awaitable);
    });
    CHECK(tls_end == "close_notify");

    const auto stop_by = clock_type::now() + 10s;
    while (!done && clock_type::now() < stop_by) {
        app.stop();
        std::this_thread::sleep_for(20ms);
    }
    runner.join();
    std::lock_guard lock(log.mutex);
    CHECK(log.ends == std::vector<std::string>{"closed 1000", "closed 1000", "closed 1000"});
}

int main(int argc, char** argv) { return test::run_with_certificates(argc, argv, certs); }
