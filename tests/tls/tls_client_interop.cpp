// Interop over TLS: duplex's wss:// client against Python's websockets server behind Python's ssl
// module, started by python_wss_server_test.py, which passes its URL and the CA that signed its
// certificate:
//
//     tls-client-interop wss://127.0.0.1:PORT CA_FILE [doctest options...]
//
// The server echoes on any path, and /close-4001, /sni, /alpn, /tls-version and /reject do one thing
// more (see python_wss_server_test.py). Each case runs on its own io_context, bounded by run_for.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <duplex/duplex.hpp>
#include <duplex/tls.hpp>

#include <chrono>
#include <exception>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

std::string server_url;  // wss://127.0.0.1:PORT
std::string ca_file;

constexpr std::size_t mib = 1024 * 1024;

std::string port() { return server_url.substr(server_url.rfind(':') + 1); }
std::string url(std::string_view path, std::string_view host = "127.0.0.1") {
    return "wss://" + std::string(host) + ":" + port() + std::string(path);
}

duplex::connect_options trusting() {
    duplex::connect_options options;
    options.tls.ca_file = ca_file;
    return options;
}

template <class Coroutine>
void run_case(Coroutine coroutine) {
    asio::io_context io;
    bool finished = false;
    std::exception_ptr failure;
    asio::co_spawn(io, coroutine(), [&](std::exception_ptr e) {
        finished = true;
        failure = e;
    });
    io.run_for(std::chrono::seconds(20));
    CHECK_MESSAGE(finished, "the case did not finish within 20 s");
    if (failure) std::rethrow_exception(failure);
}

duplex::awaitable<std::string> first_text(duplex::websocket& ws) {
    std::string text;
    co_await ws.receive_message(text, mib);
    co_return text;
}

// What connect throws, as a std::system_error (websocket_error included), with its what().
duplex::awaitable<std::pair<std::error_code, std::string>> connect_error(std::string uri, duplex::connect_options options) {
    try {
        auto ws = co_await duplex::connect(uri, std::move(options));
        co_await ws.close(duplex::close_status::normal_closure);
    } catch (const std::system_error& e) {
        co_return std::pair{e.code(), std::string(e.what())};
    }
    co_return std::pair{std::error_code{}, std::string()};
}

}  // namespace

TEST_CASE("text and binary messages of 0 B to 1 MiB round-trip over wss://localhost") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo", "localhost"), trusting());
        std::mt19937 random(443);
        for (const std::size_t size : {0, 1, 125, 126, 65535, 65536, 1 << 20}) {
            std::string text(size, ' ');
            for (auto& c : text) c = static_cast<char>('a' + random() % 26);
            co_await ws.send(text);
            std::string text_back;
            co_await ws.receive_message(text_back, 2 * mib);
            CHECK_MESSAGE(text_back == text, "text of " << size << " B came back different");

            std::vector<std::byte> binary(size);
            for (auto& b : binary) b = static_cast<std::byte>(random());
            co_await ws.send(asio::buffer(binary), duplex::message_type::binary);
            std::vector<std::byte> binary_back;
            const auto r = co_await ws.receive_message(binary_back, 2 * mib);
            CHECK(r.message_type == duplex::message_type::binary);
            CHECK_MESSAGE(binary_back == binary, "binary of " << size << " B came back different");
        }
        co_await ws.close(duplex::close_status::normal_closure, "done");
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
}

TEST_CASE("SNI carries the URI's host name or the override, and nothing for an IP address") {
    run_case([]() -> duplex::awaitable<void> {
        auto by_name = co_await duplex::connect(url("/sni", "localhost"), trusting());
        const auto by_name_text = co_await first_text(by_name);
        CHECK(by_name_text == "localhost");
        co_await by_name.close(duplex::close_status::normal_closure);

        auto options = trusting();
        options.tls.server_name = "localhost";
        auto overridden = co_await duplex::connect(url("/sni"), options);
        const auto overridden_text = co_await first_text(overridden);
        CHECK(overridden_text == "localhost");
        co_await overridden.close(duplex::close_status::normal_closure);

        auto by_address = co_await duplex::connect(url("/sni"), trusting());
        const auto by_address_text = co_await first_text(by_address);
        CHECK(by_address_text == "<none>");
        co_await by_address.close(duplex::close_status::normal_closure);
    });
}

TEST_CASE("ALPN settles on http/1.1; TLS 1.3 by default, TLS 1.2 through a context limited to it") {
    run_case([]() -> duplex::awaitable<void> {
        auto alpn = co_await duplex::connect(url("/alpn"), trusting());
        const auto alpn_text = co_await first_text(alpn);
        CHECK(alpn_text == "http/1.1");
        co_await alpn.close(duplex::close_status::normal_closure);

        auto latest = co_await duplex::connect(url("/tls-version"), trusting());
        const auto latest_text = co_await first_text(latest);
        CHECK(latest_text == "TLSv1.3");
        co_await latest.close(duplex::close_status::normal_closure);

        auto options = trusting();
        options.tls.context = duplex::tls::client_context({.ca_file = ca_file});
        SSL_CTX_set_max_proto_version(options.tls.context->native_handle(), TLS1_2_VERSION);
        auto tls12 = co_await duplex::connect(url("/tls-version"), options);
        const auto tls12_text = co_await first_text(tls12);
        CHECK(tls12_text == "TLSv1.2");
        co_await tls12.send("over TLS 1.2");
        const auto echoed = co_await first_text(tls12);
        CHECK(echoed == "over TLS 1.2");
        co_await tls12.close(duplex::close_status::normal_closure);
    });
}

TEST_CASE("the server's close 4001 arrives as a receive_result, and close() answers it") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/close-4001"), trusting());
        std::string data;
        const auto r = co_await ws.receive_message(data, mib);
        REQUIRE(r.close_status.has_value());
        CHECK(static_cast<int>(*r.close_status) == 4001);
        CHECK(r.close_status_description == "bye");
        co_await ws.close(*r.close_status, r.close_status_description);
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
}

TEST_CASE("close_output, then the server's answering close arrives through receive") {
    run_case([]() -> duplex::awaitable<void> {
        auto ws = co_await duplex::connect(url("/echo"), trusting());
        co_await ws.close_output(duplex::close_status::normal_closure, "half");
        CHECK(ws.state() == duplex::websocket_state::close_sent);
        std::array<std::byte, 256> buffer;
        const auto r = co_await ws.receive(asio::buffer(buffer));
        REQUIRE(r.close_status.has_value());
        CHECK(*r.close_status == duplex::close_status::normal_closure);
        CHECK(ws.state() == duplex::websocket_state::closed);
    });
}

TEST_CASE("an upgrade refused with 403 after a good TLS handshake throws handshake_failed") {
    run_case([]() -> duplex::awaitable<void> {
        const auto [ec, what] = co_await connect_error(url("/reject"), trusting());
        CHECK(ec == duplex::websocket_errc::handshake_failed);
        CHECK_MESSAGE(what.find("403") != std::string::npos, what);
    });
}

TEST_CASE("a certificate for another host name is refused with host_name_mismatch") {
    run_case([]() -> duplex::awaitable<void> {
        auto options = trusting();
        options.tls.server_name = "wrong.example";
        const auto [ec, what] = co_await connect_error(url("/echo"), options);
        CHECK(ec == duplex::tls::errc::host_name_mismatch);
        CHECK_MESSAGE(what.find("as 'wrong.example' failed (hostname mismatch)") != std::string::npos, what);
        MESSAGE(what);
    });
}

TEST_CASE("a certificate from a CA we do not trust is refused; verify_peer = false accepts it") {
    run_case([]() -> duplex::awaitable<void> {
        const duplex::connect_options system_store;
        const auto [ec, what] = co_await connect_error(url("/echo"), system_store);
        CHECK(ec == duplex::tls::errc::certificate_untrusted);
        CHECK_MESSAGE(what.find("unable to get local issuer certificate") != std::string::npos, what);
        MESSAGE(what);

        duplex::connect_options unverified;
        unverified.tls.verify_peer = false;
        auto ws = co_await duplex::connect(url("/echo"), unverified);
        co_await ws.send("unverified");
        const auto ws_text = co_await first_text(ws);
        CHECK(ws_text == "unverified");
        co_await ws.close(duplex::close_status::normal_closure);
    });
}

TEST_CASE("ws:// to the wss:// port fails promptly instead of hanging") {
    run_case([]() -> duplex::awaitable<void> {
        const auto start = std::chrono::steady_clock::now();
        const duplex::connect_options plain;
        const auto [ec, what] = co_await connect_error("ws://127.0.0.1:" + port() + "/echo", plain);
        CHECK(ec == duplex::websocket_errc::handshake_failed);
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
        MESSAGE(what);
    });
}

int main(int argc, char** argv) {
    if (argc < 3 || !std::string_view(argv[1]).starts_with("wss://")) {
        std::cerr << "usage: " << argv[0] << " wss://HOST:PORT CA_FILE [doctest options...]\n";
        return 2;
    }
    server_url = argv[1];
    while (!server_url.empty() && server_url.back() == '/') server_url.pop_back();
    ca_file = argv[2];
    std::vector<char*> doctest_args{argv[0]};
    doctest_args.insert(doctest_args.end(), argv + 3, argv + argc);
    doctest::Context context(static_cast<int>(doctest_args.size()), doctest_args.data());
    return context.run();
}
